"""Inbound events to the ASGI streams of one connection, for every I/O layer.

Theory of operation
-------------------
A connection's protocol reports what its peer did as events that name a
stream (``worker/protocol/events.py``); a ``StreamRouter`` keeps the
connection's open streams by id and hands each event to its stream. A
request starts an ``HTTPStream``, a WebSocket opening request a
``WebSocketStream``; each runs its app in a task and answers through the
connection (the ``StreamHost``). A stream leaves the table when the protocol
reports it closed or the stream reports its response finished. Events for a
stream that has left are dropped: its app has its answer already.

The TCP and QUIC I/O layers share this one router, so that what an event
means is written once; the ``match`` ends in ``assert_never``, so a new event
type cannot be forgotten.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, assert_never

from hypercorn.worker.asgi.http import HTTPStream, StreamHost
from hypercorn.worker.protocol.events import (
    BodyEnded,
    BodyReceived,
    ConnectionInfo,
    InboundEvent,
    RequestReceived,
    RequestRejected,
    StreamClosed,
    UpgradeRequested,
    WebSocketClosed,
    WebSocketMessage,
)

if TYPE_CHECKING:
    from hypercorn.worker.asgi.websocket import WebSocketStream
    from hypercorn.worker.context import WorkerContext


class StreamRouter:
    """The open streams of one connection."""

    __slots__ = ("_ctx", "_host", "streams")

    def __init__(self, ctx: WorkerContext, host: StreamHost) -> None:
        self._ctx = ctx
        self._host = host
        self.streams: dict[int, HTTPStream | WebSocketStream] = {}

    def dispatch(self, events: list[InboundEvent], info: ConnectionInfo, now: float) -> None:
        """Hand each event to its stream; start a stream for each new request."""
        streams = self.streams
        stream: HTTPStream | WebSocketStream | None
        for event in events:
            match event:  # the most frequent first (a request is two events)
                case RequestReceived():
                    http = HTTPStream(self._ctx, self._host, info, event, now)
                    streams[event.stream_id] = http
                    http.start()
                case BodyEnded():
                    if (stream := streams.get(event.stream_id)) is not None:
                        stream.body_ended()
                case WebSocketMessage():
                    ws = streams.get(event.stream_id)
                    if ws is not None and not isinstance(ws, HTTPStream):
                        ws.message_received(event.data)
                case BodyReceived():
                    if (stream := streams.get(event.stream_id)) is not None:
                        stream.body_received(event.data)
                case StreamClosed():
                    if (stream := streams.pop(event.stream_id, None)) is not None:
                        stream.closed()
                case WebSocketClosed():
                    ws = streams.pop(event.stream_id, None)
                    if ws is not None and not isinstance(ws, HTTPStream):
                        ws.closed(event.code, event.reason)
                case UpgradeRequested():
                    # Only WebSocket upgrades reach the streams: the connection
                    # takes h2c itself and serves any other as a plain request.
                    from hypercorn.worker.asgi.websocket import WebSocketStream

                    ws = WebSocketStream(self._ctx, self._host, info, event.request, now)
                    streams[event.stream_id] = ws
                    ws.start()
                case RequestRejected():
                    pass  # the protocol answered it; no app runs
                case _:  # pragma: no cover
                    assert_never(event)

    def finished(self, stream_id: int) -> None:
        """The stream's response is complete or aborted."""
        self.streams.pop(stream_id, None)

    def close_websockets(self) -> None:
        """The worker drains: close every accepted WebSocket with 1001 (going away)."""
        for stream in list(self.streams.values()):
            if not isinstance(stream, HTTPStream):
                stream.shutdown()

    def close_all(self) -> None:
        """The connection is gone: every stream learns it."""
        streams = list(self.streams.values())
        self.streams.clear()
        for stream in streams:
            stream.closed()
