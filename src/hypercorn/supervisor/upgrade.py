"""USR2: replace the running master with a new one (new code), keeping the listeners.

Theory of operation
-------------------
On USR2 the master forks a child that executes the command line the master
was started with (``sys.orig_argv``, from the directory it was started in),
with the listening sockets left open across ``exec`` and named in the
environment: ``HYPERCORN_UPGRADE_FDS`` (``role:fd,fd;...``; the master's own
listener, ``metrics_bind``, goes the same way: no listener is ever bound twice,
so none needs ``SO_REUSEPORT``), and
``HYPERCORN_UPGRADE_FROM`` (the old master's PID). The new master serves the
very same sockets, so the kernel's accept queues never go away: a connection
that arrives during the hand-over waits there until a worker of either
generation accepts it; none is refused.

The new master writes ``<pidfile>.2`` and boots its workers. When they are
all READY it takes the PID file, writes one byte on the hand-over pipe
(``HYPERCORN_UPGRADE_PIPE``, whose other end the old master holds) and sends
the old master TERM. The old master, seeing that byte, knows the TERM is a
hand-over, not a stop: it drains its workers as usual but leaves the unix
socket files in place and tells systemd the new main PID. The new master
removes ``<pidfile>.2`` once its parent, the old master, is gone.

If the new master fails to boot, it exits; the old master reaps it, logs it,
and keeps serving as if nothing happened.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
from typing import TYPE_CHECKING

from hypercorn.shared.sockets import Sockets

if TYPE_CHECKING:
    import logging

    from hypercorn.config import Config

__all__ = [
    "HEALTH",
    "METRICS",
    "Upgrade",
    "hand_on",
    "in_upgrade_fork",
    "inherited_from",
    "inherited_listener",
    "inherited_sockets",
    "socket_activated",
]

ENV_FDS = "HYPERCORN_UPGRADE_FDS"
ENV_FROM = "HYPERCORN_UPGRADE_FROM"
ENV_PIPE = "HYPERCORN_UPGRADE_PIPE"
_ROLES = {"s": "secure_sockets", "i": "insecure_sockets", "q": "quic_sockets"}
METRICS = "m"  # the role of the master's own listener (``metrics_bind``)
HEALTH = "h"  # and of its health listener (``health_bind``), when it is another address
STARTED_IN = os.getcwd()  # where relative paths of the command line resolve

_inherited: dict[str, str] = {}
_handed_on: dict[str, socket.socket] = {}  # the master's own listeners, by role
_forking = False
# Noted at import, before the listeners are taken (which clears the variables):
# socket files that systemd made are systemd's to remove, never ours.
_SOCKET_ACTIVATED = os.environ.get("LISTEN_FDS", "").isdigit() and os.environ.get(
    "LISTEN_PID", str(os.getpid())
) == str(os.getpid())


def socket_activated() -> bool:
    """Whether systemd handed this process its listeners (``LISTEN_FDS``)."""
    return _SOCKET_ACTIVATED


def _take_environment() -> dict[str, str]:
    # Read once and removed, so the workers and any later upgrade start clean.
    if not _inherited:
        for name in (ENV_FDS, ENV_FROM, ENV_PIPE):
            if name in os.environ:
                _inherited[name] = os.environ.pop(name)
    return _inherited


def inherited_from() -> int | None:
    """The old master's PID when this master is the product of a USR2 upgrade."""
    value = _take_environment().get(ENV_FROM, "")
    return int(value) if value.isdigit() else None


def _inherited_fds() -> dict[str, list[int]]:
    text = _take_environment().get(ENV_FDS)
    if text is None or inherited_from() is None:
        return {}
    fds: dict[str, list[int]] = {}
    for group in filter(None, text.split(";")):
        role, _, numbers = group.partition(":")
        fds[role] = [int(number) for number in filter(None, numbers.split(","))]
    return fds


def _adopt(fd: int) -> socket.socket:
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)
    sock.set_inheritable(True)
    return sock


def inherited_sockets() -> Sockets | None:
    """The listeners handed over by the old master, if this is an upgrade."""
    fds = _inherited_fds()
    if not fds:
        return None
    sockets = Sockets()
    for role, attribute in _ROLES.items():
        getattr(sockets, attribute).extend(_adopt(fd) for fd in fds.get(role, []))
    return sockets


def inherited_listener(role: str) -> socket.socket | None:
    """The old master's own listener of ``role`` (``METRICS``), if it handed one on."""
    fds = _inherited_fds().get(role, [])
    return _adopt(fds[0]) if fds else None


def hand_on(role: str, sock: socket.socket | None) -> None:
    """Pass ``sock``, a listener of the master's own, to the next master on USR2
    (None: no more)."""
    if sock is None:
        _handed_on.pop(role, None)
    else:
        _handed_on[role] = sock


def in_upgrade_fork() -> bool:
    """True in the child forked to execute the new master (until it does)."""
    return _forking


def _encode(sockets: Sockets) -> str:
    groups = []
    for role, attribute in _ROLES.items():
        fds = [str(sock.fileno()) for sock in getattr(sockets, attribute)]
        if fds:
            groups.append(f"{role}:{','.join(fds)}")
    groups.extend(f"{role}:{sock.fileno()}" for role, sock in _handed_on.items())
    return ";".join(groups)


class Upgrade:
    """Both sides of a USR2 upgrade: the old master's child, the new master's hand-over."""

    def __init__(self, config: Config, log: logging.Logger) -> None:
        self.log = log
        self.child: int | None = None
        self._pipe: int | None = None
        self._handover = False
        self._parent = os.getppid()

    # ------------------------------------------------------------ old master

    def start(self, sockets: Sockets) -> bool:
        """Fork and execute the new master; it inherits ``sockets``.

        Returns:
            Whether a new master was started (not when one already is).
        """
        global _forking
        if self.child is not None:
            self.log.warning("USR2: an upgrade (pid %d) is already under way", self.child)
            return False
        read_fd, write_fd = os.pipe()
        env = {
            **os.environ,
            ENV_FDS: _encode(sockets),
            ENV_FROM: str(os.getpid()),
            ENV_PIPE: str(write_fd),
        }
        argv = [sys.executable, *sys.orig_argv[1:]]
        sys.stdout.flush()
        sys.stderr.flush()
        _forking = True
        try:
            pid = os.fork()
            if pid == 0:
                try:
                    for sock in [*sockets.all(), *_handed_on.values()]:
                        sock.set_inheritable(True)
                    os.set_inheritable(write_fd, True)
                    os.chdir(STARTED_IN)
                    os.execve(sys.executable, argv, env)
                finally:
                    os._exit(127)
        finally:
            _forking = False
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        self.child, self._pipe = pid, read_fd
        self.log.info("USR2: started new master %d (%s)", pid, " ".join(argv))
        return True

    def handing_over(self) -> bool:
        """Whether the new master took over (it wrote on the hand-over pipe)."""
        if self._pipe is not None and not self._handover:
            with contextlib.suppress(BlockingIOError):
                self._handover = bool(os.read(self._pipe, 1))
        return self._handover and self.child is not None

    def reaped(self, pid: int, code: int) -> bool:
        """A child that is not a worker exited; returns whether it was the new master."""
        if pid != self.child:
            return False
        self.log.error("USR2: the new master %d exited (code %d); this one keeps serving",
                       pid, code)  # fmt: skip
        self.child = None
        if self._pipe is not None:
            os.close(self._pipe)
            self._pipe = None
        return True

    # ------------------------------------------------------------ new master

    def take_over(self, old_master: int) -> None:
        """Tell the old master to hand over and stop."""
        pipe = _take_environment().get(ENV_PIPE, "")
        if pipe.isdigit():
            with contextlib.suppress(OSError):
                os.write(int(pipe), b"R")
                os.close(int(pipe))
        self.log.info("Upgrade: workers ready; stopping old master %d", old_master)
        with contextlib.suppress(ProcessLookupError):
            os.kill(old_master, signal.SIGTERM)

    def old_alive(self) -> bool:
        """Whether the old master (this process's parent at start) still runs."""
        return os.getppid() == self._parent
