"""WebSockets over HTTP/2 streams (RFC 8441), for ``h2.H2Protocol``.

Theory of operation
-------------------
The server advertises ``SETTINGS_ENABLE_CONNECT_PROTOCOL``; a client then
opens a WebSocket with an extended CONNECT (``:protocol websocket``). The
HTTP/2 protocol reports it as ``UpgradeRequested`` (the request as a GET with
``http_version`` "2"), so the stream layer treats it as it treats an HTTP/1.1
upgrade. Until the app accepts, the stream is an ordinary HTTP/2 stream: a
denial or a 403 is an ordinary response on it.

On ``WebSocketAccept`` the stream gets a ``WSConnection`` (without the
HTTP/1.1 ``101`` head): the answer is ``:status 200`` with the handshake's
fields, and from then on the stream's DATA carry WebSocket frames both ways.
This class keeps those connections and turns their output into what the
HTTP/2 protocol needs: bytes to queue as DATA (flow-controlled like any
response body) and whether the stream ends (``should_close``). Inbound DATA
is parsed at once, so its flow-control window is given back at once.
"""

from __future__ import annotations

from hypercorn.worker.protocol.events import (
    Headers,
    InboundEvent,
    OutboundEvent,
    RequestReceived,
    UpgradeRequested,
    WebSocketAccept,
)
from hypercorn.worker.protocol.ws import WSConnection, WSSettings


def opening_request(
    stream_id: int, protocol: bytes, target: bytes, headers: Headers
) -> UpgradeRequested | None:
    """The ``UpgradeRequested`` of an extended CONNECT, if it asks for a WebSocket."""
    if protocol.lower() != b"websocket":
        return None
    request = RequestReceived(stream_id, "GET", target, headers, "2")
    return UpgradeRequested(stream_id, request, b"websocket")


class H2WebSockets:
    """The accepted WebSockets of one HTTP/2 connection, by stream id."""

    __slots__ = ("_config", "_sockets")

    def __init__(self, config: WSSettings) -> None:
        self._config = config
        self._sockets: dict[int, WSConnection] = {}

    def __contains__(self, stream_id: int) -> bool:
        return stream_id in self._sockets

    def accept(self, event: WebSocketAccept, now: float) -> Headers:
        """Start the frames of ``event.stream_id``; return the 200 response's fields."""
        ws = WSConnection(self._config, event, now, http11=False)
        self._sockets[event.stream_id] = ws
        return ws.response_headers

    def receive(
        self, stream_id: int, data: bytes, now: float
    ) -> tuple[list[InboundEvent], bytes, bool]:
        """Feed the stream's DATA (``b""``: the peer ended the stream).

        Returns:
            The events for the stream layer, the bytes to send back on the
            stream (pongs, close echoes), and whether the stream must end.
        """
        ws = self._sockets.get(stream_id)
        if ws is None:
            return [], b"", False
        ws.receive_data(data, now)
        return self._result(stream_id, ws)

    def send(self, event: OutboundEvent, now: float) -> tuple[list[InboundEvent], bytes, bool]:
        """A message or close from the app: the bytes to queue and whether to end."""
        ws = self._sockets.get(event.stream_id)
        if ws is None:
            return [], b"", False
        ws.send(event, now)
        return self._result(event.stream_id, ws)

    def next_deadline(self) -> float | None:
        """The earliest timer (ping interval, close timeout) of any WebSocket."""
        if not self._sockets:
            return None
        deadlines = [d for ws in self._sockets.values() if (d := ws.next_deadline()) is not None]
        return min(deadlines, default=None)

    def handle_timer(self, now: float) -> list[tuple[int, list[InboundEvent], bytes, bool]]:
        """Run the expired timers: per stream, what ``receive`` would return."""
        results: list[tuple[int, list[InboundEvent], bytes, bool]] = []
        for stream_id, ws in list(self._sockets.items()):
            deadline = ws.next_deadline()
            if deadline is not None and now >= deadline:
                ws.handle_timer(now)
                results.append((stream_id, *self._result(stream_id, ws)))
        return results

    def forget(self, stream_id: int) -> list[InboundEvent]:
        """The stream is gone (reset, or the connection lost): end its WebSocket."""
        ws = self._sockets.pop(stream_id, None)
        if ws is None:
            return []
        ws.connection_lost()
        return ws.events_received()

    def _result(self, stream_id: int, ws: WSConnection) -> tuple[list[InboundEvent], bytes, bool]:
        ended = ws.should_close
        if ended:
            del self._sockets[stream_id]
        return ws.events_received(), ws.data_to_send(), ended
