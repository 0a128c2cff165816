"""The worker's QUIC I/O: one ``asyncio.DatagramProtocol`` per UDP socket.

Theory of operation
-------------------
A ``QuicServer`` owns a UDP transport and a sans-IO ``QuicEndpoint``, which
routes each datagram to its connection by connection id (or answers or drops
it, see ``worker/protocol/h3_endpoint.py``). Each QUIC connection gets an
``H3Connection`` here: the ``StreamHost`` of its streams and a ``Drainable``
of the worker, registered in the worker context like a TCP connection.

Sending is batched: whatever touched a connection (datagrams, an app's
``send``, a timer) marks it dirty and one ``loop.call_soon`` per loop turn
flushes every dirty connection: its events go to their streams, its
datagrams to ``sendto``, the endpoint's routing table is brought in step,
and its one timer is re-armed at ``next_deadline()``. So a response head and
body sent in one turn share packets, and a burst of datagrams is answered
once.

Back-pressure. An app's ``send`` waits (``drain``) while its stream has more
than the protocol's high-water mark unacknowledged, or while the transport's
buffer is full; waiters are woken after every flush of their connection.
Request bodies are not back-pressured (aioquic grants credit as it
delivers), see ``docs/discussion/http3.md``.

Draining: the endpoint admits no new connection; each connection sends
GOAWAY, its WebSockets are closed with 1001, and it closes once its streams
are done.
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING, Any, cast

from hypercorn.shared.addresses import parse_socket_addr
from hypercorn.shared.errors import ClientDisconnectedError
from hypercorn.worker.protocol.events import ConnectionInfo, Headers, OutboundEvent
from hypercorn.worker.protocol.h3 import H3Protocol
from hypercorn.worker.protocol.h3_endpoint import QuicEndpoint
from hypercorn.worker.router import StreamRouter
from hypercorn.worker.waiters import Waiters

if TYPE_CHECKING:
    from hypercorn.shared.eventloop import Handle
    from hypercorn.worker.context import WorkerContext


class QuicServer(asyncio.DatagramProtocol):
    """One UDP socket serving HTTP/3."""

    def __init__(self, ctx: WorkerContext, endpoint: QuicEndpoint) -> None:
        self.ctx = ctx
        self.loop = ctx.loop
        self.endpoint = endpoint
        self.transport: asyncio.DatagramTransport | None = None
        self.server: tuple[str, int | None] | None = None
        self.connections: dict[H3Protocol, H3Connection] = {}
        self._dirty: dict[H3Connection, None] = {}
        self._flush_handle: Handle | None = None
        self.write_paused = False

    # -- asyncio.DatagramProtocol ------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        sock: socket.socket | None = transport.get_extra_info("socket")
        if sock is not None:
            local = parse_socket_addr(sock.family, sock.getsockname())
            self.server = local if isinstance(local, tuple) else None

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        endpoint = self.endpoint
        try:
            protocol = endpoint.receive_datagram(data, addr, self.loop.time())
        except Exception:
            # One datagram the QUIC stack could not take must not cost the others.
            self.ctx.log.error_logger.exception("QUIC datagram from %s dropped", addr)
            return
        if endpoint.replies:
            self._send_replies()
        if protocol is None:
            return
        connection = self.connections.get(protocol)
        if connection is None:
            connection = H3Connection(self, protocol)
            self.connections[protocol] = connection
            self.ctx.add_connection(connection)
        self.mark(connection)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors for one peer (port unreachable, ...) say nothing about the others.
        self.ctx.log.error_logger.debug("QUIC socket error: %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        for connection in list(self.connections.values()):
            connection.lost()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        for connection in list(self.connections.values()):
            connection.wake_drain_waiters()

    # -- driving ------------------------------------------------------------------

    def mark(self, connection: H3Connection) -> None:
        """Flush ``connection`` at the end of this loop turn."""
        self._dirty[connection] = None
        if self._flush_handle is None:
            self._flush_handle = self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        while self._dirty:
            dirty = self._dirty
            self._dirty = {}
            for connection in dirty:
                connection.flush()

    def sendto(self, datagrams: list[tuple[bytes, tuple[Any, ...]]]) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        for data, addr in datagrams:
            transport.sendto(data, addr)

    def _send_replies(self) -> None:
        replies = self.endpoint.replies
        self.endpoint.replies = []
        self.sendto(replies)

    def forget(self, connection: H3Connection) -> None:
        self.connections.pop(connection.protocol, None)
        self._dirty.pop(connection, None)
        self.ctx.remove_connection(connection)

    def shutdown(self) -> None:
        """Admit no new connection (the connections drain themselves)."""
        self.endpoint.draining = True

    def close(self) -> None:
        """Abort every connection and close the socket."""
        self.endpoint.draining = True
        for connection in list(self.connections.values()):
            connection.abort()
        if self.transport is not None:
            self.transport.close()


class H3Connection:
    """One QUIC connection: protocol <-> streams, and its timer."""

    __slots__ = (
        "_deadline",
        "_drain_waiters",
        "_lost",
        "_timer",
        "ctx",
        "info",
        "loop",
        "protocol",
        "quic_server",
        "router",
    )

    def __init__(self, quic_server: QuicServer, protocol: H3Protocol) -> None:
        self.quic_server = quic_server
        self.ctx = quic_server.ctx
        self.loop = quic_server.loop
        self.protocol = protocol
        peer = protocol.peer_address
        self.info = ConnectionInfo(
            protocol="h3",
            scheme="https",
            client=(str(peer[0]), int(peer[1])) if peer is not None else None,
            server=quic_server.server,
        )
        self.router = StreamRouter(self.ctx, self)
        self._lost = False
        self._deadline: float | None = None
        self._timer: Handle | None = None
        self._drain_waiters = Waiters(self.loop)

    def flush(self) -> None:
        """Dispatch events, send datagrams, re-arm the timer; forget a closed connection."""
        if self._lost:
            return
        protocol = self.protocol
        self._dispatch()
        self.quic_server.sendto(protocol.datagrams_to_send(self.loop.time()))
        self._dispatch()
        self.quic_server.endpoint.track(protocol)
        if self._drain_waiters:
            self.wake_drain_waiters()
        if protocol.closed:
            self.lost()
            return
        deadline = protocol.next_deadline()
        if deadline != self._deadline:
            self._cancel_timer()
            self._deadline = deadline
            if deadline is not None:
                self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._deadline = None
        if not self._lost:
            self.protocol.handle_timer(self.loop.time())
            self.flush()

    def _dispatch(self) -> None:
        events = self.protocol.events_received()
        if events:
            self.router.dispatch(events, self.info, self.loop.time())

    def lost(self) -> None:
        """The connection ended (or the socket closed): end every stream."""
        if self._lost:
            return
        self._lost = True
        self._cancel_timer()
        self.router.close_all()
        self.wake_drain_waiters()
        self.quic_server.forget(self)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deadline = None

    def wake_drain_waiters(self) -> None:
        self._drain_waiters.wake()

    # -- the StreamHost seam ------------------------------------------------------

    def send_events(self, *events: OutboundEvent) -> None:
        if self._lost:
            return
        now = self.loop.time()
        for event in events:
            self.protocol.send(event, now)
        self.quic_server.mark(self)

    @property
    def write_paused(self) -> bool:
        return self.quic_server.write_paused and not self._lost

    def stream_blocked(self, stream_id: int) -> bool:
        return not self._lost and self.protocol.stream_blocked(stream_id)

    async def drain(self, stream_id: int | None = None) -> None:
        while True:
            if self._lost:
                raise ClientDisconnectedError("client disconnected")
            if not self.write_paused and (stream_id is None or not self.stream_blocked(stream_id)):
                return
            await self._drain_waiters.wait()

    async def send_file(self, stream_id: int, fd: int, offset: int, count: int) -> int:
        """QUIC frames and encrypts every byte: the stream reads and sends the file."""
        if self._lost:
            raise ClientDisconnectedError("client disconnected")
        return 0

    def body_consumed(self, stream_id: int, size: int) -> None:
        """aioquic grants flow-control credit itself."""

    def push(self, stream_id: int, path: bytes, headers: Headers) -> None:
        if not self._lost:
            self.protocol.push(stream_id, path, headers)
            self.quic_server.mark(self)

    def set_receive_paused(self, stream_id: int, paused: bool) -> None:
        """Request bodies are not back-pressured over HTTP/3 (see the module doc)."""

    def stream_finished(self, stream_id: int) -> None:
        self.router.finished(stream_id)

    # -- Drainable (shutdown) -------------------------------------------------------

    @property
    def reusable(self) -> bool:
        return False  # request limits count HTTP/3 requests as they start

    def shutdown(self) -> None:
        if self._lost:
            return
        self.router.close_websockets()  # close frames first, then GOAWAY
        self.protocol.begin_drain()
        self.quic_server.mark(self)

    def abort(self) -> None:
        if not self._lost:
            self.lost()
