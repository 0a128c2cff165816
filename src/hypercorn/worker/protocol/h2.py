"""The server side of an HTTP/2 connection, sans I/O (RFC 9113).

Theory of operation
-------------------
``H2Session`` (``h2_session``, ``h2_output``) frames and parses, keeps the
flow-control windows and moves streams through their states; this class
overrides its hooks to turn what the peer sends into our events, and turns
our events into frames. Nothing here sees a frame header.

Streams. A request's HEADERS become ``RequestReceived`` (``http_version``
"2", ``:authority`` as the ``host`` header, pseudo-headers removed), its DATA
``BodyReceived``, END_STREAM ``BodyEnded``, a RST_STREAM from the peer (or
the server's own reset of a stream for its error) ``StreamClosed``. A
stream is forgotten once both sides have ended it; a response that ends
before its request body resets the stream with NO_ERROR (RFC 9113 section
8.1), so the client stops sending.

Flow control, inbound. Request body bytes are acknowledged (WINDOW_UPDATE)
only when the stream layer reports them consumed (``acknowledge``), so an app
that does not read back-pressures its client through the stream window, and
at most one stream window per stream is ever buffered. Bytes of a stream that
is gone are given back to the connection window at once.

Flow control, outbound. Response body bytes are queued per stream and sent
as the peer's windows allow (``stream_blocked`` says whether a stream still
has bytes queued, so its ``send`` can wait). Queued bytes are framed on the
next ``data_to_send``, which lets a head and a complete body leave together.

Headers. ``h2_headers`` checks every inbound block; a malformed one is a
connection error (PROTOCOL_ERROR), and so is a malformed trailer block,
even one that arrives for a stream the server has already reset. HPACK
blocks a connection repeats are decoded and encoded once (``h2_hpack``).

Limits. The session enforces the limits it advertises and the flood
budgets. After ``keep_alive_max_requests`` streams, or on ``begin_drain``, a
GOAWAY names the last stream served; later streams are refused
(REFUSED_STREAM) and the connection closes once the streams it kept are
done. With no stream open it closes after ``keep_alive_timeout``. Every close
lingers (``linger_on_close``): the peer's frames may cross our GOAWAY, and a
close with them unread would be a reset that can cut the peer's read.
"""

from __future__ import annotations

import base64
from typing import Protocol, assert_never

from hypercorn.worker.protocol.events import (
    BodyEnded,
    BodyReceived,
    Headers,
    InboundEvent,
    InformationalResponse,
    OutboundEvent,
    RequestReceived,
    RequestRejected,
    ResponseData,
    ResponseEnded,
    ResponseStarted,
    StreamAborted,
    StreamClosed,
    WebSocketAccept,
    WebSocketClose,
    WebSocketSend,
)
from hypercorn.worker.protocol.fields import expects_continue, strip_connection_fields
from hypercorn.worker.protocol.h2_frames import (
    INTERNAL_ERROR,
    NO_ERROR,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
)
from hypercorn.worker.protocol.h2_headers import HeaderChecker, MalformedHeaders
from hypercorn.worker.protocol.h2_limits import FloodLimits
from hypercorn.worker.protocol.h2_output import BY_OUR_RESET, PREFACE
from hypercorn.worker.protocol.h2_responses import H2Responses
from hypercorn.worker.protocol.h2_streams import State, Stream
from hypercorn.worker.protocol.ws import WSSettings
from hypercorn.worker.protocol.ws_h2 import H2WebSockets, opening_request

__all__ = ["CONNECTION_WINDOW", "PREFACE", "SWITCHING_PROTOCOLS", "H2Protocol", "H2Settings"]

SWITCHING_PROTOCOLS = (
    b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n"
)
"""The HTTP/1.1 answer that accepts ``Upgrade: h2c``; HTTP/2 frames follow it."""

CONNECTION_WINDOW = 1024 * 1024
"""The connection-level receive window; each stream keeps the default 64 KiB."""


class H2Settings(WSSettings, Protocol):
    """The settings the protocol reads (``hypercorn.config.Config`` has them)."""

    @property
    def h2_max_concurrent_streams(self) -> int: ...
    @property
    def h2_max_header_list_size(self) -> int: ...
    @property
    def h2_max_inbound_frame_size(self) -> int: ...
    @property
    def keep_alive_timeout(self) -> float: ...
    @property
    def keep_alive_max_requests(self) -> int: ...


class H2Protocol(H2Responses):
    """An HTTP/2 server connection implementing ``ProtocolCore``."""

    __slots__ = (
        "_draining",
        "_headers",
        "_keep_alive_timeout",
        "_max_requests",
        "_requests",
        "tls",
    )

    def __init__(
        self,
        config: H2Settings,
        *,
        tls: bool,
        now: float,
        upgrade: tuple[bytes, RequestReceived] | None = None,
        limits: FloodLimits = FloodLimits(),  # noqa: B008 (frozen)
    ) -> None:
        """Args:
        config: the settings (limits and timeouts) to apply.
        tls: whether the connection is encrypted (gives pushed requests' scheme).
        now: the loop time at which the connection started.
        upgrade: for ``Upgrade: h2c``, the ``HTTP2-Settings`` value and the
            upgrading request, which becomes stream 1 (RFC 7540 section 3.2).
        limits: the flood budgets.
        """
        super().__init__(
            max_concurrent_streams=config.h2_max_concurrent_streams,
            max_header_list_size=config.h2_max_header_list_size,
            max_frame_size=config.h2_max_inbound_frame_size,
            connection_window=CONNECTION_WINDOW,
            now=now,
            limits=limits,
        )
        self.tls = tls
        self._keep_alive_timeout = config.keep_alive_timeout
        self._max_requests = config.keep_alive_max_requests
        self._events: list[InboundEvent] = []
        self._headers = HeaderChecker()
        self._websockets = H2WebSockets(config)
        self._dirty: dict[int, None] = {}
        self._draining = False
        self._requests = 0
        self._now = self._idle_since = now
        if upgrade is not None:
            settings, request = upgrade
            self._out.insert(0, SWITCHING_PROTOCOLS)
            stream = self.open_upgraded(base64.urlsafe_b64decode(settings))
            self._start_stream(stream, request.method, request.target, request.headers, None)

    # -- the seam ------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> None:
        """Feed bytes read from the peer; ``b""`` signals EOF."""
        if self._closed:
            return
        self._now = now
        if data:
            self._receive(data, now)
        else:
            self.connection_lost()

    def connection_lost(self) -> None:
        """The transport is gone; every open stream is reported closed."""
        self._events.extend(StreamClosed(stream_id) for stream_id in self._streams)
        for stream_id in self._streams:
            self._websockets.forget(stream_id)
        self._streams.clear()
        self._dirty.clear()
        super().connection_lost()

    def events_received(self) -> list[InboundEvent]:
        """Return (and forget) the events parsed since the last call."""
        events = self._events
        self._events = []
        return events

    def send(self, event: OutboundEvent, now: float) -> None:
        """Queue an outbound event for its stream.

        Events for a stream that is no longer open are dropped.

        Raises:
            RuntimeError: the events of the stream are out of order.
            ValueError: a status code is invalid.
        """
        stream = self._streams.get(event.stream_id)
        if stream is None or self._closed:
            return
        self._now = now
        match event:
            case ResponseData():
                if event.data and not stream.no_body:
                    if not stream.started:
                        raise RuntimeError("response data before the response started")
                    stream.pending.append(event.data)
                    stream.pending_size += len(event.data)
                    self._dirty[event.stream_id] = None
            case ResponseStarted():
                self._start_response(event, stream)
            case ResponseEnded():
                if not stream.started:
                    raise RuntimeError("response ended before it started")
                stream.ended = True
                stream.trailers = tuple(strip_connection_fields(event.trailers))
                self._dirty[event.stream_id] = None
            case InformationalResponse():
                self._informational(event, stream)
            case StreamAborted():
                self._reset(stream, INTERNAL_ERROR)
            case WebSocketAccept():
                headers = self._websockets.accept(event, now)
                self._start_response(ResponseStarted(event.stream_id, 200, headers), stream)
            case WebSocketSend() | WebSocketClose():
                self._websocket_output(stream, *self._websockets.send(event, now))
            case _:  # pragma: no cover
                assert_never(event)

    def data_to_send(self) -> bytes:
        """Return (and forget) the bytes to write to the peer."""
        if self._dirty:
            self._flush_dirty()
        return self._take_output()

    def handle_timer(self, now: float) -> None:
        """Close an idle connection once ``keep_alive_timeout`` has passed.

        While streams are open, run the WebSockets' timers (pings, close timeouts).
        """
        self._now = now
        if self._streams and not self._closed:
            for stream_id, events, data, ended in self._websockets.handle_timer(now):
                if (stream := self._streams.get(stream_id)) is not None:
                    self._websocket_output(stream, events, data, ended)
            return
        deadline = self.next_deadline()
        if deadline is not None and now >= deadline:
            self._goaway(NO_ERROR)
            self._closed = True

    def next_deadline(self) -> float | None:
        """The end of the keep-alive period while no stream is open, else the
        WebSockets' next timer."""
        if self._closed:
            return None
        if self._streams:
            return self._websockets.next_deadline()
        return self._idle_since + self._keep_alive_timeout

    @property
    def should_close(self) -> bool:
        """True once the connection must close after writing what is queued."""
        return self._closed or (self._draining and not self._streams)

    @property
    def linger_on_close(self) -> bool:
        """Always: after our GOAWAY the peer may still send (WINDOW_UPDATE, SETTINGS and
        PING acknowledgements, RST_STREAM) frames that cross it on the wire. A close
        with those unread would be answered by the kernel with a reset, which can
        destroy responses the client has not read yet; FIN first, then the peer's EOF.
        """
        return True

    @property
    def closed(self) -> bool:
        """True once nothing more is read or sent (GOAWAY with an error, EOF, timeout)."""
        return self._closed

    @property
    def reading_paused(self) -> bool:
        """Flow control bounds what the peer may send; only a closed connection stops reading."""
        return self._closed

    # -- HTTP/2 specifics, for the I/O layer ----------------------------------

    @property
    def idle(self) -> bool:
        """True while no stream is open."""
        return not self._streams

    @property
    def last_stream_id(self) -> int:
        """The highest client stream served so far (0 before the first request)."""
        return self._last_stream_id

    def stream_blocked(self, stream_id: int) -> bool:
        """True while response bytes of ``stream_id`` wait for flow-control window."""
        stream = self._streams.get(stream_id)
        return stream is not None and stream.pending_size > 0

    def acknowledge(self, stream_id: int, size: int) -> None:
        """The app consumed ``size`` request body bytes: give their window back."""
        stream = self._streams.get(stream_id)
        if stream is None or self._closed:
            return
        size = min(size, stream.unacked)
        if size > 0:
            stream.unacked -= size
            self._consumed(stream, size)

    def push(self, stream_id: int, path: bytes, headers: Headers) -> None:
        """Promise a pushed ``GET path`` on ``stream_id`` and start it as a request.

        Dropped when the client disabled push or has its concurrent streams,
        the stream's response is complete, or the connection is closing
        (RFC 9113 section 8.4).
        """
        stream = self._streams.get(stream_id)
        if stream is None or stream.ended or self._closed or self._draining:
            return
        request_headers = [
            (b":method", b"GET"),
            (b":scheme", b"https" if self.tls else b"http"),
            (b":authority", stream.authority),
            (b":path", path),
            *strip_connection_fields(headers),
        ]
        promised = self.push_promise(stream, request_headers)
        if promised is not None:
            fields = tuple(request_headers[4:])
            self._start_stream(promised, "GET", path, fields, stream.authority)

    def begin_drain(self) -> None:
        """Graceful shutdown: GOAWAY with the last stream id; close once streams end."""
        if not self._closed and not self._draining:
            self._goaway(NO_ERROR)

    # -- inbound: the session's hooks ------------------------------------------

    def _on_request(self, stream: Stream, fields: list[tuple[bytes, bytes]], ended: bool) -> None:
        if self._draining:
            self.reset_stream(stream, REFUSED_STREAM)
            return
        try:
            method, path, authority, protocol, headers = self._headers.read_request(fields)
        except MalformedHeaders:
            self._close(stream, BY_OUR_RESET)  # never reported: no StreamClosed for it
            self._fail(PROTOCOL_ERROR)
            return
        stream_id = stream.stream_id
        if method == b"CONNECT":
            upgrade = opening_request(stream_id, protocol, path, headers)
            if upgrade is None:
                self._events.append(RequestRejected(stream_id, 405, "CONNECT is not served"))
                self.send_headers(stream, [(b":status", b"405")], True)
                self._sent_end(stream)
                return
            self._requests += 1
            self._last_stream_id = stream_id
            stream.authority = authority
            self._events.append(upgrade)
            return
        self._start_stream(stream, method.decode("ascii"), path, headers, authority)
        if self._requests >= self._max_requests:
            self._goaway(NO_ERROR)

    def _start_stream(
        self,
        stream: Stream,
        method: str,
        target: bytes,
        headers: Headers,
        authority: bytes | None,
    ) -> None:
        if authority is None:
            authority = next((value for name, value in headers if name == b"host"), b"")
        stream_id = stream.stream_id
        self._requests += 1
        if stream_id & 1:
            self._last_stream_id = stream_id
        stream.authority = authority
        stream.no_body = method == "HEAD"
        self._events.append(
            RequestReceived(stream_id, method, target, headers, "2", expects_continue(headers))
        )
        if stream.remote_ended:
            self._events.append(BodyEnded(stream_id))

    def _on_trailers(self, stream: Stream, fields: list[tuple[bytes, bytes]]) -> None:
        self._on_late_fields(fields)

    def _on_late_fields(self, fields: list[tuple[bytes, bytes]]) -> None:
        try:  # checked, then dropped: the events carry no trailers
            self._headers.trailers(fields)
        except MalformedHeaders:
            self._fail(PROTOCOL_ERROR)

    def _on_data(self, stream: Stream, data: bytes, ended: bool) -> None:
        if self._closed:
            return
        stream_id = stream.stream_id
        if stream_id in self._websockets:
            if data:  # parsed at once: the window is given back at once
                self._consumed(stream, len(data))
            if data or ended:
                result = self._websockets.receive(stream_id, data, self._now)
                self._websocket_output(stream, *result)
            return
        if data:
            stream.unacked += len(data)
            self._events.append(BodyReceived(stream_id, data))
        if ended:
            self._events.append(BodyEnded(stream_id))
            if stream.state is State.CLOSED:
                self._forget(stream)

    def _on_stream_reset(self, stream: Stream) -> None:
        self._websockets.forget(stream.stream_id)
        self._events.append(StreamClosed(stream.stream_id))
        self._forget(stream)

    def _on_window(self, stream_id: int) -> None:
        """More window: streams with output queued may send it."""
        if stream_id:
            if (stream := self._streams.get(stream_id)) is not None and stream.pending:
                self._dirty[stream_id] = None
        else:
            self._dirty.update((sid, None) for sid, s in self._streams.items() if s.pending)

    def _on_goaway(self, code: int) -> None:
        if code:
            self.connection_lost()
        else:
            self._draining = True  # the peer opens no more streams

    # -- connection end ------------------------------------------------------

    def _goaway(self, code: int) -> None:
        """GOAWAY that keeps serving the streams it names (RFC 9113 section 6.8),
        framed after what is queued (some clients, h2 among them, stop reading
        a stream at GOAWAY: a WebSocket's close frame queued before must precede it)."""
        if not self._draining:
            self._flush_dirty()
            self._draining = True
            self.goaway(code)

    def _fail(self, code: int) -> None:
        """A connection error (RFC 9113 section 5.4.1): GOAWAY, then close."""
        self._draining = True
        super()._fail(code)
