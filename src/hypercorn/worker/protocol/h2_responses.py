"""The outbound side of the HTTP/2 server protocol: responses framed as windows allow.

Theory of operation
-------------------
``H2Protocol.send`` only queues: a response head goes to ``stream.head``,
body bytes to ``stream.pending``, the end to ``stream.ended`` (and
``stream.trailers``), and the stream is marked dirty. ``data_to_send`` then
frames every dirty stream (``_flush``): its head, its DATA as the stream and
connection windows allow (``H2Output.window``, at most ``max_send_frame``
per frame), then its end. A complete response whose body fits the windows
leaves as HEADERS and one DATA with END_STREAM, in the same write. What the
windows hold back stays queued until a WINDOW_UPDATE or SETTINGS marks the
stream dirty again (``_on_window``).

A response that ends before its request resets the stream with NO_ERROR
(RFC 9113 section 8.1); a stream that has closed is forgotten: its dirty
mark goes, and the request body bytes the app never consumed give their
connection window back.
"""

from __future__ import annotations

from hypercorn.worker.protocol.events import (
    InboundEvent,
    InformationalResponse,
    ResponseStarted,
)
from hypercorn.worker.protocol.fields import strip_connection_fields
from hypercorn.worker.protocol.h2_frames import NO_ERROR
from hypercorn.worker.protocol.h2_session import H2Session
from hypercorn.worker.protocol.h2_streams import State, Stream
from hypercorn.worker.protocol.ws_h2 import H2WebSockets


class H2Responses(H2Session):
    """Queues and frames the responses of ``H2Protocol`` (its base class)."""

    __slots__ = ("_dirty", "_events", "_idle_since", "_now", "_websockets")

    _dirty: dict[int, None]
    _events: list[InboundEvent]
    _idle_since: float
    _now: float
    _websockets: H2WebSockets

    def _start_response(self, event: ResponseStarted, stream: Stream) -> None:
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

    def _informational(self, event: InformationalResponse, stream: Stream) -> None:
        status = event.status_code
        if not 100 <= status < 200:
            raise ValueError(f"not an informational status: {status}")
        if stream.started or status == 101 or stream.state is State.RESERVED_LOCAL:
            return  # RFC 9113 section 8.6: no 101 in HTTP/2
        headers = [(b":status", b"%d" % status), *strip_connection_fields(event.headers)]
        self.send_headers(stream, headers, False)

    def _flush_dirty(self) -> None:
        """Frame what every stream with output queued may send."""
        dirty = self._dirty
        self._dirty = {}
        streams = self._streams
        for stream_id in dirty:
            stream = streams.get(stream_id)
            if stream is not None:
                self._flush(stream)

    def _flush(self, stream: Stream) -> None:
        """Frame what the stream has queued: its head, then DATA as the windows
        allow, then its end (END_STREAM, or the trailers)."""
        if stream.head is not None:
            head = stream.head
            stream.head = None
            if stream.ended and not stream.trailers and stream.pending_size <= self.window(stream):
                self._send_whole(stream, head)
                return
            self.send_headers(stream, head, False)
        if stream.pending and not self._send_data(stream):
            return  # the window is shut, or the last DATA ended the stream
        if stream.ended:
            if stream.trailers:
                self.send_headers(stream, list(stream.trailers), True)
            else:
                self.send_data(stream, b"", True)
            self._sent_end(stream)

    def _send_whole(self, stream: Stream, head: list[tuple[bytes, bytes]]) -> None:
        """A complete response that the windows let out at once: HEADERS, then
        DATA ending the stream (or HEADERS alone, ending it)."""
        pending = stream.pending
        if not pending:
            self.send_headers(stream, head, True)
        elif len(pending) == 1 and stream.pending_size <= self.max_send_frame:
            self.send_headers(stream, head, False)
            self.send_data(stream, pending.popleft(), True)
            stream.pending_size = 0
        else:
            self.send_headers(stream, head, False)
            self._send_data(stream)
            return
        self._sent_end(stream)

    def _send_data(self, stream: Stream) -> bool:
        """DATA frames of the queued body, as the windows allow; True if all of it left
        and the stream still needs its end sent."""
        pending = stream.pending
        frame_size = self.max_send_frame
        while pending:
            window = self.window(stream)
            if window <= 0:
                return False
            chunk = pending[0]
            offset = stream.offset
            size = min(window, frame_size, len(chunk) - offset)
            last = False
            if offset + size == len(chunk):
                pending.popleft()
                stream.offset = 0
                last = not pending and stream.ended and not stream.trailers
                self.send_data(stream, chunk[offset:] if offset else chunk, last)
            else:
                self.send_data(stream, chunk[offset : offset + size], False)
                stream.offset = offset + size
            stream.pending_size -= size
            if last:
                self._sent_end(stream)
                return False
        return True

    def _websocket_output(
        self, stream: Stream, events: list[InboundEvent], data: bytes, ended: bool
    ) -> None:
        """Hand a stream's WebSocket events on and queue its frames as DATA."""
        self._events += events
        if data:
            stream.pending.append(data)
            stream.pending_size += len(data)
        if ended:
            stream.ended = True
        if data or ended:
            self._dirty[stream.stream_id] = None

    def _sent_end(self, stream: Stream) -> None:
        if stream.state is not State.CLOSED:
            # RFC 9113 section 8.1: the response is complete; the rest of the
            # request body is not wanted.
            self.reset_stream(stream, NO_ERROR)
        self._forget(stream)

    def _reset(self, stream: Stream, code: int) -> None:
        self.reset_stream(stream, code)
        self._forget(stream)

    def _forget(self, stream: Stream) -> None:
        """The stream has closed: its queue and its unconsumed window go."""
        self._dirty.pop(stream.stream_id, None)
        if stream.unacked and not self._closed:
            self._consumed(stream, stream.unacked)
            stream.unacked = 0
        if not self._streams:
            self._idle_since = self._now
