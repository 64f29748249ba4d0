"""The emulator's realism knobs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass
class EmulatorConfig:
    """Realism knobs; every one is off (or AWS-neutral) by default.

    See the package docstring for what each one does.
    """

    latency_ms: float = 0.0
    quotas: str = "off"
    consistency_lag: float = 0.0
    fault_rate: float = 0.0
    # Comma-separated KMS operations the fault rate applies to ("" = every operation), e.g.
    # "DescribeKey" for an outage of one API.
    fault_operations: str = ""
    time_scale: float = 1.0
    deletion_lateness: float = 0.0
    connect_seconds: float = 300.0
    disconnect_seconds: float = 60.0
    validate: bool = True
    seed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def update(self, knobs: dict[str, Any]) -> None:
        """Set knobs from JSON-ish values, checking names, types and ranges."""
        known = {f.name: f for f in fields(self)}
        new = asdict(self)
        for name, value in knobs.items():
            if name not in known:
                raise ValueError(f"unknown knob {name!r}; known: {sorted(known)}")
            new[name] = _coerce(name, value)
        checked = EmulatorConfig(**new)
        checked.check()
        for name in known:
            setattr(self, name, getattr(checked, name))

    def check(self) -> None:
        if self.quotas not in ("aws", "off"):
            raise ValueError("quotas must be 'aws' or 'off'")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError("fault_rate must be between 0 and 1")
        for name in (
            "latency_ms",
            "consistency_lag",
            "time_scale",
            "deletion_lateness",
            "connect_seconds",
            "disconnect_seconds",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")


def _coerce(name: str, value: Any) -> Any:
    if name in ("quotas", "fault_operations"):
        return str(value)
    if name == "validate":
        if isinstance(value, str):
            return value.lower() in ("1", "true", "yes", "on")
        return bool(value)
    if name == "seed":
        return None if value is None else int(value)
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number")
    return float(value)
