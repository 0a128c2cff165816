"""The server side of one HTTP/3 connection, sans I/O (RFC 9114), on aioquic.

Theory of operation
-------------------
aioquic's ``QuicConnection`` runs the transport (TLS 1.3, loss recovery,
flow control) and its ``H3Connection`` the framing and QPACK; this module
maps their events onto ours and keeps the rules they leave to their user.
Every aioquic type stays in this file and in ``h3_endpoint``.

Time is an argument: datagrams come in through ``receive_datagram(data,
addr, now)``, leave through ``datagrams_to_send(now)``, and the I/O layer
calls ``handle_timer(now)`` at ``next_deadline()``, the earliest of the
transport's timer, the HTTP/3 keep-alive and the WebSockets' timers.

Streams. A request's HEADERS become ``RequestReceived`` (``http_version``
"3", ``:authority`` as the ``host`` header, pseudo-headers removed), its DATA
``BodyReceived``, its end ``BodyEnded``; a reset or STOP_SENDING from the
peer ``StreamClosed``. An extended CONNECT with ``:protocol websocket``
(RFC 9220) becomes ``UpgradeRequested``, as over HTTP/2. A stream is
forgotten once both sides have ended it; a response that ends before its
request body asks the peer to stop sending (STOP_SENDING with H3_NO_ERROR,
RFC 9114 section 4.1).

Flow control. aioquic grants the peer new credit as it hands data over, so
request bodies are not back-pressured by the application (the stream layer's
pause is a no-op over HTTP/3); ``max_stream_data`` and ``max_data`` bound
what is in flight. Outbound, aioquic buffers what the app sends;
``stream_blocked`` is true while more than ``SEND_HIGH_WATER`` bytes of a
stream are unacknowledged, so the app's ``send`` waits for the client.

Limits and ending. At most ``h2_max_concurrent_streams`` request streams are
open at once (the transport's MAX_STREAMS). After ``keep_alive_max_requests``
requests, or on ``begin_drain``, a GOAWAY names the first stream id not
served (RFC 9114 section 5.2); later requests are rejected
(H3_REQUEST_REJECTED) and the connection closes with H3_NO_ERROR once the
streams it kept are done. With no stream open it closes the same way after
``keep_alive_timeout``; the transport's own idle timeout (``idle_timeout``)
ends a connection whose peer went silent.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, assert_never

from aioquic.buffer import encode_uint_var
from aioquic.h3 import events as h3e
from aioquic.h3.connection import (
    H3_ALPN,
    ErrorCode,
    FrameType,
    H3Connection,
    ProtocolError,
    encode_frame,
)
from aioquic.h3.exceptions import NoAvailablePushIDError
from aioquic.quic import events as qe
from aioquic.quic.connection import QuicConnection, QuicConnectionState

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
    UpgradeRequested,
    WebSocketAccept,
    WebSocketClose,
    WebSocketSend,
)
from hypercorn.worker.protocol.fields import (
    expects_continue,
    split_request_fields,
    strip_connection_fields,
)
from hypercorn.worker.protocol.ws import WSSettings
from hypercorn.worker.protocol.ws_h2 import H2WebSockets

ALPN_PROTOCOLS = tuple(H3_ALPN)
"""The ALPN protocols a QUIC connection may negotiate."""

SEND_HIGH_WATER = 64 * 1024
"""Unacknowledged response bytes of a stream past which its app's ``send`` waits."""

Address = tuple[Any, ...]


class H3Settings(WSSettings, Protocol):
    """The settings the protocol reads (``hypercorn.config.Config`` has them)."""

    @property
    def h2_max_concurrent_streams(self) -> int: ...
    @property
    def keep_alive_timeout(self) -> float: ...
    @property
    def keep_alive_max_requests(self) -> int: ...


class _Stream:
    """What the protocol keeps for one open request stream."""

    __slots__ = ("authority", "ended", "no_body", "remote_ended", "started")

    def __init__(self, authority: bytes, no_body: bool, remote_ended: bool) -> None:
        self.authority = authority
        self.no_body = no_body
        self.remote_ended = remote_ended
        self.started = False
        self.ended = False


class H3Protocol:
    """One QUIC connection serving HTTP/3.

    Args:
        quic: the server-side QUIC connection, created by the endpoint for
            the client's first Initial.
        config: the settings (limits and timeouts) to apply.
        now: the loop time at which the connection started.
    """

    __slots__ = (
        "_closed",
        "_draining",
        "_events",
        "_finishing",
        "_goaway_id",
        "_h3",
        "_idle_since",
        "_keep_alive_timeout",
        "_max_requests",
        "_max_stream_id",
        "_now",
        "_quic",
        "_requests",
        "_streams",
        "_websockets",
        "connection_ids",
    )

    def __init__(self, quic: QuicConnection, config: H3Settings, now: float) -> None:
        self._quic = quic
        # aioquic fixes the peer's stream limit at 128; it is ours to choose,
        # and is read when the transport parameters are sent, after this.
        limit = quic._local_max_streams_bidi
        limit.value = limit.sent = config.h2_max_concurrent_streams
        self._h3: H3Connection | None = None
        self._keep_alive_timeout = config.keep_alive_timeout
        self._max_requests = config.keep_alive_max_requests
        self._events: list[InboundEvent] = []
        self._streams: dict[int, _Stream] = {}
        self._websockets = H2WebSockets(config)
        self._closed = False
        self._draining = False
        self._finishing = False
        self._goaway_id: int | None = None
        self._requests = 0
        self._max_stream_id = -4
        self._now = self._idle_since = now
        self.connection_ids: set[bytes] = {quic.host_cid}
        """The connection ids the peer may address this connection by (the
        endpoint routes datagrams by them)."""

    # -- the seam ------------------------------------------------------------

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None:
        """Feed one datagram from ``addr``."""
        if self._closed:
            return
        self._now = now
        self._quic.receive_datagram(data, addr, now)
        self._process()
        if self._finishing and not self._streams:
            self._finish()

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        """Return (and forget) the datagrams to send, each with its destination."""
        datagrams = self._quic.datagrams_to_send(now)
        self._process()  # closing the transport may end it: learn at once
        return datagrams

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
        if stream is None or self._closed or self._h3 is None:
            return
        self._now = now
        h3 = self._h3
        stream_id = event.stream_id
        match event:
            case ResponseData():
                if not stream.started:
                    raise RuntimeError("response data before the response started")
                if event.data and not stream.no_body:
                    h3.send_data(stream_id, event.data, end_stream=False)
            case ResponseStarted():
                self._start_response(stream_id, stream, event.status_code, event.headers)
            case ResponseEnded():
                self._end_response(h3, stream_id, stream, event.trailers)
            case InformationalResponse():
                self._informational(h3, stream_id, stream, event)
            case StreamAborted():
                self._reset(stream_id, ErrorCode.H3_INTERNAL_ERROR)
            case WebSocketAccept():
                accepted = self._websockets.accept(event, now)
                self._start_response(stream_id, stream, 200, accepted)
            case WebSocketSend() | WebSocketClose():
                self._websocket_output(stream_id, stream, *self._websockets.send(event, now))
            case _:  # pragma: no cover
                assert_never(event)

    def _end_response(
        self, h3: H3Connection, stream_id: int, stream: _Stream, trailers: Headers
    ) -> None:
        if not stream.started:
            raise RuntimeError("response ended before it started")
        fields = list(strip_connection_fields(trailers))
        if fields:
            h3.send_headers(stream_id, fields, end_stream=True)
        else:
            h3.send_data(stream_id, b"", end_stream=True)
        self._sent_end(stream_id, stream)

    def _informational(
        self, h3: H3Connection, stream_id: int, stream: _Stream, event: InformationalResponse
    ) -> None:
        status = event.status_code
        if not 100 <= status < 200:
            raise ValueError(f"not an informational status: {status}")
        if not stream.started and status != 101:  # no 101 in HTTP/3
            headers = [(b":status", b"%d" % status), *strip_connection_fields(event.headers)]
            h3.send_headers(stream_id, headers)

    def handle_timer(self, now: float) -> None:
        """Run the transport's timers (loss, idle), the WebSockets' and the keep-alive."""
        if self._closed:
            return
        self._now = now
        quic_timer = self._quic.get_timer()
        if quic_timer is not None and now >= quic_timer:
            self._quic.handle_timer(now)
        for stream_id, events, data, ended in self._websockets.handle_timer(now):
            if (stream := self._streams.get(stream_id)) is not None:
                self._websocket_output(stream_id, stream, events, data, ended)
        if not self._streams and now >= self._idle_since + self._keep_alive_timeout:
            self._finish()
        self._process()

    def next_deadline(self) -> float | None:
        """The loop time at which ``handle_timer`` must next run, if any."""
        if self._closed:
            return None
        deadlines = [self._quic.get_timer(), self._websockets.next_deadline()]
        if not (self._streams or self._finishing) and (
            self._quic._state is not QuicConnectionState.CLOSING
        ):
            deadlines.append(self._idle_since + self._keep_alive_timeout)
        return min((d for d in deadlines if d is not None), default=None)

    @property
    def established(self) -> bool:
        """True once a packet of the peer's has been decrypted."""
        return self._quic._state is not QuicConnectionState.FIRSTFLIGHT

    @property
    def closed(self) -> bool:
        """True once the connection has ended: nothing more is read or sent."""
        return self._closed

    # -- HTTP/3 specifics, for the I/O layer ----------------------------------

    @property
    def peer_address(self) -> Address | None:
        """The client's address (the path in use)."""
        paths = self._quic._network_paths
        return paths[0].addr if paths else None

    def stream_blocked(self, stream_id: int) -> bool:
        """True while more than ``SEND_HIGH_WATER`` response bytes of the stream
        are not yet acknowledged by the client."""
        if self._closed or stream_id not in self._streams:
            return False
        quic_stream = self._quic._streams.get(stream_id)
        return quic_stream is not None and len(quic_stream.sender._buffer) > SEND_HIGH_WATER

    def push(self, stream_id: int, path: bytes, headers: Headers) -> None:
        """Promise a pushed ``GET path`` on ``stream_id`` and start it as a request.

        Dropped when the client allows no (more) push (it sent no MAX_PUSH_ID,
        RFC 9114 section 4.6), the response is complete or the connection closes.
        """
        stream = self._streams.get(stream_id)
        h3 = self._h3
        if stream is None or stream.ended or self._closed or self._draining or h3 is None:
            return
        request = [
            (b":method", b"GET"),
            (b":scheme", b"https"),
            (b":authority", stream.authority),
            (b":path", path),
            *strip_connection_fields(headers),
        ]
        try:
            push_stream_id = h3.send_push_promise(stream_id, request)
        except (NoAvailablePushIDError, ProtocolError):  # no push id left, stream ending
            return
        self._open_stream(push_stream_id, "GET", path, tuple(request[4:]), stream.authority, True)

    def begin_drain(self) -> None:
        """Graceful shutdown: GOAWAY, then close once the kept streams are done."""
        if not self._closed and not self._draining:
            self._goaway()
            if not self._streams:
                self._finish()
            self._process()

    # -- inbound -------------------------------------------------------------

    def _process(self) -> None:
        """Act on the transport's events (and the HTTP/3 events they carry)."""
        quic = self._quic
        while (event := quic.next_event()) is not None:
            if not self._transport_event(event):
                return
            if self._h3 is not None and not self._closed:
                for h3_event in self._h3.handle_event(event):
                    self._handle(h3_event)

    def _transport_event(self, event: qe.QuicEvent) -> bool:
        """What the transport's own events change here; False once it has ended."""
        match event:
            case qe.ConnectionIdIssued():
                self.connection_ids.add(event.connection_id)
            case qe.ConnectionIdRetired():
                self.connection_ids.discard(event.connection_id)
            case qe.ConnectionTerminated():
                self._lost()
                return False
            case qe.ProtocolNegotiated():
                if event.alpn_protocol in ALPN_PROTOCOLS and self._h3 is None:
                    self._h3 = H3Connection(self._quic)
            case qe.StreamReset() | qe.StopSendingReceived():
                self._remote_reset(event.stream_id, type(event) is qe.StopSendingReceived)
        return True

    def _handle(self, event: h3e.H3Event) -> None:
        if type(event) is h3e.DataReceived:
            assert isinstance(event, h3e.DataReceived)
            self._data(event.stream_id, event.data, event.stream_ended)
        elif type(event) is h3e.HeadersReceived:
            assert isinstance(event, h3e.HeadersReceived)
            if event.stream_id in self._streams:  # trailers: the body ends
                if event.stream_ended:
                    self._data(event.stream_id, b"", True)
            else:
                self._request(event)

    def _request(self, event: h3e.HeadersReceived) -> None:
        stream_id = event.stream_id
        self._max_stream_id = max(self._max_stream_id, stream_id)
        if self._goaway_id is not None and stream_id >= self._goaway_id:
            self._reset(stream_id, ErrorCode.H3_REQUEST_REJECTED, forget=False)
            self._quic.stop_stream(stream_id, ErrorCode.H3_REQUEST_REJECTED)
            return
        method, path, authority, protocol, headers = split_request_fields(event.headers)
        if method == b"CONNECT":
            if protocol.lower() != b"websocket":
                assert self._h3 is not None
                self._events.append(RequestRejected(stream_id, 405, "CONNECT is not served"))
                self._h3.send_headers(stream_id, [(b":status", b"405")], end_stream=True)
                return
            request = RequestReceived(stream_id, "GET", path, headers, "3")
            self._counted()
            self._streams[stream_id] = _Stream(authority, False, False)
            self._events.append(UpgradeRequested(stream_id, request, b"websocket"))
            return
        self._open_stream(
            stream_id, method.decode("ascii"), path, headers, authority, event.stream_ended
        )
        self._counted()

    def _open_stream(
        self,
        stream_id: int,
        method: str,
        target: bytes,
        headers: Headers,
        authority: bytes,
        ended: bool,
    ) -> None:
        self._streams[stream_id] = _Stream(authority, method == "HEAD", ended)
        self._events.append(
            RequestReceived(stream_id, method, target, headers, "3", expects_continue(headers))
        )
        if ended:
            self._events.append(BodyEnded(stream_id))

    def _counted(self) -> None:
        self._requests += 1
        if self._requests >= self._max_requests:
            self._goaway()

    def _data(self, stream_id: int, data: bytes, ended: bool) -> None:
        stream = self._streams.get(stream_id)
        if stream is None or stream.remote_ended:
            return
        if stream_id in self._websockets:
            if data:
                output = self._websockets.receive(stream_id, data, self._now)
                self._websocket_output(stream_id, stream, *output)
            if ended:
                stream.remote_ended = True
                output = self._websockets.receive(stream_id, b"", self._now)
                self._websocket_output(stream_id, stream, *output)
                if stream.ended:
                    self._forget(stream_id)
            return
        if data:
            self._events.append(BodyReceived(stream_id, data))
        if ended:
            stream.remote_ended = True
            self._events.append(BodyEnded(stream_id))
            if stream.ended:
                self._forget(stream_id)

    def _remote_reset(self, stream_id: int, stop_sending: bool) -> None:
        if self._streams.pop(stream_id, None) is None:
            return
        self._websockets.forget(stream_id)
        self._events.append(StreamClosed(stream_id))
        if stop_sending:  # the peer wants no more of the response
            self._quic.reset_stream(stream_id, ErrorCode.H3_REQUEST_CANCELLED)
        self._became_idle()

    # -- outbound ------------------------------------------------------------

    def _start_response(
        self, stream_id: int, stream: _Stream, status: int, headers: Iterable[tuple[bytes, bytes]]
    ) -> None:
        if stream.started:
            raise RuntimeError("response already started")
        if not 200 <= status <= 599:
            raise ValueError(f"invalid status code {status}")
        if status in (204, 304):
            stream.no_body = True
        stream.started = True
        assert self._h3 is not None
        self._h3.send_headers(
            stream_id, [(b":status", b"%d" % status), *strip_connection_fields(headers)]
        )

    def _websocket_output(
        self,
        stream_id: int,
        stream: _Stream,
        events: list[InboundEvent],
        data: bytes,
        ended: bool,
    ) -> None:
        """Hand a stream's WebSocket events on and send its frames as DATA."""
        self._events += events
        if self._h3 is None or stream.ended:
            return
        if data or ended:
            self._h3.send_data(stream_id, data, end_stream=ended)
        if ended:
            self._sent_end(stream_id, stream)

    def _sent_end(self, stream_id: int, stream: _Stream) -> None:
        stream.ended = True
        if stream.remote_ended:
            self._forget(stream_id)
        elif stream_id not in self._websockets:
            # RFC 9114 section 4.1: the response is complete; the rest of the
            # request body is not wanted.
            self._quic.stop_stream(stream_id, ErrorCode.H3_NO_ERROR)
            self._forget(stream_id)

    def _reset(self, stream_id: int, code: int, *, forget: bool = True) -> None:
        self._quic.reset_stream(stream_id, code)
        if forget:
            self._websockets.forget(stream_id)
            self._forget(stream_id)

    def _forget(self, stream_id: int) -> None:
        self._streams.pop(stream_id, None)
        self._became_idle()

    def _became_idle(self) -> None:
        if not self._streams:
            self._idle_since = self._now
            if self._draining:
                self._finish()

    # -- connection end ------------------------------------------------------

    def _goaway(self) -> None:
        """GOAWAY with the first request stream id not served (RFC 9114 section 5.2).

        aioquic frames no GOAWAY of its own; it goes on the control stream aioquic opened.
        """
        if self._draining:
            return
        self._draining = True
        self._goaway_id = self._max_stream_id + 4
        control = self._h3._local_control_stream_id if self._h3 is not None else None
        if control is not None:
            frame = encode_frame(FrameType.GOAWAY, encode_uint_var(self._goaway_id))
            self._quic.send_stream_data(control, frame)

    def _finish(self) -> None:
        """Close the connection with H3_NO_ERROR (after a GOAWAY), once every
        response is acknowledged: a CONNECTION_CLOSE discards what is unsent."""
        self._goaway()
        quic = self._quic
        if quic._state is QuicConnectionState.CLOSING:
            return
        for stream_id, quic_stream in quic._streams.items():
            if stream_id % 4 == 0 and not quic_stream.sender.is_finished:
                self._finishing = True  # checked again as acknowledgements arrive
                return
        self._finishing = False
        quic.close(error_code=ErrorCode.H3_NO_ERROR)

    def _lost(self) -> None:
        """The transport ended: every open stream is reported closed."""
        for stream_id in self._streams:
            self._websockets.forget(stream_id)
            self._events.append(StreamClosed(stream_id))
        self._streams.clear()
        self._closed = True
