"""The outbound half and the bookkeeping of the HTTP/2 frame layer (RFC 9113).

Theory of operation
-------------------
``H2Output`` holds everything a connection keeps (settings both ways, the
flow-control windows, open streams and how the recent ones closed, the HPACK
codecs, the flood budgets) and frames what the server sends: a header block
as HEADERS and CONTINUATION frames, DATA within the windows, RST_STREAM,
PUSH_PROMISE, GOAWAY, WINDOW_UPDATE when received bytes are consumed. Every
frame sent moves its stream through the table of ``h2_streams``; a frame
the state does not allow is the server's bug (``StreamStateError``). Bytes
go into one list that ``_take_output`` joins. ``h2_session.H2Session``
adds the inbound half on top.

Closed streams. A stream leaves ``_streams`` when it closes; how it closed
(END_STREAM both ways, reset by the peer, reset by the server) is kept for
the last ``CLOSED_KEPT`` to ``2 * CLOSED_KEPT`` streams (two generations of
a dict, so forgetting costs nothing per stream), for the frames that arrive
after the end.

Flow control, inbound. The bytes received are given back as they are
consumed (``_consumed``): a WINDOW_UPDATE leaves once half a window is
owed, or at once when the window is shut, as h2's window manager does, so a
client is not sent one per DATA frame.
"""

from __future__ import annotations

from hypercorn.shared.errors import StreamStateError
from hypercorn.worker.protocol.h2_frames import (
    DATA,
    DEFAULT_FRAME_SIZE,
    DEFAULT_WINDOW,
    ENABLE_CONNECT_PROTOCOL,
    ENABLE_PUSH,
    END_STREAM,
    FLOW_CONTROL_ERROR,
    HEADER_TABLE_SIZE,
    INITIAL_WINDOW_SIZE,
    MAX_CONCURRENT_STREAMS,
    MAX_FRAME_SIZE,
    MAX_HEADER_LIST_SIZE,
    MAX_WINDOW,
    PUSH_PROMISE,
    FrameError,
    FrameReader,
    frame_head,
    goaway_frame,
    header_frames,
    parse_settings,
    rst_stream_frame,
    settings_frame,
    window_update_frame,
)
from hypercorn.worker.protocol.h2_hpack import CachingDecoder, CachingEncoder
from hypercorn.worker.protocol.h2_limits import Budget, FloodLimits
from hypercorn.worker.protocol.h2_streams import (
    Input,
    State,
    Stream,
    transition,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
"""The client connection preface (RFC 9113 section 3.4)."""

CLOSED_KEPT = 256
"""How many closed streams' endings are remembered (two generations of this many)."""

# How a stream closed.
BY_END = 1
BY_PEER_RESET = 2
BY_OUR_RESET = 3


class H2Output:
    """A connection's state and its outbound frames; subclassed by ``H2Session``.

    Args:
        max_concurrent_streams: streams the peer may open at once.
        max_header_list_size: the largest header list accepted, in bytes.
        max_frame_size: the largest frame payload accepted.
        connection_window: the connection-level receive window.
        now: the loop time at which the connection started.
        limits: the flood budgets.
    """

    __slots__ = (
        "_block",
        "_block_end",
        "_block_frames",
        "_block_size",
        "_block_stream",
        "_closed",
        "_closed_older",
        "_closed_recent",
        "_decoder",
        "_empty_data",
        "_encoder",
        "_highest_inbound",
        "_last_stream_id",
        "_max_header_list",
        "_max_streams",
        "_next_push_id",
        "_open_inbound",
        "_open_outbound",
        "_out",
        "_peer_max_streams",
        "_peer_window",
        "_pings",
        "_preface",
        "_push_enabled",
        "_reader",
        "_recv_max",
        "_recv_processed",
        "_recv_window",
        "_resets",
        "_send_window",
        "_settings",
        "_settings_seen",
        "_streams",
        "max_send_frame",
    )

    def __init__(
        self,
        *,
        max_concurrent_streams: int,
        max_header_list_size: int,
        max_frame_size: int,
        connection_window: int,
        now: float,
        limits: FloodLimits,
    ) -> None:
        self._streams: dict[int, Stream] = {}
        self._closed = False
        self._out: list[bytes] = []
        self._reader = FrameReader(max_frame_size)
        self._preface = PREFACE
        self._settings_seen = False
        self._decoder = CachingDecoder(max_header_list_size)
        self._encoder = CachingEncoder()
        self._max_streams = max_concurrent_streams
        self._max_header_list = max_header_list_size
        self._open_inbound = 0
        self._open_outbound = 0
        self._highest_inbound = 0
        self._last_stream_id = 0
        self._next_push_id = 2
        self._closed_recent: dict[int, int] = {}
        self._closed_older: dict[int, int] = {}
        self._block: list[bytes] = []
        self._block_stream = 0
        self._block_end = False
        self._block_size = 0
        self._block_frames = 0
        self._peer_window = DEFAULT_WINDOW
        self._peer_max_streams = MAX_WINDOW
        self._push_enabled = True
        self.max_send_frame = DEFAULT_FRAME_SIZE
        self._send_window = DEFAULT_WINDOW
        self._recv_max = self._recv_window = connection_window
        self._recv_processed = 0
        self._resets = Budget(*limits.resets, now)
        self._settings = Budget(*limits.settings, now)
        self._pings = Budget(*limits.pings, now)
        self._empty_data = Budget(*limits.empty_data, now)
        self._out.append(
            settings_frame(
                [
                    (MAX_CONCURRENT_STREAMS, max_concurrent_streams),
                    (MAX_FRAME_SIZE, max_frame_size),
                    (MAX_HEADER_LIST_SIZE, max_header_list_size),
                    (ENABLE_CONNECT_PROTOCOL, 1),  # RFC 8441: WebSockets over streams
                ]
            )
        )
        if connection_window > DEFAULT_WINDOW:
            self._out.append(window_update_frame(0, connection_window - DEFAULT_WINDOW))

    def connection_lost(self) -> None:
        """The connection is over; nothing more is read or sent."""
        self._closed = True

    def _on_stream_reset(self, stream: Stream) -> None:
        """``stream`` is gone: reset by the peer, or by the server for its error."""

    def apply_settings(self, settings: list[tuple[int, int]]) -> None:
        """Apply the peer's settings, in order (RFC 9113 section 6.5.3).

        Raises:
            FrameError: a stream's window would pass 2^31-1 (FLOW_CONTROL_ERROR).
        """
        for key, value in settings:
            if key == INITIAL_WINDOW_SIZE:
                delta = value - self._peer_window
                self._peer_window = value
                for stream in self._streams.values():
                    stream.send_window += delta
                    if stream.send_window > MAX_WINDOW:
                        raise FrameError(FLOW_CONTROL_ERROR, "stream window above 2^31-1")
            elif key == MAX_FRAME_SIZE:
                self.max_send_frame = value
            elif key == HEADER_TABLE_SIZE:
                self._encoder.header_table_size = value
            elif key == ENABLE_PUSH:
                self._push_enabled = value == 1
            elif key == MAX_CONCURRENT_STREAMS:
                self._peer_max_streams = value

    # -- stream bookkeeping ----------------------------------------------------

    def _idle(self, stream_id: int) -> bool:
        if stream_id & 1:
            return stream_id > self._highest_inbound
        return stream_id >= self._next_push_id

    def _how_closed(self, stream_id: int) -> int:
        return self._closed_recent.get(stream_id) or self._closed_older.get(stream_id, 0)

    def _remember(self, stream_id: int, how: int) -> None:
        recent = self._closed_recent
        recent[stream_id] = how
        if len(recent) >= CLOSED_KEPT:
            self._closed_older = recent
            self._closed_recent = {}

    def _close(self, stream: Stream, how: int) -> None:
        stream.state = State.CLOSED
        stream_id = stream.stream_id
        if self._streams.pop(stream_id, None) is not None:
            if stream_id & 1:
                self._open_inbound -= 1
            else:
                self._open_outbound -= 1
        self._remember(stream_id, how)

    def _stream_error(self, stream: Stream, code: int) -> None:
        self.reset_stream(stream, code)
        self._on_stream_reset(stream)

    def _consumed(self, stream: Stream | None, size: int) -> None:
        """``size`` received bytes are done with: give their windows back when due."""
        if stream is not None and stream.state is not State.CLOSED:
            processed = stream.recv_processed + size
            if processed >= DEFAULT_WINDOW // 2 or (not stream.recv_window and processed > 1024):
                self._out.append(window_update_frame(stream.stream_id, processed))
                stream.recv_window += processed
                processed = 0
            stream.recv_processed = processed
        processed = self._recv_processed + size
        if processed >= self._recv_max // 2 or (not self._recv_window and processed > 1024):
            self._out.append(window_update_frame(0, processed))
            self._recv_window += processed
            processed = 0
        self._recv_processed = processed

    # -- outbound --------------------------------------------------------------

    def window(self, stream: Stream) -> int:
        """The bytes ``stream`` may send now (both windows)."""
        window = stream.send_window
        return window if window < self._send_window else self._send_window

    def send_headers(self, stream: Stream, fields: list[tuple[bytes, bytes]], end: bool) -> None:
        """A header block on ``stream`` (a response head, trailers, or a 1xx)."""
        new, scope, _code = transition(stream.state, Input.SEND_HEADERS)
        if scope:
            raise StreamStateError(f"stream {stream.stream_id} is {stream.state.name}")
        block = self._encoder.encode(fields)
        self._out += header_frames(stream.stream_id, block, end, self.max_send_frame)
        stream.state = new
        if end:
            self._local_end(stream)

    def send_data(self, stream: Stream, data: bytes, end: bool) -> None:
        """One DATA frame; the caller keeps within ``window`` and ``max_send_frame``."""
        if transition(stream.state, Input.SEND_DATA)[1]:
            raise StreamStateError(f"stream {stream.stream_id} is {stream.state.name}")
        size = len(data)
        self._send_window -= size
        stream.send_window -= size
        self._out.append(frame_head(DATA, END_STREAM if end else 0, stream.stream_id, size))
        if size:
            self._out.append(data)
        if end:
            self._local_end(stream)

    def _local_end(self, stream: Stream) -> None:
        new, _scope, _code = transition(stream.state, Input.SEND_END_STREAM)
        if new is State.CLOSED:
            self._close(stream, BY_END)
        else:
            stream.state = new

    def reset_stream(self, stream: Stream, code: int) -> None:
        """RST_STREAM: the stream closes; its later frames are ignored."""
        if stream.state is not State.CLOSED:
            self._out.append(rst_stream_frame(stream.stream_id, code))
            self._close(stream, BY_OUR_RESET)

    def push_promise(self, parent: Stream, fields: list[tuple[bytes, bytes]]) -> Stream | None:
        """PUSH_PROMISE on ``parent``; the reserved stream, or None when the peer
        refuses pushes or has its concurrent streams (RFC 9113 section 8.4)."""
        if not self._push_enabled or self._open_outbound >= self._peer_max_streams:
            return None
        if transition(parent.state, Input.SEND_HEADERS)[1]:
            return None
        stream_id = self._next_push_id
        self._next_push_id += 2
        block = stream_id.to_bytes(4, "big") + self._encoder.encode(fields)
        self._out += header_frames(
            parent.stream_id, block, False, self.max_send_frame, PUSH_PROMISE
        )
        stream = Stream(stream_id, State.RESERVED_LOCAL, self._peer_window)
        stream.remote_ended = True
        self._streams[stream_id] = stream
        self._open_outbound += 1
        return stream

    def open_upgraded(self, settings: bytes) -> Stream:
        """``Upgrade: h2c``: apply ``HTTP2-Settings`` (no ACK: the 101 is one) and
        open stream 1, whose request is complete (RFC 7540 section 3.2)."""
        self.apply_settings(parse_settings(settings))
        stream = Stream(1, State.HALF_CLOSED_REMOTE, self._peer_window)
        stream.remote_ended = True
        self._streams[1] = stream
        self._open_inbound += 1
        self._highest_inbound = 1
        return stream

    def goaway(self, code: int) -> None:
        """GOAWAY naming ``_last_stream_id``, after everything queued."""
        self._out.append(goaway_frame(self._last_stream_id, code))

    def _fail(self, code: int) -> None:
        """A connection error (RFC 9113 section 5.4.1): GOAWAY, then close."""
        if not self._closed:
            self.goaway(code)
            self.connection_lost()

    def _take_output(self) -> bytes:
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data
