"""Listening sockets: bind specifications and their creation.

A bind is ``host:port``, ``host`` (port 8000), ``[v6addr]:port``,
``unix:/path`` or ``fd://N`` (an inherited descriptor). Sockets are created
non-blocking and inheritable, so a process that forks after binding hands
them to its children, and stream sockets are already listening: the accept
queue exists before any worker does and outlives each of them.

One server per address: TCP and unix listeners set ``SO_REUSEADDR`` only, so
a second server started on a held address fails with "address already in
use" instead of sharing the traffic; ``SO_REUSEPORT`` is set on them only
when the ``reuse_port`` setting asks for it. UDP (QUIC) sockets always set it:
each worker slot gets its own socket on the address (``reuse_port_twin``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from hypercorn.shared.validators import ConfigError

DEFAULT_PORT = 8000


@dataclass
class Sockets:
    """The sockets a server listens on, by role."""

    secure_sockets: list[socket.socket] = field(default_factory=list)
    insecure_sockets: list[socket.socket] = field(default_factory=list)
    quic_sockets: list[socket.socket] = field(default_factory=list)

    def all(self) -> list[socket.socket]:
        return [*self.secure_sockets, *self.insecure_sockets, *self.quic_sockets]

    def close(self) -> None:
        for sock in self.all():
            sock.close()


class SocketTypeError(Exception):
    """An ``fd://`` bind names a descriptor of the wrong socket type."""

    def __init__(self, expected: int, actual: int) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"unexpected socket type: wanted {socket.SocketKind(expected).name}, "
            f"got {socket.SocketKind(actual).name}"
        )


class BindError(OSError):
    """A listener could not be created; the message names the address."""

    def __str__(self) -> str:
        return str(self.strerror)


@dataclass(frozen=True, slots=True)
class BindSpec:
    """One parsed bind."""

    kind: Literal["tcp", "unix", "fd"]
    text: str
    host: str = ""
    port: int = 0
    path: str = ""
    fd: int = -1

    @property
    def family(self) -> socket.AddressFamily:
        if self.kind == "unix":
            return socket.AF_UNIX
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET


def parse_bind(text: str) -> BindSpec:
    """Parse one bind string.

    Args:
        text: ``host:port``, ``host``, ``[::1]:port``, ``unix:/path`` or ``fd://N``.

    Returns:
        The parsed ``BindSpec``.

    Raises:
        ConfigError: the string is not a valid bind.
    """
    if text.startswith("unix:"):
        path = text[len("unix:") :]
        if not path:
            raise ConfigError(f"invalid bind {text!r}: unix socket path is empty")
        return BindSpec("unix", text, path=path)
    if text.startswith("fd://"):
        number = text[len("fd://") :]
        if not number.isdigit():
            raise ConfigError(f"invalid bind {text!r}: expected fd://<number>")
        return BindSpec("fd", text, fd=int(number))
    host, port_text = text, ""
    if text.startswith("["):
        closing = text.find("]")
        if closing == -1:
            raise ConfigError(f"invalid bind {text!r}: missing ']'")
        host, rest = text[1:closing], text[closing + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ConfigError(f"invalid bind {text!r}")
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif text.count(":") > 1:
        # A bare IPv6 address: the last group is the port only when bracketed.
        host = text
    if port_text:
        if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise ConfigError(f"invalid bind {text!r}: bad port {port_text!r}")
        port = int(port_text)
    else:
        port = DEFAULT_PORT
    if not host:
        raise ConfigError(f"invalid bind {text!r}: host is empty")
    return BindSpec("tcp", text, host=host, port=port)


@dataclass(frozen=True, slots=True)
class SocketOptions:
    """How sockets are made. ``reuse_port`` sets ``SO_REUSEPORT`` on IP sockets: other
    sockets of the same user may then bind the same address and share its traffic."""

    backlog: int = 100
    umask: int | None = None
    user: int | None = None
    group: int | None = None
    reuse_port: bool = False


def create_socket(
    spec: BindSpec, options: SocketOptions, type_: int = socket.SOCK_STREAM
) -> socket.socket:
    """Create, bind and (for stream sockets) listen on one socket.

    Raises:
        BindError: the address cannot be bound (in use, not permitted, ...).
        SocketTypeError: an ``fd://`` descriptor is not of ``type_``.
    """
    if spec.kind == "fd":
        sock = socket.socket(fileno=spec.fd)
        actual = sock.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)
        if actual != type_:
            sock.detach()
            raise SocketTypeError(type_, actual)
        with contextlib.suppress(OSError):  # as Hypercorn does; no effect once bound
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    else:
        sock = socket.socket(spec.family, type_)
        try:
            _bind(sock, spec, options, type_)
        except OSError as error:
            sock.close()
            reason = os.strerror(error.errno) if error.errno else str(error)
            if error.errno == errno.EADDRINUSE:
                reason = "address already in use"
            raise BindError(error.errno, f"cannot listen on {spec.text}: {reason}") from error
    if type_ == socket.SOCK_STREAM:
        sock.listen(options.backlog)
    sock.setblocking(False)
    sock.set_inheritable(True)
    return sock


def _bind(sock: socket.socket, spec: BindSpec, options: SocketOptions, type_: int) -> None:
    if spec.kind != "unix":
        if type_ == socket.SOCK_STREAM:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if options.reuse_port and hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    # SO_REUSEADDR alone lets a restart bind past connections in TIME_WAIT, never
    # past a live listener: a second server on a held port fails (EADDRINUSE).
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if spec.kind == "unix":
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.stat(spec.path).st_mode):
                os.remove(spec.path)
        previous = os.umask(options.umask) if options.umask is not None else None
        try:
            sock.bind(spec.path)
        finally:
            if previous is not None:
                os.umask(previous)
        if options.user is not None or options.group is not None:
            os.chown(
                spec.path,
                -1 if options.user is None else options.user,
                -1 if options.group is None else options.group,
            )
        return
    sock.bind((spec.host, spec.port))


def create_sockets(
    binds: Iterable[str], options: SocketOptions, type_: int = socket.SOCK_STREAM
) -> list[socket.socket]:
    """Create a socket for each bind; on failure close those already made."""
    specs = [parse_bind(bind) for bind in binds]
    created: list[socket.socket] = []
    try:
        for spec in specs:
            created.append(create_socket(spec, options, type_))
    except BaseException:
        for sock in created:
            sock.close()
        raise
    return created


def reuse_port_twin(sock: socket.socket) -> socket.socket:
    """Another socket bound to ``sock``'s address in its ``SO_REUSEPORT`` group.

    The kernel spreads datagrams over the sockets of the group by flow, so
    each process that reads its own twin keeps its own flows (QUIC).

    Returns:
        The new socket (non-blocking, inheritable), or ``sock`` itself when it
        is not in a ``SO_REUSEPORT`` group (an inherited one): it is then shared.

    Raises:
        OSError: the address cannot be bound again.
    """
    reuse_port = getattr(socket, "SO_REUSEPORT", None)
    if reuse_port is None or not sock.getsockopt(socket.SOL_SOCKET, reuse_port):
        return sock
    twin = socket.socket(sock.family, sock.type)
    try:
        twin.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        twin.setsockopt(socket.SOL_SOCKET, reuse_port, 1)
        twin.bind(sock.getsockname())
    except BaseException:
        twin.close()
        raise
    twin.setblocking(False)
    twin.set_inheritable(True)
    return twin


SD_LISTEN_FDS_START = 3


def systemd_sockets(environ: dict[str, str] | None = None) -> list[socket.socket]:
    """The listeners systemd passed by socket activation (``LISTEN_FDS``), if any.

    systemd hands over ``LISTEN_FDS`` descriptors from 3 upward, meant for the
    process named by ``LISTEN_PID``; a variable meant for another process (a
    parent that did not clear it) is ignored. The variables are removed, so
    processes started later do not claim the descriptors too.

    Args:
        environ: the environment to read and clean (default ``os.environ``).

    Returns:
        The inherited sockets, non-blocking and inheritable; empty without
        socket activation.
    """
    env = os.environ if environ is None else environ
    count, pid = env.get("LISTEN_FDS", ""), env.get("LISTEN_PID", "")
    if not count.isdigit() or (pid and pid != str(os.getpid())):
        return []
    for name in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        env.pop(name, None)
    sockets = []
    for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + int(count)):
        sock = socket.socket(fileno=fd)
        sock.setblocking(False)
        sock.set_inheritable(True)
        sockets.append(sock)
    return sockets
