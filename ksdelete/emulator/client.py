"""``Emulator``: start/stop an emulator (child process or thread) and drive its control API."""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from datetime import datetime
from typing import Any

from .config import EmulatorConfig

_LISTENING = re.compile(r"KMS emulator listening on (http://\S+)")
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class EmulatorError(RuntimeError):
    """The emulator failed to start or a control request was refused."""


def config_args(config: EmulatorConfig) -> list[str]:
    """Command-line flags reproducing ``config`` for ``python -m ksdelete.emulator``."""
    args = [
        "--latency-ms",
        repr(config.latency_ms),
        "--quotas",
        config.quotas,
        "--consistency-lag",
        repr(config.consistency_lag),
        "--fault-rate",
        repr(config.fault_rate),
        "--time-scale",
        repr(config.time_scale),
        "--deletion-lateness",
        repr(config.deletion_lateness),
        "--connect-seconds",
        repr(config.connect_seconds),
        "--disconnect-seconds",
        repr(config.disconnect_seconds),
        "--key-usage-tracking-start",
        config.key_usage_tracking_start,
        "--last-usage-delay",
        repr(config.last_usage_delay),
    ]
    if not config.validate:
        args.append("--no-validate")
    if config.seed is not None:
        args += ["--seed", str(config.seed)]
    return args


def control_only_knobs(config: EmulatorConfig) -> dict[str, Any]:
    """Knobs that have no flag: applied over the control API once the server is up."""
    default = EmulatorConfig()
    names = ("fault_operations", "unknown_operations", "pending_deletion_crypto_error",
             "cloudtrail_resource_name", "cloudtrail_index_crypto", "principals",
             "tag_after_cancel_failures", "assume_role_deny", "assume_role_external_id",
             "assume_role_redirect", "config_aggregators", "config_lag_seconds",
             "config_hide_keys", "listkeys_hide")
    return {n: getattr(config, n) for n in names if getattr(config, n) != getattr(default, n)}


class Emulator:
    """Start/stop an emulator for tests and the demo; every method goes over HTTP."""

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        in_process: bool = False,
    ) -> None:
        self.config = config or EmulatorConfig()
        self.host = host
        self.port = port
        self.in_process = in_process
        self._url: str | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Emulator:
        if self._url is not None:
            return self
        if self.in_process:
            from .server import build_server

            self._server = build_server(self.host, self.port, self.config)
            self._thread = threading.Thread(
                target=self._server.serve_forever, name="kms-emulator", daemon=True
            )
            self._thread.start()
            self._url = f"http://{self.host}:{self._server.server_port}"
            return self
        cmd = [
            sys.executable,
            "-m",
            "ksdelete.emulator",
            "--host",
            self.host,
            "--port",
            str(self.port),
            *config_args(self.config),
        ]
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (package_root, env.get("PYTHONPATH", "")) if p
        )
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=None, text=True, env=env)
        lines: queue.Queue[str] = queue.Queue()
        stdout = self._proc.stdout
        assert stdout is not None

        def pump() -> None:
            for line in stdout:
                lines.put(line)
            lines.put("")

        threading.Thread(target=pump, name="kms-emulator-stdout", daemon=True).start()
        try:
            while True:
                line = lines.get(timeout=60)
                if not line:
                    raise EmulatorError(f"emulator exited early (code {self._proc.wait()})")
                found = _LISTENING.search(line)
                if found:
                    self._url = found.group(1)
                    break
        except queue.Empty as exc:
            self.stop()
            raise EmulatorError("emulator did not report its URL within 60 s") from exc
        except EmulatorError:
            self.stop()
            raise
        knobs = control_only_knobs(self.config)
        if knobs:
            self.configure(**knobs)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server = self._thread = None
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            if self._proc.stdout is not None:
                self._proc.stdout.close()
            self._proc = None
        self._url = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint_url(self) -> str:
        if self._url is None:
            raise EmulatorError("emulator is not running; call start()")
        return self._url

    # ------------------------------------------------------------------ control API
    def _call(self, method: str, route: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.endpoint_url}/_emulator/{route}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with _OPENER.open(request, timeout=120) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise EmulatorError(f"{method} /_emulator/{route}: HTTP {exc.code}: {detail}") from exc

    def seed(self, spec: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "seed", spec)
        return result

    def advance(self, seconds: float) -> datetime:
        return datetime.fromisoformat(self._call("POST", "clock", {"advance": seconds})["now"])

    def now(self) -> datetime:
        return datetime.fromisoformat(self._call("GET", "clock")["now"])

    def reset(self) -> None:
        self._call("POST", "reset", {})

    def configure(self, **knobs: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "config", knobs)
        return result

    def knobs(self) -> dict[str, Any]:
        """The knobs in force now (as configure() returns them)."""
        result: dict[str, Any] = self._call("GET", "config")
        return result

    def state(self, region: str = "us-east-1", account: str | None = None) -> dict[str, Any]:
        """The Region's stores and keys, of the default account or `account`."""
        query = f"state?region={region}" + (f"&account={account}" if account else "")
        result: dict[str, Any] = self._call("GET", query)
        return result

    def calls(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "calls")["calls"]
        return result

    def problems(self) -> list[str]:
        result: list[str] = self._call("GET", "problems")["problems"]
        return result

    def set_store_state(
        self, store_id: str, state: str, error_code: str | None = None, region: str = "us-east-1"
    ) -> None:
        body: dict[str, Any] = {
            "custom_key_store_id": store_id,
            "connection_state": state,
            "region": region,
        }
        if error_code is not None:
            body["connection_error_code"] = error_code
        self._call("POST", "store-state", body)
