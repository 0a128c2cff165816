"""The worker's accept loop: one ``Listener`` per listening TCP or unix socket.

Theory of operation
-------------------
asyncio's servers accept a batch of connections, then build each one's
transport in a task of its own, loop turns later. A server closed in between
(the worker reached its request limit) drops the sockets it has already
accepted: they are closed unread and the kernel answers the client's request
with a reset. Nor can such a server stop at an exact count. So the worker
accepts by itself, and keeps three invariants:

* every socket it accepts becomes a connection: ``connect_accepted_socket``
  (with TLS on a secure listener) runs for it whatever happens to the
  listener, and is cancelled only by the worker's final abort;
* from ``accept`` until its protocol's ``connection_made`` (after the TLS
  handshake) the connection is *arriving* in the ``WorkerContext``: it counts
  towards the request limit and towards what graceful shutdown waits for;
* it accepts nothing once the worker stops: each accepted connection is
  counted at once (``check_limit``), and the limit closes every listener
  synchronously, so the rest of a batch stays in the kernel's queue for the
  other workers.

Accepting is batched: one readiness event accepts up to ``batch`` connections
(as asyncio's servers do). ``close`` removes the reader and closes this
process's copy of the socket; the master's copy keeps the shared accept queue
open. Running out of descriptors pauses accepting for a second instead of
spinning.

The listener is compiled with the rest of the serving core: on asyncio and
uvloop the accept loop, each connection's protocol and its connecting task are
made by native code. A loop that is not asyncio's (trio) brings its own part
as ``AcceptHooks``: how to wait for readability, how to connect an accepted
socket, and what to tell the loop before the socket closes.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol, cast

if TYPE_CHECKING:
    from hypercorn.shared.eventloop import Handle
    from hypercorn.worker.context import WorkerContext
    from hypercorn.worker.io import HTTPConnection

__all__ = ["AcceptHooks", "Listener"]

_TASK = "hypercorn connect"  # the name of each accepted socket's connecting task
_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
RESOURCE_RETRY = 1.0  # seconds accepting pauses when the process runs out of descriptors


class AcceptHooks(Protocol):
    """What a loop other than asyncio's does for a ``Listener`` (trio's are in
    ``worker/trio_io.py``)."""

    def watch(self, sock: socket.socket, readable: Callable[[], None]) -> None:
        """Call ``readable`` whenever ``sock`` is readable, until ``unwatch``."""

    def unwatch(self) -> None:
        """Stop calling ``readable``."""

    def closing(self, sock: socket.socket) -> None:
        """``sock`` is about to be closed (it is still open)."""

    def establish(
        self,
        conn: socket.socket,
        protocol: HTTPConnection,
        ssl_context: ssl.SSLContext | None,
        handshake_timeout: float,
    ) -> Awaitable[None]:
        """Connect the accepted socket ``conn`` to ``protocol`` and serve it."""


class Listener:
    """Accepts connections on one listening socket for a worker.

    Args:
        ctx: the worker's context (the request limit, the arriving connections).
        sock: a listening stream socket.
        factory: creates the protocol of one connection.
        ssl_context: TLS for every connection, or None.
        batch: connections accepted at most per readiness event (the backlog).
        hooks: the loop's part where the loop is not asyncio's; None on asyncio
            and uvloop.
    """

    def __init__(
        self,
        ctx: WorkerContext,
        sock: socket.socket,
        factory: Callable[[], HTTPConnection],
        *,
        ssl_context: ssl.SSLContext | None = None,
        batch: int = 100,
        hooks: AcceptHooks | None = None,
    ) -> None:
        self._ctx = ctx
        self._loop = ctx.loop
        self._sock = sock
        self._factory = factory
        self._ssl = ssl_context
        self._batch = max(1, batch)
        self._hooks = hooks
        self._closed = False
        self._retry: Handle | None = None
        sock.setblocking(False)
        sock.listen(batch)
        self._fd = sock.fileno()
        self._raw_accept = sock._accept  # type: ignore[attr-defined]  # socket.accept's own
        self._family, self._type, self._proto = int(sock.family), int(sock.type), sock.proto
        # trio wraps only a ``socket.socket`` itself.
        self._socket_class = _accepted_class(sock) if hooks is None else socket.socket
        self._local = _fixed_local_address(sock)
        self._watch()

    def close(self) -> None:
        """Stop accepting at once; connections already accepted are served."""
        if self._closed:
            return
        self._closed = True
        if self._hooks is not None:
            self._hooks.closing(self._sock)  # before the close, as trio asks
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        else:
            self._unwatch()
        self._sock.close()

    def _watch(self) -> None:
        """Call ``readable`` whenever the socket is readable."""
        if self._hooks is None:
            asyncio.get_running_loop().add_reader(self._fd, self.readable)
        else:
            self._hooks.watch(self._sock, self.readable)

    def _unwatch(self) -> None:
        if self._hooks is None:
            asyncio.get_running_loop().remove_reader(self._fd)
        else:
            self._hooks.unwatch()

    def readable(self) -> None:
        """Accept a batch of connections (the listening socket is readable)."""
        ctx = self._ctx
        for _ in range(self._batch):
            if self._closed:
                return  # the limit was reached by the last connection
            try:
                # The raw accept and a socket made from plain ints: socket.accept()
                # converts the family and type to enums for every connection.
                fd, peer = self._raw_accept()
                conn = self._socket_class(self._family, self._type, self._proto, fd)
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as error:
                if error.errno not in _RESOURCE_ERRORS:
                    raise  # the loop logs it; the next readiness event retries
                ctx.log.error_logger.error(
                    "accept(): %s; pausing for %.0f s", error, RESOURCE_RETRY
                )
                self._unwatch()
                self._retry = self._loop.call_later(RESOURCE_RETRY, self._resume)
                return
            self._connect(conn, fd, peer)
            ctx.check_limit()

    def _connect(self, conn: socket.socket, fd: int, peer: object) -> None:
        # No setblocking(False) here: connect_accepted_socket makes the socket
        # non-blocking itself (asyncio and uvloop alike), one system call less.
        protocol = self._factory()
        # What the transport would be asked again: the socket as it closes
        # (is anything unread?), the addresses as it connects.
        protocol.sock_fd = fd
        protocol.peername = peer
        protocol.sockname = self._local
        # Eagerly where the loop allows it: the transport is made now, and the
        # task first wakes when the connection is made (no loop turn to start
        # it). A connection that failed at once has already ``arrived``.
        task = self._ctx.start(self._establish(conn, protocol), _TASK)
        if not task.done():
            self._ctx.arrive(protocol, task)

    async def _establish(self, conn: socket.socket, protocol: HTTPConnection) -> None:
        # The worker's own loop, not get_running_loop() (a getpid() per call);
        # keyword arguments only for TLS (uvloop parses them at a cost).
        loop = cast(asyncio.AbstractEventLoop, self._loop)
        hooks = self._hooks
        try:
            if hooks is not None:
                timeout = self._ctx.config.ssl_handshake_timeout
                await hooks.establish(conn, protocol, self._ssl, timeout)
            elif self._ssl is None:
                await loop.connect_accepted_socket(lambda: protocol, conn)
            else:
                await loop.connect_accepted_socket(
                    lambda: protocol,
                    conn,
                    ssl=self._ssl,
                    ssl_handshake_timeout=self._ctx.config.ssl_handshake_timeout,
                )
        except Exception as error:  # a failed TLS handshake, a client already gone
            if hooks is not None:
                raise  # the loop's own part reports its failures
            self._ctx.log.error_logger.debug("connection not established: %r", error)
        finally:
            # No done callback: one loop callback less per connection.
            self._ctx.arrived(protocol)

    def _resume(self) -> None:
        self._retry = None
        if not self._closed:
            self._watch()


def _accepted_class(sock: socket.socket) -> type[socket.socket]:
    """The class of the sockets ``sock`` accepts: ``socket.socket`` with its
    ``family`` and ``type`` fixed (the loop checks both for each connection, and
    ``socket.socket`` makes each an enum member anew, a few thousand
    instructions per connection)."""
    fixed = {"__slots__": (), "family": sock.family, "type": sock.type}
    return type("AcceptedSocket", (socket.socket,), fixed)


def _fixed_local_address(sock: socket.socket) -> object:
    """Every accepted connection's local address, if the listener has one
    (bound to one IP address, not a wildcard); None if each socket must say."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    address = sock.getsockname()
    return None if address[0] in ("0.0.0.0", "::") else address
