"""The master's PID file.

Theory of operation
-------------------
The PID file names the live master of one server, and nothing else: init
scripts, ``hypercorn ctl`` and ``start-stop-daemon`` read it to find whom to
signal. So:

- before binding, ``check_pid_file`` looks at what is there: nothing, or a
  file whose PID is dead, unreadable, this very process, or a live process
  that is not a hypercorn master (its command line says so) is *stale* and
  will be replaced (with a warning that says which of these it is); a live
  hypercorn on it means the server is already running,
  ``AlreadyRunningError``, and the new one stops before touching anything;
- the master writes it atomically (a temporary file renamed over it) before
  starting workers, so a reader never sees a partial number;
- at exit the master removes it only if it still names the master: a
  successor (a USR2 upgrade, an operator) may have replaced it.

A command line is "a hypercorn" master when its title is ours (``hypercorn:
...``, set by setproctitle, but not a worker's) or it runs the ``hypercorn``
script or module (a master before it set its title).
"""

from __future__ import annotations

import contextlib
import os
import sys

from hypercorn.shared.cli import PROG, AlreadyRunningError
from hypercorn.shared.files import write_pid_file

__all__ = [
    "AlreadyRunningError",
    "check_pid_file",
    "is_hypercorn",
    "live_pid",
    "not_ours",
    "read_pid_file",
    "remove_pid_file",
    "write_pid_file",
]


def read_pid_file(path: str) -> int | None:
    """The PID in the file at ``path``, or None if it is missing or holds no PID."""
    try:
        with open(path, encoding="ascii", errors="replace") as file:
            text = file.read(64).strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


WORKER_TITLE = f"{PROG}: worker "


def _command_line(pid: int) -> list[str] | None:
    """The command line of ``pid``; None when it is not running (or a zombie)."""
    import psutil  # only when a PID file names a process: kept off the start-up path

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process.cmdline() or [process.name()]
    except psutil.AccessDenied:
        return []  # alive, but whose it is cannot be told
    except psutil.Error:
        return None


def _is_master(cmdline: list[str]) -> bool:
    if cmdline and cmdline[0].startswith(f"{PROG}: "):
        return not cmdline[0].startswith(WORKER_TITLE)
    for index, arg in enumerate(cmdline[:4]):
        if os.path.basename(arg) == PROG:
            return True
        if arg == "-m" and cmdline[index + 1 : index + 2] == [PROG]:
            return True
    return False


def is_hypercorn(pid: int) -> bool:
    """Whether ``pid`` is a live (non-zombie) hypercorn master."""
    cmdline = _command_line(pid)
    return cmdline is not None and _is_master(cmdline)


def not_ours(pid: int | None) -> str:
    """Why a PID file naming ``pid`` names no hypercorn master, for a message."""
    if pid is None:
        return "it holds no PID"
    cmdline = _command_line(pid)
    if cmdline is None:
        return f"pid {pid} is not running"
    if pid == os.getpid():
        return f"pid {pid} is this process"
    shown = " ".join(arg for arg in cmdline if arg) or "command line unknown"
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return f"pid {pid} is not a hypercorn master ({shown})"


def live_pid(path: str) -> int | None:
    """The PID in ``path`` if it names a live hypercorn other than this process."""
    pid = read_pid_file(path)
    if pid is None or pid == os.getpid() or not is_hypercorn(pid):
        return None
    return pid


def check_pid_file(path: str, warn: bool = True) -> None:
    """Make sure no live hypercorn owns ``path``; a stale file may be replaced.

    Args:
        path: the PID file.
        warn: print a warning on stderr about a stale file.

    Raises:
        AlreadyRunningError: a live hypercorn (not this process) is named there.
    """
    if not os.path.lexists(path):
        return
    pid = live_pid(path)
    if pid is not None:
        raise AlreadyRunningError(path, pid)
    if warn and read_pid_file(path) != os.getpid():
        what = not_ours(read_pid_file(path))
        print(f"{PROG}: warning: replacing stale PID file {path} ({what})", file=sys.stderr)


def remove_pid_file(path: str, pid: int | None = None) -> bool:
    """Remove the PID file at ``path`` if it still names ``pid`` (default: this process).

    Another server started since (or an operator) may have replaced it; that
    file is not ours to remove.

    Returns:
        Whether the file was removed.
    """
    if read_pid_file(path) != (os.getpid() if pid is None else pid):
        return False
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
    return True
