"""The seams between the sans-IO protocols and the I/O layer.

Theory of operation
-------------------
The I/O layer (``worker/io`` for asyncio; any other loop's the same way)
owns the socket, the loop and the clock. For each connection it holds one
``ServerProtocol`` (a ``connection.ServerConnection``) and drives it:

1. bytes arrive: ``receive_data(data, now)``; ``b""`` means the peer closed
   its sending side (EOF);
2. it drains ``events_received()`` and hands each event to the stream it
   names (``worker/router``);
3. streams answer with ``send(event, now)`` and reach the protocol for
   flow control (``stream_blocked``, ``acknowledge``, ``set_receive_paused``)
   and push;
4. after every call it writes ``pieces_to_send()`` (one write, or one
   ``writelines`` when a large body piece is left uncopied beside the head;
   several streams' output may be gathered into one write per loop turn while
   ``multiplexed``), closes the transport once ``should_close`` is true and
   nothing is left to write (shutting its sending side first and dropping
   what still arrives when ``linger_on_close``, or when bytes wait unread;
   before a gentle close with bytes unread it tells ``input_waiting``),
   pauses reading while ``reading_paused`` is true, and (re)arms one timer
   at ``next_deadline()`` or earlier, calling ``handle_timer(now)`` when it
   fires (a call before the deadline must change nothing);
5. a stream's file body (``http.response.pathsend`` and ``zerocopysend``)
   may leave by ``sendfile``: ``raw_body_allowed`` says how many of its
   bytes need no framing of the protocol's, and the I/O layer writes them
   after ``pieces_to_send()`` (while writing nothing else) and reports them
   with ``raw_body_written``; the protocol counts them as body sent;
6. it reports its transport's write buffer (``set_write_paused``), and the
   worker's shutdown (``begin_drain``); ``reusable`` tells the request limit
   whether the connection may still bring a request;
7. when the transport is lost, ``connection_lost()``: every open stream
   gets a ``StreamClosed`` (or ``WebSocketClosed``).

Protocol errors are raised inside the protocol and turned into a response
(or a close) at its own boundary; they never escape these methods.

``ProtocolCore`` is the part every single protocol (HTTP/1.1, HTTP/2, a
WebSocket) offers; ``ServerConnection`` wraps one of them at a time and adds
the rest, so the I/O layer never learns which it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from hypercorn.worker.protocol.events import ConnectionInfo, Headers, InboundEvent, OutboundEvent

if TYPE_CHECKING:
    from hypercorn.worker.protocol.h2 import H2Settings
    from hypercorn.worker.protocol.http11 import H11Settings

    class ConnectionSettings(H11Settings, H2Settings, Protocol):
        """Every setting of the protocols a connection may come to speak."""


class ProtocolCore(Protocol):
    """One protocol's server side of a byte stream, with no I/O of its own."""

    def receive_data(self, data: bytes, now: float) -> None:
        """Feed bytes read from the peer; ``b""`` signals EOF."""

    def connection_lost(self) -> None:
        """The transport is gone; open streams are reported closed."""

    def events_received(self) -> list[InboundEvent]:
        """Return (and forget) the events parsed since the last call."""
        ...

    def send(self, event: OutboundEvent, now: float) -> None:
        """Queue an outbound event; its bytes appear in ``data_to_send``."""

    def data_to_send(self) -> bytes:
        """Return (and forget) the bytes to write to the peer."""
        ...

    def handle_timer(self, now: float) -> None:
        """Act on expired deadlines (keep-alive, read timeout); nothing before them."""

    def next_deadline(self) -> float | None:
        """The loop time at which ``handle_timer`` must next run, if any."""
        ...

    @property
    def should_close(self) -> bool:
        """True once the connection must be closed after writing what is queued."""
        ...

    @property
    def reading_paused(self) -> bool:
        """True while the protocol holds enough unprocessed input (pipelining)."""
        ...

    @property
    def linger_on_close(self) -> bool:
        """True if the peer may still be sending when ``should_close``: shut our
        side first, read and drop until its EOF (bounded), so that our close
        does not reset a connection whose last bytes the peer has not read."""
        ...


class ServerProtocol(ProtocolCore, Protocol):
    """Everything the I/O layer drives on one connection (see the module doc)."""

    info: ConnectionInfo
    """Addresses, scheme, TLS details and the protocol's name, for new streams."""

    close_reason: str | None
    """Why the connection was refused before any request, for a debug log line."""

    @property
    def multiplexed(self) -> bool:
        """True while several streams share the connection."""
        ...

    @property
    def reusable(self) -> bool:
        """True if the connection may still bring a request."""
        ...

    def pieces_to_send(self) -> list[bytes]:
        """Return (and forget) the bytes to write, as pieces for one
        ``writelines``: ``b"".join`` of them is what ``data_to_send`` would
        return; a large piece may stand alone so that it is not copied. Empty
        when there is nothing to write."""
        ...

    def set_write_paused(self, paused: bool) -> None:
        """The transport's write buffer is full (True) or has drained (False)."""

    def set_receive_paused(self, stream_id: int, paused: bool) -> None:
        """A stream asks for reading to pause, or lets it resume."""

    def stream_blocked(self, stream_id: int) -> bool:
        """True while the stream's sent bytes wait for flow-control window."""
        ...

    def acknowledge(self, stream_id: int, size: int) -> None:
        """The app consumed ``size`` request body bytes of the stream."""

    def raw_body_allowed(self, stream_id: int, size: int) -> int:
        """How many of ``size`` response body bytes of the stream the I/O layer
        may write itself, right after ``pieces_to_send()``: 0 where the bytes
        need the protocol's framing (HTTP/2 frames, chunks) or none may be sent."""
        ...

    def raw_body_written(self, stream_id: int, size: int) -> None:
        """The I/O layer wrote ``size`` body bytes of the stream itself."""

    def push(self, stream_id: int, path: bytes, headers: Headers) -> None:
        """Promise and start ``GET path`` as a pushed request, where supported."""

    def begin_drain(self, now: float) -> None:
        """The worker stops: finish what is under way, then close."""

    def input_waiting(self, now: float) -> None:
        """Bytes wait unread in the transport as the connection would close
        gently: a close that was only for idleness gives way to lingering on."""
