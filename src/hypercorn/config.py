"""``hypercorn.config``: the public home of ``Config``.

The class lives in ``hypercorn.shared.config`` (code on both sides of the fork
uses it, and ``shared`` imports nothing above it); this module re-exports it
under Hypercorn's import path, with the names Hypercorn's module had.
"""

from __future__ import annotations

# Hypercorn's module imported ``time`` by name, and code that patches
# ``hypercorn.config.time`` (Hypercorn's own test suite does) must still find it.
# The server reads its clock from ``time.time`` itself, not through this name.
from time import time

from hypercorn.shared.config import BYTES, OCTETS, SECONDS, Config, FilePath
from hypercorn.shared.sockets import Sockets, SocketTypeError
from hypercorn.shared.validators import ConfigError, UnknownSettingError

__all__ = [
    "BYTES",
    "OCTETS",
    "SECONDS",
    "Config",
    "ConfigError",
    "FilePath",
    "SocketTypeError",
    "Sockets",
    "UnknownSettingError",
    "time",
]
