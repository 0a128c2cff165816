"""The worker's I/O on trio: trio streams and sockets under the same connections.

Theory of operation
-------------------
Every decision about a connection is made once, above this module: by the
sans-IO ``ServerConnection`` and by ``HTTPConnection`` (``worker/io.py``),
which drives it through asyncio's ``Protocol`` callbacks and a transport's
calls. Here a ``TrioTransport`` gives ``HTTPConnection`` exactly those
transport calls over a trio stream (a ``SocketStream``, or an ``SSLStream``
over one), so the trio worker serves with the very objects the asyncio one
does, and only bytes and time differ:

* one task per connection runs two loops in a nursery: the reader calls
  ``receive_some`` and hands bytes to ``data_received`` (``eof_received``
  at EOF) unless reading is paused; the writer sends what ``write`` queued
  with one ``send_all`` per batch, then the FIN that ``write_eof`` asked
  for, and returns once ``close`` asked and the queue is empty;
* ``write`` only queues, so the app's ``send`` never waits for the socket;
  bytes queued or in flight past ``HIGH_WATER`` call ``pause_writing``, and
  ``resume_writing`` once they are down to ``LOW_WATER`` (asyncio's
  defaults), which is how a slow client back-pressures the app;
* ``abort`` cancels the connection's scope; whatever ends it, the stream is
  closed (a TLS stream sends close_notify, bounded) and ``connection_lost``
  is called exactly once;
* timers and "soon" calls are ``TrioLoop``'s (``shared/trio_loop.py``);
* a file body (``send_file``, called by ``HTTPConnection`` while it holds
  all other output) waits for the writer to empty its queue, then goes by
  ``os.sendfile`` on the socket, waiting with ``wait_writable`` when it is
  full, with the socket's unsent bytes limited as ``sendfile.py`` explains:
  a plain socket only, as TLS encrypts in user space. It checks that
  the transport is not closing before each call, so the descriptor is still
  this connection's (trio closes the stream only after ``_closing`` is set).

``trio_listener`` makes a ``Listener`` (``worker/listener.py``: batches, the
request limit, running out of descriptors) whose trio part, ``TrioAccepting``,
waits for readability with ``trio.lowlevel.wait_readable`` and serves each
accepted socket in a task.
``TrioDatagramTransport`` and ``pump_datagrams`` feed a ``QuicServer``
(``worker/udp.py``) from a trio UDP socket; a datagram the kernel cannot
take at once is dropped, which QUIC recovers from.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, cast

import trio

from hypercorn.worker.listener import Listener
from hypercorn.worker.sendfile import (
    FULL,
    UNSENT_LIMIT,
    limit_unsent,
    restore_unsent,
    send_some,
)

if TYPE_CHECKING:
    from hypercorn.shared.eventloop import Task
    from hypercorn.shared.trio_loop import TrioLoop
    from hypercorn.worker.context import WorkerContext
    from hypercorn.worker.io import HTTPConnection
    from hypercorn.worker.udp import QuicServer

__all__ = [
    "TrioAccepting",
    "TrioDatagramTransport",
    "TrioTransport",
    "pump_datagrams",
    "trio_listener",
]

HIGH_WATER = 64 * 1024
LOW_WATER = HIGH_WATER // 4
READ_SIZE = 64 * 1024
CLOSE_TIMEOUT = 1.0  # seconds a TLS close_notify may take
_STREAM_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


class TrioTransport:
    """asyncio's transport calls, as ``HTTPConnection`` makes them, over a trio stream.

    Args:
        stream: the connection's stream (``SocketStream`` or ``SSLStream``).
        sock: its socket (None for an in-memory stream, in tests).
        protocol: the connection (``connection_made`` is called by ``run``).
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        sock: trio.socket.SocketType | None,
        protocol: HTTPConnection,
    ) -> None:
        self._stream = stream
        self._sock = sock
        self._protocol = protocol
        self._secure = isinstance(stream, trio.SSLStream)
        self._out: list[bytes] = []
        self._queued = 0  # bytes in _out
        self._in_flight = 0  # bytes in the send_all under way
        self._wakeup = trio.Event()  # the writer's
        self._resumed = trio.Event()  # the reader's, while paused
        self._reading = True
        self._write_paused = False
        self._eof = False  # write_eof asked
        self._closing = False
        self._flushed: trio.Event | None = None  # a file body waits for the queue to empty
        self._error: BaseException | None = None
        self._scope = trio.CancelScope()

    # -- asyncio's transport calls ------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self._closing:
            return
        self._out.append(data)
        self._queued += len(data)
        self._wakeup.set()
        if not self._write_paused and self._queued + self._in_flight > HIGH_WATER:
            self._write_paused = True
            self._protocol.pause_writing()

    def writelines(self, pieces: Iterable[bytes]) -> None:
        for piece in pieces:
            self.write(piece)

    def write_eof(self) -> None:
        self._eof = True
        self._wakeup.set()

    def can_write_eof(self) -> bool:
        return not self._secure

    def close(self) -> None:
        self._closing = True
        self._wakeup.set()

    def abort(self) -> None:
        self._closing = True
        self._scope.cancel()

    def is_closing(self) -> bool:
        return self._closing

    def pause_reading(self) -> None:
        self._reading = False

    def resume_reading(self) -> None:
        self._reading = True
        self._resumed.set()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        sock = self._sock
        if name == "socket":
            return sock
        if name == "sockname":
            return default if sock is None else sock.getsockname()
        if name == "peername" and sock is not None:
            try:
                return sock.getpeername()
            except OSError:
                return default
        if name == "ssl_object" and self._secure:
            return self._stream  # forwards version(), cipher(), getpeercert(), ALPN
        return default

    async def send_file(self, fd: int, offset: int, count: int) -> int:
        """Write up to ``count`` bytes of the file ``fd`` from ``offset`` with
        ``os.sendfile``, after everything queued; the caller writes nothing
        else until this returns.

        Returns:
            The bytes written: 0 on TLS (or without a socket), fewer than
            ``count`` if the file ended early, the transport began closing,
            or the file cannot be sent from.

        Raises:
            ConnectionError: the peer reset or closed the connection.
            OSError: reading the file failed.
        """
        sock = self._sock
        if self._secure or sock is None:
            return 0
        while (self._out or self._in_flight) and not self._closing:
            flushed = self._flushed = trio.Event()
            self._wakeup.set()
            await flushed.wait()
        fileno = sock.fileno()
        sent = 0
        before = None if self._closing else limit_unsent(sock, UNSENT_LIMIT)
        try:
            while sent < count and not self._closing:
                written = send_some(fileno, fd, offset + sent, count - sent)
                if written == FULL:
                    try:
                        await trio.lowlevel.wait_writable(sock)
                    except trio.ClosedResourceError:
                        break  # lost meanwhile: the caller sees the transport closing
                    continue
                if not written:
                    break  # the file ended before ``count``, or cannot be sent from
                sent += written
                await trio.lowlevel.checkpoint()  # a fast reader must not hold the run
        finally:
            if before is not None and not self._closing:
                restore_unsent(sock, before)
        return sent

    def _wake_file(self) -> None:
        if self._flushed is not None:
            self._flushed.set()
            self._flushed = None

    # -- the connection's task ------------------------------------------------------------

    async def run(self) -> None:
        """Serve the connection until it is closed or lost."""
        try:
            self._protocol.connection_made(self)  # type: ignore[arg-type]  # duck-typed
            with self._scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._read)
                    await self._write()
                    nursery.cancel_scope.cancel()
        finally:
            self._closing = True
            self._wake_file()
            if self._error is None and not self._scope.cancel_called:
                with trio.move_on_after(CLOSE_TIMEOUT) as closing:
                    await self._stream.aclose()
                if closing.cancelled_caught:
                    await trio.aclose_forcefully(self._stream)
            else:
                await trio.aclose_forcefully(self._stream)
            self._protocol.connection_lost(self._error)  # type: ignore[arg-type]

    def _lose(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        self._closing = True
        self._scope.cancel()

    async def _read(self) -> None:
        stream, protocol = self._stream, self._protocol
        while True:
            if not self._reading:
                self._resumed = trio.Event()
                await self._resumed.wait()
                continue
            try:
                data = await stream.receive_some(READ_SIZE)
            except _STREAM_ERRORS as error:
                self._lose(error)
                return
            if not data:
                # asyncio closes a TLS transport at EOF, a plain one unless asked not to.
                if not protocol.eof_received() or self._secure:
                    self.close()
                return
            protocol.data_received(data if type(data) is bytes else bytes(data))

    async def _write(self) -> None:
        stream = self._stream
        eof_sent = False
        while True:
            if self._out:
                chunks, self._out = self._out, []
                data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                self._in_flight, self._queued = len(data), 0
                try:
                    await stream.send_all(data)
                except _STREAM_ERRORS as error:
                    self._lose(error)
                    return
                self._in_flight = 0
                if self._write_paused and self._queued <= LOW_WATER:
                    self._write_paused = False
                    self._protocol.resume_writing()
                continue
            self._wake_file()
            if self._closing:
                return
            if self._eof and not eof_sent:
                eof_sent = True
                try:
                    await stream.send_eof()  # type: ignore[attr-defined]  # plain sockets only
                except _STREAM_ERRORS as error:
                    self._lose(error)
                    return
                continue
            await self._wakeup.wait()
            self._wakeup = trio.Event()


async def serve_connection(
    sock: socket.socket,
    protocol: HTTPConnection,
    ssl_context: ssl.SSLContext | None,
    handshake_timeout: float,
) -> None:
    """Serve one accepted socket (after its TLS handshake) with ``protocol``."""
    trio_sock = trio.socket.from_stdlib_socket(sock)
    stream: trio.abc.Stream = trio.SocketStream(trio_sock)
    if ssl_context is not None:
        stream = trio.SSLStream(stream, ssl_context, server_side=True, https_compatible=True)
        try:
            with trio.fail_after(handshake_timeout):
                await stream.do_handshake()
        except (trio.TooSlowError, *_STREAM_ERRORS) as error:
            protocol.ctx.log.error_logger.debug("connection not established: %r", error)
            await trio.aclose_forcefully(stream)
            return
    await TrioTransport(stream, trio_sock, protocol).run()


class TrioAccepting:
    """A ``Listener``'s part on trio (``AcceptHooks``): readability from trio, an
    accepted socket served by ``serve_connection`` in its own task."""

    def __init__(self, loop: TrioLoop) -> None:
        self._loop = loop
        self._watcher: Task | None = None

    def watch(self, sock: socket.socket, readable: Callable[[], None]) -> None:
        self._watcher = self._loop.create_task(self._wait_readable(sock, readable))

    def unwatch(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None

    def closing(self, sock: socket.socket) -> None:
        trio.lowlevel.notify_closing(sock)

    async def establish(
        self,
        conn: socket.socket,
        protocol: HTTPConnection,
        ssl_context: ssl.SSLContext | None,
        handshake_timeout: float,
    ) -> None:
        await serve_connection(conn, protocol, ssl_context, handshake_timeout)

    @staticmethod
    async def _wait_readable(sock: socket.socket, readable: Callable[[], None]) -> None:
        while True:
            try:
                await trio.lowlevel.wait_readable(sock)
            except trio.ClosedResourceError:
                return
            readable()


def trio_listener(
    ctx: WorkerContext,
    sock: socket.socket,
    factory: Callable[[], HTTPConnection],
    *,
    ssl_context: ssl.SSLContext | None = None,
    batch: int = 100,
) -> Listener:
    """``Listener`` on trio."""
    hooks = TrioAccepting(cast("TrioLoop", ctx.loop))
    return Listener(ctx, sock, factory, ssl_context=ssl_context, batch=batch, hooks=hooks)


class TrioDatagramTransport:
    """asyncio's datagram transport calls, as ``QuicServer`` makes them, over a UDP socket."""

    def __init__(self, sock: socket.socket, server: QuicServer) -> None:
        self._raw = sock
        self._sock = trio.socket.from_stdlib_socket(sock)
        self._server = server
        self._closing = False

    def sendto(self, data: bytes, addr: Any) -> None:
        try:
            self._raw.sendto(data, addr)  # non-blocking: never waits
        except (BlockingIOError, InterruptedError):
            pass  # the kernel's buffer is full: dropped, as a network would
        except OSError as error:
            self._server.error_received(error)

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            trio.lowlevel.notify_closing(self._sock)
            self._sock.close()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._sock if name == "socket" else default


async def pump_datagrams(sock: socket.socket, server: QuicServer) -> None:
    """Feed ``server`` every datagram of ``sock`` until its transport is closed."""
    transport = TrioDatagramTransport(sock, server)
    trio_sock = transport._sock
    server.connection_made(transport)  # type: ignore[arg-type]  # duck-typed
    try:
        while not transport.is_closing():
            try:
                data, addr = await trio_sock.recvfrom(65536)
            except trio.ClosedResourceError:
                break
            except OSError as error:
                server.error_received(error)
                continue
            server.datagram_received(data, addr)
    finally:
        transport.close()
        server.connection_lost(None)
