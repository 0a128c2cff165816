"""The inbound half of the HTTP/2 frame layer, sans I/O (RFC 9113).

Theory of operation
-------------------
``H2Session`` reads frames (``h2_frames.FrameReader``) and applies each at
once: the connection's rules (preface, SETTINGS first, header blocks that
are not interleaved, flow-control windows, PING, GOAWAY) here, a stream's
through the table of ``h2_streams``; the state and the outbound half are
``h2_output.H2Output``'s. What a frame means for the server's streams
reaches the subclass through a few methods it overrides (``_on_request``,
``_on_data``, ``_on_trailers``, ``_on_stream_reset``, ``_on_window``,
``_on_goaway``): no event objects, no frame objects, no log line per frame.

Errors. A frame that breaks a connection rule raises ``FrameError`` inside
the loop, which ends the connection: GOAWAY with its code, then
``connection_lost``. A stream error resets that stream alone (RST_STREAM)
and tells the subclass.

Closed streams (RFC 9113 sections 5.1 and 6.1). Frames for a stream the
server reset are ignored (DATA still gives its connection window back; a
header block is still decoded, since HPACK state is shared, and handed to
``_on_late_fields`` to be checked). Otherwise DATA on a stream that is not
open is a stream error, and so is HEADERS after the peer's RST_STREAM, both
STREAM_CLOSED; HEADERS after END_STREAM both ways is a connection error
(STREAM_CLOSED), and a stream identifier below the highest seen and never
used a connection PROTOCOL_ERROR.

Limits. The frame size and concurrent streams advertised are enforced (a
stream beyond the limit is refused with REFUSED_STREAM); a header block is
bounded to ``max_header_list_size`` bytes and 64 CONTINUATION frames; the
flood budgets (``h2_limits``) are charged for SETTINGS, PING, empty DATA and
the peer's RST_STREAM of an open stream, and an overdrawn one is
ENHANCE_YOUR_CALM.
"""

from __future__ import annotations

import hpack

from hypercorn.worker.protocol.h2_frames import (
    ACK,
    COMPRESSION_ERROR,
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    ENHANCE_YOUR_CALM,
    FLOW_CONTROL_ERROR,
    FRAME_SIZE_ERROR,
    GOAWAY,
    HEADERS,
    MAX_WINDOW,
    PING,
    PRIORITY,
    PRIORITY_FLAG,
    PROTOCOL_ERROR,
    PUSH_PROMISE,
    REFUSED_STREAM,
    RST_STREAM,
    SETTINGS,
    SETTINGS_ACK,
    STREAM_CLOSED,
    WINDOW_UPDATE,
    FrameError,
    frame,
    parse_error_code,
    parse_goaway,
    parse_priority,
    parse_settings,
    parse_window_update,
    rst_stream_frame,
    unpad,
)
from hypercorn.worker.protocol.h2_output import (
    BY_END,
    BY_OUR_RESET,
    BY_PEER_RESET,
    H2Output,
)
from hypercorn.worker.protocol.h2_streams import Input, Scope, State, Stream, transition

MAX_CONTINUATIONS = 64
"""Most CONTINUATION frames one header block may take."""


class H2Session(H2Output):
    """The frame layer; ``H2Protocol`` subclasses it and overrides the ``_on_*`` hooks."""

    __slots__ = ()

    # -- hooks, overridden ---------------------------------------------------

    def _on_request(self, stream: Stream, fields: list[tuple[bytes, bytes]], ended: bool) -> None:
        """A client opened ``stream`` with a request's header block."""

    def _on_trailers(self, stream: Stream, fields: list[tuple[bytes, bytes]]) -> None:
        """A trailer block ended the request (``_on_data`` with ``ended`` follows)."""

    def _on_late_fields(self, fields: list[tuple[bytes, bytes]]) -> None:
        """A header block for a stream the server reset: checked, then dropped."""

    def _on_data(self, stream: Stream, data: bytes, ended: bool) -> None:
        """Request body bytes (padding removed), and whether the request ended."""

    def _on_window(self, stream_id: int) -> None:
        """The send window of ``stream_id`` (0: of every stream) grew."""

    def _on_goaway(self, code: int) -> None:
        """The peer sent GOAWAY."""

    # -- inbound -------------------------------------------------------------

    def _receive(self, data: bytes, now: float) -> None:
        """Apply the frames ``data`` completes; a connection error ends the connection."""
        try:
            if self._preface:
                data = self._read_preface(data)
                if not data:
                    return
            for kind, flags, stream_id, payload in self._reader.feed(data):
                if self._block_stream and kind != CONTINUATION:
                    raise FrameError(PROTOCOL_ERROR, "frame inside a header block")
                if not self._settings_seen:
                    if kind != SETTINGS or flags & ACK:
                        raise FrameError(PROTOCOL_ERROR, "the preface lacks SETTINGS")
                    self._settings_seen = True
                if kind == HEADERS:
                    self._recv_headers(flags, stream_id, payload)
                elif kind == DATA:
                    self._recv_data(flags, stream_id, payload, now)
                elif kind == WINDOW_UPDATE:
                    self._recv_window_update(stream_id, payload)
                elif kind == CONTINUATION:
                    self._recv_continuation(flags, stream_id, payload)
                elif kind == SETTINGS:
                    self._recv_settings(flags, stream_id, payload, now)
                elif kind == RST_STREAM:
                    self._recv_rst_stream(stream_id, payload, now)
                elif kind == PING:
                    self._recv_ping(flags, stream_id, payload, now)
                elif kind == PRIORITY:
                    if not stream_id:
                        raise FrameError(PROTOCOL_ERROR, "PRIORITY on stream 0")
                    if len(payload) != 5:
                        raise FrameError(FRAME_SIZE_ERROR, "PRIORITY length not 5")
                    parse_priority(stream_id, payload)
                elif kind == GOAWAY:
                    if stream_id:
                        raise FrameError(PROTOCOL_ERROR, "GOAWAY on a stream")
                    self._on_goaway(parse_goaway(payload)[1])
                elif kind == PUSH_PROMISE:
                    raise FrameError(PROTOCOL_ERROR, "a client cannot push")
                if self._closed:
                    return
        except FrameError as error:
            self._fail(error.code)

    def _read_preface(self, data: bytes) -> bytes:
        expected = self._preface
        if not expected.startswith(data[: len(expected)]):
            raise FrameError(PROTOCOL_ERROR, "invalid connection preface")
        self._preface = expected[len(data) :]
        return data[len(expected) :]

    def _recv_headers(self, flags: int, stream_id: int, payload: bytes) -> None:
        if not stream_id:
            raise FrameError(PROTOCOL_ERROR, "HEADERS on stream 0")
        payload = unpad(flags, payload)
        if flags & PRIORITY_FLAG:
            parse_priority(stream_id, payload)
            payload = payload[5:]
        if flags & END_HEADERS:
            self._header_block(stream_id, payload, bool(flags & END_STREAM))
            return
        if len(payload) > self._max_header_list:
            raise FrameError(ENHANCE_YOUR_CALM, "header block too large")
        self._block = [payload]
        self._block_stream = stream_id
        self._block_end = bool(flags & END_STREAM)
        self._block_size = len(payload)
        self._block_frames = 0

    def _recv_continuation(self, flags: int, stream_id: int, payload: bytes) -> None:
        if not stream_id or stream_id != self._block_stream:
            raise FrameError(PROTOCOL_ERROR, "CONTINUATION outside a header block")
        self._block_frames += 1
        self._block_size += len(payload)
        if self._block_size > self._max_header_list:
            raise FrameError(ENHANCE_YOUR_CALM, "header block too large")
        if self._block_frames > MAX_CONTINUATIONS:
            raise FrameError(PROTOCOL_ERROR, "too many CONTINUATION frames")
        self._block.append(payload)
        if flags & END_HEADERS:
            block = b"".join(self._block)
            self._block = []
            self._block_stream = 0
            self._header_block(stream_id, block, self._block_end)

    def _header_block(self, stream_id: int, block: bytes, ended: bool) -> None:
        stream = self._streams.get(stream_id)
        if stream is None:
            if not stream_id & 1:
                raise FrameError(PROTOCOL_ERROR, "HEADERS on a server stream id")
            if stream_id > self._highest_inbound:
                self._open(stream_id, self._decode(block), ended)
                return
            how = self._how_closed(stream_id)
            if how == BY_OUR_RESET:
                self._on_late_fields(self._decode(block))
            elif how == BY_PEER_RESET:  # a stream error: the block still feeds HPACK
                self._decode(block)
                self._out.append(rst_stream_frame(stream_id, STREAM_CLOSED))
            else:
                raise FrameError(STREAM_CLOSED if how else PROTOCOL_ERROR, "HEADERS, stream closed")
            return
        _next, scope, code = transition(stream.state, Input.RECV_HEADERS)
        if scope == Scope.CONNECTION:
            raise FrameError(code, "HEADERS in a state that refuses them")
        fields = self._decode(block)
        if scope:
            self._stream_error(stream, code)
        elif not ended:
            raise FrameError(PROTOCOL_ERROR, "trailers without END_STREAM")
        else:
            self._on_trailers(stream, fields)
            self._end_remote(stream, b"")

    def _open(self, stream_id: int, fields: list[tuple[bytes, bytes]], ended: bool) -> None:
        self._highest_inbound = stream_id
        if self._open_inbound >= self._max_streams:
            self._out.append(rst_stream_frame(stream_id, REFUSED_STREAM))
            self._remember(stream_id, BY_OUR_RESET)
            return
        length = -1
        for name, value in fields:
            if name == b"content-length":
                if not value.isdigit() or 0 <= length != int(value):
                    raise FrameError(PROTOCOL_ERROR, "invalid content-length")
                length = int(value)
        stream = Stream(stream_id, State.OPEN, self._peer_window)
        stream.content_length = length
        self._streams[stream_id] = stream
        self._open_inbound += 1
        if ended:
            if length > 0:
                self.reset_stream(stream, PROTOCOL_ERROR)  # malformed: no body came
                return
            stream.state = State.HALF_CLOSED_REMOTE
            stream.remote_ended = True
        self._on_request(stream, fields, ended)

    def _recv_data(self, flags: int, stream_id: int, payload: bytes, now: float) -> None:
        if not stream_id:
            raise FrameError(PROTOCOL_ERROR, "DATA on stream 0")
        size = len(payload)
        data = unpad(flags, payload)
        ended = bool(flags & END_STREAM)
        if size > self._recv_window:
            raise FrameError(FLOW_CONTROL_ERROR, "connection window exceeded")
        self._recv_window -= size
        if not size and not ended and not self._empty_data.spend(now):
            raise FrameError(ENHANCE_YOUR_CALM, "empty DATA flood")
        stream = self._streams.get(stream_id)
        if stream is None:
            self._consumed(None, size)
            self._closed_stream_frame(stream_id)
            return
        _next, scope, code = transition(stream.state, Input.RECV_DATA)
        if scope:
            if scope == Scope.CONNECTION:
                raise FrameError(code, "DATA in a state that refuses it")
            self._consumed(None, size)
            self._stream_error(stream, code)
            return
        if size > stream.recv_window:
            raise FrameError(FLOW_CONTROL_ERROR, "stream window exceeded")
        stream.recv_window -= size
        stream.received += len(data)
        if 0 <= stream.content_length < stream.received or (
            ended and 0 <= stream.content_length != stream.received
        ):
            self._consumed(None, size)
            self._stream_error(stream, PROTOCOL_ERROR)
            return
        if size > len(data):  # padding is never handed on
            self._consumed(stream, size - len(data))
        if ended:
            self._end_remote(stream, data)
        else:
            self._on_data(stream, data, False)

    def _end_remote(self, stream: Stream, data: bytes) -> None:
        stream.remote_ended = True
        new, _scope, _code = transition(stream.state, Input.RECV_END_STREAM)
        if new is State.CLOSED:
            self._close(stream, BY_END)
        else:
            stream.state = new
        self._on_data(stream, data, True)

    def _closed_stream_frame(self, stream_id: int) -> None:
        """DATA for a stream that is not open (RFC 9113 sections 5.1 and 6.1)."""
        if self._idle(stream_id):
            raise FrameError(PROTOCOL_ERROR, "DATA on an idle stream")
        if self._how_closed(stream_id) != BY_OUR_RESET:
            self._out.append(rst_stream_frame(stream_id, STREAM_CLOSED))

    def _recv_window_update(self, stream_id: int, payload: bytes) -> None:
        increment = parse_window_update(payload)
        if not stream_id:
            if not increment:
                raise FrameError(PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            self._send_window += increment
            if self._send_window > MAX_WINDOW:
                raise FrameError(FLOW_CONTROL_ERROR, "connection window above 2^31-1")
            self._on_window(0)
            return
        stream = self._streams.get(stream_id)
        if stream is None:
            if self._idle(stream_id):
                raise FrameError(PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream")
            return  # may cross the stream's end
        if not increment:
            self._stream_error(stream, PROTOCOL_ERROR)
            return
        stream.send_window += increment
        if stream.send_window > MAX_WINDOW:
            self._stream_error(stream, FLOW_CONTROL_ERROR)
            return
        self._on_window(stream_id)

    def _recv_settings(self, flags: int, stream_id: int, payload: bytes, now: float) -> None:
        if stream_id:
            raise FrameError(PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & ACK:
            if payload:
                raise FrameError(FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            return
        settings = parse_settings(payload)
        if not self._settings.spend(now):
            raise FrameError(ENHANCE_YOUR_CALM, "SETTINGS flood")
        self.apply_settings(settings)
        self._out.append(SETTINGS_ACK)
        self._on_window(0)

    def _recv_rst_stream(self, stream_id: int, payload: bytes, now: float) -> None:
        if not stream_id:
            raise FrameError(PROTOCOL_ERROR, "RST_STREAM on stream 0")
        parse_error_code(payload)
        stream = self._streams.get(stream_id)
        if stream is None:
            if self._idle(stream_id):
                raise FrameError(PROTOCOL_ERROR, "RST_STREAM on an idle stream")
            return
        self._close(stream, BY_PEER_RESET)
        self._on_stream_reset(stream)
        if not self._resets.spend(now):  # CVE-2023-44487, rapid reset
            raise FrameError(ENHANCE_YOUR_CALM, "RST_STREAM flood")

    def _recv_ping(self, flags: int, stream_id: int, payload: bytes, now: float) -> None:
        if stream_id:
            raise FrameError(PROTOCOL_ERROR, "PING on a stream")
        if len(payload) != 8:
            raise FrameError(FRAME_SIZE_ERROR, "PING length not 8")
        if not flags & ACK:
            if not self._pings.spend(now):
                raise FrameError(ENHANCE_YOUR_CALM, "PING flood")
            self._out.append(frame(PING, ACK, 0, payload))

    def _decode(self, block: bytes) -> list[tuple[bytes, bytes]]:
        try:
            return self._decoder.decode(block, raw=True)
        except hpack.OversizedHeaderListError as error:
            raise FrameError(ENHANCE_YOUR_CALM, "header list too large") from error
        except hpack.HPACKError as error:
            raise FrameError(COMPRESSION_ERROR, "HPACK decoding error") from error
