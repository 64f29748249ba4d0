"""KMS emulator for ksdelete: moto's KMS plus custom key stores, a clock and realism knobs.

(The full description is in docs/emulator.md; this docstring is the short reference.)
"""

from __future__ import annotations

from .client import Emulator, EmulatorError
from .config import EmulatorConfig
from .server import serve

__all__ = ["Emulator", "EmulatorConfig", "EmulatorError", "serve"]
