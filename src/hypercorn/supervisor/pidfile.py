"""The master's PID file: written atomically at start, removed at exit only if still ours."""

from __future__ import annotations

import contextlib
import os

from hypercorn.shared.files import write_pid_file

__all__ = ["remove_pid_file", "write_pid_file"]


def remove_pid_file(path: str) -> None:
    """Remove the PID file at ``path`` if it still names this process.

    Another server started since (or an operator) may have replaced it; that
    file is not ours to remove.
    """
    with contextlib.suppress(OSError, ValueError):
        with open(path) as file:
            if int(file.read().strip()) != os.getpid():
                return
        os.remove(path)
