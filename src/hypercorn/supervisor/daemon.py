"""``--daemon``: detach from the terminal, and tell the launcher how the start went.

Theory of operation
-------------------
The launching process forks; the child calls ``setsid`` (a new session, no
controlling terminal) and forks again, then exits at once. The grandchild is
the daemon: not a session leader, so it can never acquire a terminal, and
not a child of the launching shell. It sets its umask, puts ``/dev/null`` on
stdin, and becomes the master.

The launcher does not return at once. It holds the read ends of two pipes:

- *output*: what the daemon and its workers write on stdout and stderr while
  the server boots (log lines, and the errors: an application that fails to
  import, a port in use, a bad certificate), copied to the launcher's stderr;
- *status*: one record, ``R<pid>`` once every worker is READY, or
  ``X<code>`` when the daemon exits before that.

The launcher exits 0 on ``R``, with the daemon's code on ``X``, and 1 when
the daemon vanishes without a word.

The daemon's stdout and stderr are not the output pipe itself but a *relay*
pipe, drained by a thread of the master. Workers forked during the boot
inherit the relay pipe, which stays valid for their whole life; the output
pipe closes with the launcher. The relay copies to the launcher until the
status is sent, and to the error log file (when ``errorlog`` is a path; else
nowhere) always, reopening it when logrotate moved it. It writes everything
read before the status, so the launcher shows the last error before it exits.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import threading
from typing import TYPE_CHECKING

from hypercorn.shared.cli import PROG, ExitCode

if TYPE_CHECKING:
    from hypercorn.config import Config

__all__ = ["DaemonLink", "current_link", "daemonize", "relay_stdio"]

DEFAULT_UMASK = 0o022
_LINK: DaemonLink | None = None


def current_link() -> DaemonLink | None:
    """The link to the launcher in a daemon still booting, else None."""
    return _LINK


def daemonize(config: Config) -> None:
    """Detach; returns in the daemon only (the launcher exits with the verdict).

    Raises:
        OSError: a fork or a pipe failed (in the launcher).
    """
    global _LINK
    out_r, out_w = os.pipe()
    status_r, status_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child > 0:
        os.close(out_w)
        os.close(status_w)
        os.waitpid(child, 0)
        os._exit(_launcher(out_r, status_r))
    os.close(out_r)
    os.close(status_r)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.umask(DEFAULT_UMASK if config.umask is None else config.umask)
    relay = relay_stdio(config, out_w)
    _LINK = DaemonLink(relay, status_w)


def _launcher(out_r: int, status_r: int) -> int:
    """Copy the daemon's output until its status comes; returns the exit code."""
    status = b""
    readers = [out_r, status_r]
    while status_r in readers:
        ready, _, _ = select.select(readers, [], [])
        if out_r in ready:
            data = os.read(out_r, 65536)
            if data:
                _write_all(2, data)
            else:
                readers.remove(out_r)
        if status_r in ready:
            data = os.read(status_r, 64)
            status += data
            if not data or status.startswith(b"R") or status.endswith(b"\n"):
                readers.remove(status_r)
    # The relay wrote every byte of output before the status.
    os.set_blocking(out_r, False)
    with contextlib.suppress(BlockingIOError, OSError):
        while data := os.read(out_r, 65536):
            _write_all(2, data)
    if status.startswith(b"R"):
        return ExitCode.OK
    if status.startswith(b"X") and status[1:].strip().lstrip(b"-").isdigit():
        return int(status[1:].strip()) or ExitCode.FAILURE
    _write_all(2, f"{PROG}: error: the daemon exited before its workers were ready\n".encode())
    return ExitCode.FAILURE


def _write_all(fd: int, data: bytes) -> None:
    with contextlib.suppress(OSError):
        while data:
            data = data[os.write(fd, data) :]


class _Relay(threading.Thread):
    """Copies the relay pipe to the launcher (until detached) and the log file."""

    def __init__(self, source: int, launcher: int | None, log_path: str | None) -> None:
        super().__init__(name="hypercorn-stdio-relay", daemon=True)
        self._source = source
        self._launcher = launcher
        self._log_path = log_path
        self._log_fd: int | None = None
        self._log_inode: tuple[int, int] | None = None
        self._control_r, self._control_w = os.pipe()
        self._done = threading.Event()
        self._status = b""
        self._status_fd = -1
        os.set_blocking(source, False)

    def detach(self, status: bytes, status_fd: int, timeout: float = 5.0) -> None:
        """Forward what is pending, send ``status``, stop copying to the launcher."""
        self._status = status
        self._status_fd = status_fd
        os.write(self._control_w, b"!")
        self._done.wait(timeout)

    def run(self) -> None:
        while True:
            ready, _, _ = select.select([self._source, self._control_r], [], [])
            if self._source in ready and not self._drain():
                return
            if self._control_r in ready:
                os.read(self._control_r, 64)
                self._drain()
                if self._launcher is not None:
                    _write_all(self._status_fd, self._status)
                    os.close(self._status_fd)
                    os.close(self._launcher)
                    self._launcher = None
                self._done.set()

    def _drain(self) -> bool:
        """Copy what can be read now; False at end of file."""
        while True:
            try:
                data = os.read(self._source, 65536)
            except BlockingIOError:
                return True
            if not data:
                return False
            if self._launcher is not None:
                _write_all(self._launcher, data)
            self._to_log(data)

    def _to_log(self, data: bytes) -> None:
        if self._log_path is None:
            return
        try:
            stat = os.stat(self._log_path)
            inode = (stat.st_dev, stat.st_ino)
        except OSError:
            inode = None
        if self._log_fd is None or inode != self._log_inode:
            if self._log_fd is not None:
                os.close(self._log_fd)
                self._log_fd = None
            with contextlib.suppress(OSError):
                self._log_fd = os.open(
                    self._log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644
                )
                stat = os.fstat(self._log_fd)
                self._log_inode = (stat.st_dev, stat.st_ino)
        if self._log_fd is not None:
            _write_all(self._log_fd, data)


def relay_stdio(config: Config, launcher: int | None = None) -> _Relay:
    """Point stdin at ``/dev/null`` and stdout/stderr at a relay thread (see above).

    Args:
        config: its ``errorlog``, when a path, receives the daemon's stdio.
        launcher: the output pipe to the launcher, if one waits.
    """
    log_path = config.errorlog if isinstance(config.errorlog, str) else None
    if log_path == "-":
        log_path = None
    elif log_path is not None:
        log_path = os.path.abspath(log_path)
    source, sink = os.pipe()
    relay = _Relay(source, launcher, log_path)
    null = os.open(os.devnull, os.O_RDWR)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(null, 0)
    os.dup2(sink, 1)
    os.dup2(sink, 2)
    os.close(null)
    os.close(sink)
    relay.start()
    return relay


class DaemonLink:
    """The daemon's side of the launcher's pipes."""

    def __init__(self, relay: _Relay, status_fd: int) -> None:
        self._relay = relay
        self._status_fd: int | None = status_fd

    def ready(self) -> None:
        """Every worker serves: the launcher returns 0."""
        self._finish(f"R{os.getpid()}".encode())

    def exited(self, code: int) -> None:
        """The daemon stops before its workers were ready: the launcher returns ``code``."""
        self._finish(f"X{code}\n".encode())

    def _finish(self, status: bytes) -> None:
        global _LINK
        if self._status_fd is None:
            return
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        self._relay.detach(status, self._status_fd)
        self._status_fd = None
        _LINK = None
