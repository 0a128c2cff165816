"""The server side of an HTTP/2 connection, sans I/O (RFC 9113), on the h2 library.

Theory of operation
-------------------
h2 frames and parses; this module maps its events onto ours and keeps the
rules h2 leaves to its user. Every h2 type stays in this file.

Streams. A request's HEADERS become ``RequestReceived`` (``http_version``
"2", ``:authority`` as the ``host`` header, pseudo-headers removed), its DATA
``BodyReceived``, END_STREAM ``BodyEnded``, a RST_STREAM from the peer
``StreamClosed``. A stream is forgotten once both sides have ended it; a
response that ends before its request body resets the stream with NO_ERROR
(RFC 9113 section 8.1), so the client stops sending.

Flow control, inbound. Request body bytes are acknowledged (WINDOW_UPDATE)
only when the stream layer reports them consumed (``acknowledge``), so an app
that does not read back-pressures its client through the stream window, and
at most one stream window per stream is ever buffered. Bytes of a stream that
is gone are given back to the connection window at once.

Flow control, outbound. Response body bytes are queued per stream and sent
as the peer's windows allow (``stream_blocked`` says whether a stream still
has bytes queued, so its ``send`` can wait). Queued bytes are written on the
next ``data_to_send``, which lets a head and a complete body leave together.

Headers. h2's own inbound checks are off: ``h2_headers`` makes them, faster,
and a malformed block is a connection error (PROTOCOL_ERROR) as before. HPACK
blocks a connection repeats are decoded and encoded once (``h2_hpack``).

Limits. ``h2_max_concurrent_streams``, ``h2_max_header_list_size`` and
``h2_max_inbound_frame_size`` are advertised and enforced by h2; floods of
cheap frames are charged to ``h2_limits.Budget``s; a header block still
incomplete after ``h2_max_header_list_size`` bytes (a CONTINUATION flood)
is refused. Each breach closes the connection with GOAWAY and its error code.
After ``keep_alive_max_requests`` streams, or on ``begin_drain``, a GOAWAY
names the last stream served; later streams are refused (REFUSED_STREAM) and
the connection closes once the streams it kept are done. With no stream
open it closes after ``keep_alive_timeout``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any, Protocol, assert_never

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import hyperframe.frame
from h2.errors import ErrorCodes

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
from hypercorn.worker.protocol.fields import (
    expects_continue,
    strip_connection_fields,
)
from hypercorn.worker.protocol.h2_headers import HeaderChecker, MalformedHeaders
from hypercorn.worker.protocol.h2_hpack import CachingDecoder, CachingEncoder
from hypercorn.worker.protocol.h2_limits import Budget, FloodLimits, StreamState
from hypercorn.worker.protocol.ws import WSSettings
from hypercorn.worker.protocol.ws_h2 import H2WebSockets, opening_request

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
"""The client connection preface (RFC 9113 section 3.4)."""

SWITCHING_PROTOCOLS = (
    b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n"
)
"""The HTTP/1.1 answer that accepts ``Upgrade: h2c``; HTTP/2 frames follow it."""

RECEIVE_SLICE = 16 * 1024
"""Most bytes handed to h2 at once: a flood is noticed within one slice."""

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


class H2Protocol:
    """An HTTP/2 server connection implementing ``ProtocolCore``."""

    __slots__ = (
        "_closed",
        "_conn",
        "_dirty",
        "_draining",
        "_empty_data",
        "_events",
        "_headers",
        "_idle_since",
        "_keep_alive_timeout",
        "_last_stream_id",
        "_max_header_list",
        "_max_requests",
        "_now",
        "_out",
        "_pings",
        "_requests",
        "_resets",
        "_settings",
        "_streams",
        "_websockets",
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
        self.tls = tls
        self._conn = conn = h2.connection.H2Connection(
            h2.config.H2Configuration(
                client_side=False,
                header_encoding=None,
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
                # h2_headers makes the same checks, in a fraction of the time.
                validate_inbound_headers=False,
                normalize_inbound_headers=False,
            )
        )
        codes = h2.settings.SettingCodes
        conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                codes.MAX_CONCURRENT_STREAMS: config.h2_max_concurrent_streams,
                codes.MAX_HEADER_LIST_SIZE: config.h2_max_header_list_size,
                codes.MAX_FRAME_SIZE: config.h2_max_inbound_frame_size,
                codes.ENABLE_CONNECT_PROTOCOL: 1,  # RFC 8441: WebSockets over streams
            },
        )
        conn.max_inbound_frame_size = config.h2_max_inbound_frame_size
        conn.decoder = CachingDecoder(config.h2_max_header_list_size)
        conn.encoder = CachingEncoder()
        self._max_header_list = config.h2_max_header_list_size
        self._keep_alive_timeout = config.keep_alive_timeout
        self._max_requests = config.keep_alive_max_requests
        self._events: list[InboundEvent] = []
        self._headers = HeaderChecker()
        self._streams: dict[int, StreamState] = {}
        self._websockets = H2WebSockets(config)
        self._dirty: dict[int, None] = {}
        self._closed = False
        self._draining = False
        self._requests = 0
        self._last_stream_id = 0
        self._now = self._idle_since = now
        self._resets = Budget(*limits.resets, now)
        self._settings = Budget(*limits.settings, now)
        self._pings = Budget(*limits.pings, now)
        self._empty_data = Budget(*limits.empty_data, now)
        self._out: list[bytes] = []
        if upgrade is None:
            conn.initiate_connection()
        else:
            settings, request = upgrade
            self._out.append(SWITCHING_PROTOCOLS)
            conn.initiate_upgrade_connection(settings)
            self._start_stream(1, request.method, request.target, request.headers, True)
        conn.increment_flow_control_window(CONNECTION_WINDOW - 65535)

    # -- the seam ------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> None:
        """Feed bytes read from the peer; ``b""`` signals EOF."""
        if self.closed:
            return
        self._now = now
        if not data:
            self.connection_lost()
            return
        # Slices bound the frames h2 handles before a flood is noticed.
        for start in range(0, len(data), RECEIVE_SLICE):
            piece = data if len(data) <= RECEIVE_SLICE else data[start : start + RECEIVE_SLICE]
            try:
                events = self._conn.receive_data(piece)
            except h2.exceptions.ProtocolError as exc:
                self._fail(int(exc.error_code))
                return
            for event in events:
                if not self._handle(event, now):
                    return
            if self._header_block_size() > self._max_header_list:
                self._fail(ErrorCodes.ENHANCE_YOUR_CALM)
                return

    def connection_lost(self) -> None:
        """The transport is gone; every open stream is reported closed."""
        self._events.extend(StreamClosed(stream_id) for stream_id in self._streams)
        for stream_id in self._streams:
            self._websockets.forget(stream_id)
        self._streams.clear()
        self._dirty.clear()
        self._closed = True

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
                self._reset(event.stream_id, stream, ErrorCodes.INTERNAL_ERROR)
            case WebSocketAccept():
                headers = self._websockets.accept(event, now)
                self._start_response(ResponseStarted(event.stream_id, 200, headers), stream)
            case WebSocketSend() | WebSocketClose():
                self._websocket_output(event.stream_id, stream, *self._websockets.send(event, now))
            case _:  # pragma: no cover
                assert_never(event)

    def data_to_send(self) -> bytes:
        """Return (and forget) the bytes to write to the peer."""
        if self._dirty:
            self._flush_dirty()
        if self._out:
            self._out.append(self._conn.data_to_send())
            data = b"".join(self._out)
            self._out.clear()
            return data
        return self._conn.data_to_send()

    def handle_timer(self, now: float) -> None:
        """Close an idle connection once ``keep_alive_timeout`` has passed.

        While streams are open, run the WebSockets' timers (pings, close timeouts).
        """
        self._now = now
        if self._streams and not self._closed:
            for stream_id, events, data, ended in self._websockets.handle_timer(now):
                if (stream := self._streams.get(stream_id)) is not None:
                    self._websocket_output(stream_id, stream, events, data, ended)
            return
        deadline = self.next_deadline()
        if deadline is not None and now >= deadline:
            self._goaway(ErrorCodes.NO_ERROR)
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
            self._conn.acknowledge_received_data(size, stream_id)

    def push(self, stream_id: int, path: bytes, headers: Headers) -> None:
        """Promise a pushed ``GET path`` on ``stream_id`` and start it as a request.

        Dropped when the client disabled push, the stream's response is
        complete, or the connection is closing (RFC 9113 section 8.4).
        """
        stream = self._streams.get(stream_id)
        conn = self._conn
        if (
            stream is None
            or stream.ended
            or self._closed
            or self._draining
            or not conn.remote_settings.enable_push
        ):
            return
        promised = conn.get_next_available_stream_id()
        request_headers = [
            (b":method", b"GET"),
            (b":scheme", b"https" if self.tls else b"http"),
            (b":authority", stream.authority),
            (b":path", path),
            *strip_connection_fields(headers),
        ]
        try:
            conn.push_stream(stream_id, promised, request_headers)
        except h2.exceptions.ProtocolError:
            return  # e.g. the client's concurrent stream limit is reached
        self._start_stream(
            promised, "GET", path, tuple(request_headers[4:]), True, stream.authority
        )

    def begin_drain(self) -> None:
        """Graceful shutdown: GOAWAY with the last stream id; close once streams end."""
        if not self._closed and not self._draining:
            self._goaway(ErrorCodes.NO_ERROR)

    # -- inbound -------------------------------------------------------------

    def _handle(self, event: h2.events.Event, now: float) -> bool:
        """Act on one h2 event; False once the connection has failed."""
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event, now)
        return not self._closed

    def _on_data(self, event: h2.events.DataReceived, now: float) -> None:
        self._data(event, now)

    def _on_request(self, event: h2.events.RequestReceived, now: float) -> None:
        self._request(event)

    def _on_stream_ended(self, event: h2.events.StreamEnded, now: float) -> None:
        self._remote_ended(event.stream_id)

    def _on_window(self, event: h2.events.WindowUpdated, now: float) -> None:
        """More window: streams with output queued may send it."""
        if event.stream_id:
            if (stream := self._streams.get(event.stream_id)) is not None and stream.pending:
                self._dirty[event.stream_id] = None
        else:
            self._dirty.update((sid, None) for sid, s in self._streams.items() if s.pending)

    def _on_settings(self, event: h2.events.RemoteSettingsChanged, now: float) -> None:
        if not self._settings.spend(now):
            self._fail(ErrorCodes.ENHANCE_YOUR_CALM)
            return
        # A new initial window size may open every stream's window.
        self._dirty.update((sid, None) for sid, s in self._streams.items() if s.pending)

    def _on_trailers(self, event: h2.events.TrailersReceived, now: float) -> None:
        try:  # checked, then dropped: the events carry no trailers
            self._headers.trailers(event.headers)
        except MalformedHeaders:
            self._fail(ErrorCodes.PROTOCOL_ERROR)

    def _on_reset(self, event: h2.events.StreamReset, now: float) -> None:
        self._remote_reset(event.stream_id, now)

    def _on_ping(self, event: h2.events.PingReceived, now: float) -> None:
        if not self._pings.spend(now):
            self._fail(ErrorCodes.ENHANCE_YOUR_CALM)

    def _on_goaway(self, event: h2.events.ConnectionTerminated, now: float) -> None:
        if event.error_code:
            self.connection_lost()
        else:
            self._draining = True  # the peer opens no more streams

    def _request(self, event: h2.events.RequestReceived) -> None:
        stream_id = event.stream_id
        if self._draining:
            self._conn.reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)
            return
        try:
            method, path, authority, protocol, headers = self._headers.read_request(event.headers)
        except MalformedHeaders:
            self._fail(ErrorCodes.PROTOCOL_ERROR)  # a connection error, as h2 raised it
            return
        if method == b"CONNECT" and (
            upgrade := opening_request(stream_id, protocol, path, headers)
        ):
            self._requests += 1
            self._last_stream_id = stream_id
            self._streams[stream_id] = StreamState(authority, False, False)
            self._events.append(upgrade)
            return
        if method == b"CONNECT":
            self._events.append(RequestRejected(stream_id, 405, "CONNECT is not served"))
            self._conn.send_headers(stream_id, [(b":status", b"405")], end_stream=True)
            return
        ended = event.stream_ended is not None
        self._start_stream(stream_id, method.decode("ascii"), path, headers, ended, authority)
        if self._requests >= self._max_requests:
            self._goaway(ErrorCodes.NO_ERROR)

    def _start_stream(
        self,
        stream_id: int,
        method: str,
        target: bytes,
        headers: Headers,
        ended: bool,
        authority: bytes | None = None,
    ) -> None:
        if authority is None:
            authority = next((value for name, value in headers if name == b"host"), b"")
        self._requests += 1
        if stream_id % 2:
            self._last_stream_id = stream_id
        self._streams[stream_id] = StreamState(authority, method == "HEAD", ended)
        self._events.append(
            RequestReceived(stream_id, method, target, headers, "2", expects_continue(headers))
        )
        if ended:
            self._events.append(BodyEnded(stream_id))

    def _data(self, event: h2.events.DataReceived, now: float) -> None:
        stream_id = event.stream_id
        size = event.flow_controlled_length
        data = event.data
        if not size and event.stream_ended is None and not self._empty_data.spend(now):
            self._fail(ErrorCodes.ENHANCE_YOUR_CALM)
            return
        stream = self._streams.get(stream_id)
        if stream is None:
            if size:
                self._conn.acknowledge_received_data(size, stream_id)
            return
        if size > len(data):  # padding is never handed to the app
            self._conn.acknowledge_received_data(size - len(data), stream_id)
        if stream_id in self._websockets:
            if data:  # parsed at once: the window is given back at once
                self._conn.acknowledge_received_data(len(data), stream_id)
                self._websocket_output(
                    stream_id, stream, *self._websockets.receive(stream_id, data, now)
                )
            return
        if data:
            stream.unacked += len(data)
            self._events.append(BodyReceived(stream_id, data))

    def _remote_ended(self, stream_id: int) -> None:
        stream = self._streams.get(stream_id)
        if stream is None or stream.remote_ended:
            return  # HEADERS with END_STREAM was reported with the request
        stream.remote_ended = True
        if stream_id in self._websockets:
            self._websocket_output(
                stream_id, stream, *self._websockets.receive(stream_id, b"", self._now)
            )
            return
        self._events.append(BodyEnded(stream_id))
        if stream.ended and not stream.pending and stream.head is None:
            self._forget(stream_id, stream)

    def _remote_reset(self, stream_id: int, now: float) -> None:
        stream = self._streams.pop(stream_id, None)
        if stream is not None:
            self._websockets.forget(stream_id)
            self._events.append(StreamClosed(stream_id))
            self._give_back(stream_id, stream)
            if not self._resets.spend(now):  # CVE-2023-44487, rapid reset
                self._fail(ErrorCodes.ENHANCE_YOUR_CALM)
                return
            self._became_idle()

    def _header_block_size(self) -> int:
        # h2 buffers a header block until END_HEADERS; it bounds the number of
        # CONTINUATION frames, we bound their bytes.
        buffered: Iterable[object] = getattr(self._conn.incoming_buffer, "_headers_buffer", ())
        return sum(len(getattr(frame, "data", b"")) for frame in buffered)

    # -- outbound ------------------------------------------------------------

    def _start_response(self, event: ResponseStarted, stream: StreamState) -> None:
        if stream.started:
            raise RuntimeError("response already started")
        status = event.status_code
        if not 200 <= status <= 599:
            raise ValueError(f"invalid status code {status}")
        if status in (204, 304):
            stream.no_body = True
        stream.head = [(b":status", b"%d" % status), *strip_connection_fields(event.headers)]
        stream.started = True
        self._dirty[event.stream_id] = None

    def _informational(self, event: InformationalResponse, stream: StreamState) -> None:
        status = event.status_code
        if not 100 <= status < 200:
            raise ValueError(f"not an informational status: {status}")
        if stream.started or status == 101:
            return  # RFC 9113 section 8.6: no 101 in HTTP/2
        headers = [(b":status", b"%d" % status), *strip_connection_fields(event.headers)]
        self._conn.send_headers(event.stream_id, headers)

    def _flush_dirty(self) -> None:
        """Hand h2 the frames of every stream with output queued, as windows allow."""
        dirty = self._dirty
        self._dirty = {}
        for stream_id in dirty:
            stream = self._streams.get(stream_id)
            if stream is not None:
                self._flush(stream_id, stream)

    def _flush(self, stream_id: int, stream: StreamState) -> None:
        """Hand h2 what the stream has queued: its head, then DATA as the windows
        allow, then its end (END_STREAM, or the trailers)."""
        conn = self._conn
        try:
            if stream.head is not None:
                head = stream.head
                stream.head = None
                done = stream.ended and not stream.pending and not stream.trailers
                conn.send_headers(stream_id, head, end_stream=done)
                if done:
                    self._sent_end(stream_id, stream)
                    return
            if stream.pending and not self._send_data(stream_id, stream):
                return  # the window is shut, or the last DATA ended the stream
            if stream.ended:
                if stream.trailers:
                    conn.send_headers(stream_id, list(stream.trailers), end_stream=True)
                else:
                    conn.end_stream(stream_id)
                self._sent_end(stream_id, stream)
        except h2.exceptions.StreamClosedError:
            self._streams.pop(stream_id, None)
            self._give_back(stream_id, stream)

    def _send_data(self, stream_id: int, stream: StreamState) -> bool:
        """DATA frames of the queued body, as the windows allow; True if all of it left
        and the stream still needs its end sent."""
        conn = self._conn
        pending = stream.pending
        frame_size = conn.max_outbound_frame_size
        while pending:
            window = conn.local_flow_control_window(stream_id)
            if window <= 0:
                return False
            chunk = pending[0]
            offset = stream.offset
            size = min(window, frame_size, len(chunk) - offset)
            if offset + size == len(chunk):
                pending.popleft()
                stream.offset = 0
                last = not pending and stream.ended and not stream.trailers
                conn.send_data(stream_id, chunk[offset:] if offset else chunk, end_stream=last)
            else:
                conn.send_data(stream_id, chunk[offset : offset + size])
                stream.offset = offset + size
            stream.pending_size -= size
            if not pending and stream.ended and not stream.trailers:
                self._sent_end(stream_id, stream)
                return False
        return True

    def _websocket_output(
        self,
        stream_id: int,
        stream: StreamState,
        events: list[InboundEvent],
        data: bytes,
        ended: bool,
    ) -> None:
        """Hand a stream's WebSocket events on and queue its frames as DATA."""
        self._events += events
        if data:
            stream.pending.append(data)
            stream.pending_size += len(data)
        if ended:
            stream.ended = True
        if data or ended:
            self._dirty[stream_id] = None

    def _sent_end(self, stream_id: int, stream: StreamState) -> None:
        if not stream.remote_ended:
            # RFC 9113 section 8.1: the response is complete; the rest of the
            # request body is not wanted.
            self._conn.reset_stream(stream_id, ErrorCodes.NO_ERROR)
        self._forget(stream_id, stream)

    def _reset(self, stream_id: int, stream: StreamState, code: ErrorCodes) -> None:
        with contextlib.suppress(h2.exceptions.StreamClosedError):
            self._conn.reset_stream(stream_id, code)
        self._forget(stream_id, stream)

    def _forget(self, stream_id: int, stream: StreamState) -> None:
        self._streams.pop(stream_id, None)
        self._dirty.pop(stream_id, None)
        self._give_back(stream_id, stream)
        self._became_idle()

    def _give_back(self, stream_id: int, stream: StreamState) -> None:
        if stream.unacked and not self._closed:
            self._conn.acknowledge_received_data(stream.unacked, stream_id)
            stream.unacked = 0

    def _became_idle(self) -> None:
        if not self._streams:
            self._idle_since = self._now

    # -- connection end ------------------------------------------------------

    def _goaway(self, code: ErrorCodes) -> None:
        """GOAWAY that keeps serving the streams it names (RFC 9113 section 6.8).

        h2 treats a GOAWAY it sends as the end of the connection and refuses
        every later frame, so this one is framed here, after what is queued
        (some clients, h2 among them, stop reading a stream at GOAWAY: a
        WebSocket's close frame queued just before must precede it).
        """
        if not self._draining:
            self._flush_dirty()
            self._draining = True
            frame = hyperframe.frame.GoAwayFrame(0)
            frame.last_stream_id = self._last_stream_id
            frame.error_code = code
            self._out += (self._conn.data_to_send(), frame.serialize())

    def _fail(self, code: int) -> None:
        """A connection error (RFC 9113 section 5.4.1): GOAWAY, then close."""
        self._draining = True
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self._conn.close_connection(code, last_stream_id=self._last_stream_id)
        self.connection_lost()


_HANDLERS: dict[type[h2.events.Event], Callable[[H2Protocol, Any, float], None]] = {
    h2.events.DataReceived: H2Protocol._on_data,
    h2.events.RequestReceived: H2Protocol._on_request,
    h2.events.StreamEnded: H2Protocol._on_stream_ended,
    h2.events.WindowUpdated: H2Protocol._on_window,
    h2.events.RemoteSettingsChanged: H2Protocol._on_settings,
    h2.events.TrailersReceived: H2Protocol._on_trailers,
    h2.events.StreamReset: H2Protocol._on_reset,
    h2.events.PingReceived: H2Protocol._on_ping,
    h2.events.ConnectionTerminated: H2Protocol._on_goaway,
}
"""What each h2 event does; the others (acknowledgements, priorities) need nothing."""
