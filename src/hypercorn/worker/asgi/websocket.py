"""One WebSocket as an ASGI ``websocket`` connection scope (ASGI WebSocket spec 2.4).

Theory of operation
-------------------
The connection creates a ``WebSocketStream`` for each opening request
(``UpgradeRequested`` over HTTP/1.1, an extended CONNECT over HTTP/2). The
stream checks the handshake fields first: a broken handshake is answered
400 (426 for another version) and no app runs. Otherwise the app's task
starts and its first ``receive()`` is ``websocket.connect``.

``WebSocketState`` orders the app's messages; the table is ``send``:

``HANDSHAKE``  ``websocket.accept`` -> ``CONNECTED`` (the protocol answers
               101/200 and frames from then on); ``websocket.close`` -> a 403
               response, ``CLOSED``; ``websocket.http.response.start`` ->
               ``RESPONSE`` (the denial extension: an HTTP answer instead).
``RESPONSE``   ``websocket.http.response.body`` until ``more_body`` is false,
               then ``CLOSED``.
``CONNECTED``  ``websocket.send`` (text or bytes); ``websocket.close`` ->
               ``CLOSED`` (a close frame with the app's code and reason).
``CLOSED``     every message is ignored, as the spec allows after a close;
               so is every message once the client has gone.

Any other message in a state raises ``UnexpectedMessageError(state, type)``
inside ``send``.

Inbound messages wait in a queue for ``receive()``; once it holds
``max_app_queue_size`` messages the stream asks the connection to pause
reading, and resumes it when the app catches up. When the WebSocket ends
(``closed``), ``receive()`` hands out what is queued and then
``websocket.disconnect`` with the close code, as often as it is called.

Ending. The app raises or returns before answering the handshake: 500. It
raises while connected: close 1011. It returns while connected: close
1000. While the server drains, ``shutdown`` closes a connected WebSocket with
1001 (going away). The access log gets one line per handshake answer.
"""

from __future__ import annotations

import collections
import contextlib
import enum
from typing import TYPE_CHECKING, Any

from hypercorn.shared.errors import ClientDisconnectedError, UnexpectedMessageError
from hypercorn.shared.header_rules import server_name_matches, validate_headers
from hypercorn.worker.asgi.http import StreamHost
from hypercorn.worker.asgi.http import build_scope as build_http_scope
from hypercorn.worker.protocol.events import (
    ConnectionInfo,
    Headers,
    OutboundEvent,
    RequestReceived,
    ResponseData,
    ResponseEnded,
    ResponseStarted,
    StreamAborted,
    WebSocketAccept,
    WebSocketClose,
    WebSocketHandshake,
    WebSocketSend,
)
from hypercorn.worker.protocol.ws_handshake import HandshakeError, read_handshake

if TYPE_CHECKING:
    from hypercorn.shared.eventloop import Future
    from hypercorn.typing import ASGIReceiveEvent, ASGISendEvent, WebsocketScope
    from hypercorn.worker.context import WorkerContext

_ERROR_HEADERS: Headers = ((b"content-length", b"0"),)
_NORMAL = 1000
_GOING_AWAY = 1001
_INTERNAL_ERROR = 1011
_ABNORMAL = 1006


class WebSocketState(enum.Enum):
    HANDSHAKE = "waiting for websocket.accept, websocket.close or a denial response"
    RESPONSE = "denial response started; body messages flow"
    CONNECTED = "accepted; messages flow"
    CLOSED = "closed by the app, the server or the client"


def build_scope(
    request: RequestReceived,
    handshake: WebSocketHandshake,
    info: ConnectionInfo,
    root_path: str,
    state: dict[str, Any],
) -> WebsocketScope:
    """The ASGI ``websocket`` scope for an opening request (ASGI WebSocket spec)."""
    http = build_http_scope(request, info, root_path, state)
    extensions: dict[str, dict[object, object]] = {"websocket.http.response": {}}
    if info.tls is not None:
        extensions["tls"] = info.tls
    return {
        "type": "websocket",
        "asgi": http["asgi"],
        "http_version": request.http_version,
        "scheme": "wss" if info.scheme == "https" else "ws",
        "path": http["path"],
        "raw_path": http["raw_path"],
        "query_string": http["query_string"],
        "root_path": root_path,
        "headers": http["headers"],
        "client": info.client,
        "server": info.server,
        "subprotocols": list(handshake.subprotocols),
        "state": http["state"],
        "extensions": extensions,
    }


def _message_data(message: Any) -> bytes | str:
    """The payload of a ``websocket.send`` message.

    Raises:
        TypeError: neither ``bytes`` nor ``text`` holds a payload of its type.
    """
    data = message.get("bytes")
    if data is None:
        data = message.get("text")
        if not isinstance(data, str):
            raise TypeError("websocket.send needs 'bytes' or 'text'")
        return data
    if type(data) is bytes:
        return data
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"websocket.send 'bytes' must be bytes, not {type(data)}")
    return bytes(data)


class WebSocketStream:
    """One WebSocket (handshake, messages, close) and its application task."""

    __slots__ = (
        "_ctx",
        "_disconnect",
        "_handshake",
        "_handshake_error",
        "_host",
        "_max_queue",
        "_pending_start",
        "_queue",
        "_receive_paused",
        "_response",
        "_start_time",
        "_started",
        "_waiter",
        "body_size",
        "protocol_name",
        "request",
        "scope",
        "state",
        "stream_id",
    )

    def __init__(
        self,
        ctx: WorkerContext,
        host: StreamHost,
        info: ConnectionInfo,
        request: RequestReceived,
        now: float,
    ) -> None:
        self._ctx = ctx
        self._host = host
        self.request = request
        self.stream_id = request.stream_id
        self.protocol_name = "wsproto"
        self.state = WebSocketState.HANDSHAKE
        self.body_size = 0
        self._start_time = now
        self._queue: collections.deque[ASGIReceiveEvent] = collections.deque()
        self._disconnect: ASGIReceiveEvent | None = None
        self._receive_paused = False
        self._started = False
        self._response: dict[str, Any] | None = None
        # The future receive() awaits while the queue is empty (cheaper than
        # an asyncio.Event, which this per-message path used to pay for).
        self._waiter: Future[None] | None = None
        self._max_queue = ctx.config.max_app_queue_size
        self._pending_start: ResponseStarted | None = None
        self._handshake: WebSocketHandshake | None = None
        self._handshake_error: HandshakeError | None = None
        try:
            self._handshake = read_handshake(
                request.headers, http2=request.http_version in ("2", "3")
            )
        except HandshakeError as error:
            self._handshake_error = error
        handshake = self._handshake or WebSocketHandshake(None, (), b"")
        self.scope = build_scope(request, handshake, info, ctx.config.root_path, ctx.state)

    # -- events from the connection -------------------------------------------

    def start(self) -> None:
        """Answer a broken handshake, or start the application task."""
        self._ctx.request_started()
        self._ctx.spawn(self._run())

    def message_received(self, data: bytes | str) -> None:
        """A complete message from the client."""
        if self._disconnect is not None:
            return
        if isinstance(data, str):
            self._queue.append({"type": "websocket.receive", "bytes": None, "text": data})
        else:
            self._queue.append({"type": "websocket.receive", "bytes": data, "text": None})
        if not self._receive_paused and len(self._queue) >= self._max_queue:
            self._receive_paused = True
            self._host.set_receive_paused(self.stream_id, True)
        self._wake()

    def body_received(self, data: bytes) -> None:
        """An opening request has no body: nothing to do."""

    def body_ended(self) -> None:
        """An opening request has no body: nothing to do."""

    def closed(self, code: int = _ABNORMAL, reason: str = "") -> None:
        """The WebSocket ended (``code`` 1006 when the connection was lost)."""
        if self._disconnect is not None:
            return
        self._disconnect = {"type": "websocket.disconnect", "code": code, "reason": reason}
        self._release_receive()
        self._wake()
        self._host.stream_finished(self.stream_id)

    def shutdown(self) -> None:
        """The server drains: close a connected WebSocket with 1001."""
        if self.state is WebSocketState.CONNECTED and self._disconnect is None:
            self.state = WebSocketState.CLOSED
            self._host.send_events(WebSocketClose(self.stream_id, _GOING_AWAY, ""))

    # -- the ASGI callables ---------------------------------------------------

    async def receive(self) -> ASGIReceiveEvent:
        """ASGI ``receive``: connect, the client's messages, then disconnect."""
        if not self._started:
            self._started = True
            return {"type": "websocket.connect"}
        while True:
            queue = self._queue
            if queue:
                message = queue.popleft()
                if self._receive_paused and len(queue) < self._max_queue:
                    self._release_receive()
                return message
            if self._disconnect is not None:
                return self._disconnect
            waiter = self._waiter = self._ctx.loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None

    async def send(self, message: ASGISendEvent) -> None:
        """ASGI ``send``: validate the message against the state and pass it on.

        Raises:
            UnexpectedMessageError: the message is out of order or unknown.
            TypeError, ValueError: the message's fields are invalid.
        """
        kind = message.get("type")
        state = self.state
        if state is WebSocketState.CONNECTED:
            if kind == "websocket.send":
                if self._disconnect is not None:
                    return  # the client has gone: ignored, like every message after a close
                host = self._host
                host.send_events(WebSocketSend(self.stream_id, _message_data(message)))
                if host.write_paused:
                    # A lost client reaches the app through receive(), not here.
                    with contextlib.suppress(ClientDisconnectedError):
                        await host.drain()
                return
            if kind == "websocket.close":
                self._close(message)
                return
        elif state is WebSocketState.HANDSHAKE:
            if kind == "websocket.accept":
                await self._accept(message)
                return
            if kind == "websocket.close":
                await self._respond_error(403)
                return
            if kind == "websocket.http.response.start":
                self._start_response(message)
                return
        elif state is WebSocketState.RESPONSE:
            if kind == "websocket.http.response.body":
                await self._send_body(message)
                return
        else:
            return  # CLOSED: everything is ignored
        raise UnexpectedMessageError(state, str(kind))

    # -- handshake answers ----------------------------------------------------

    async def _accept(self, message: Any) -> None:
        if self._disconnect is not None:
            self.state = WebSocketState.CLOSED
            return
        assert self._handshake is not None
        app_headers = validate_headers(message.get("headers") or ())
        if any(name == b"sec-websocket-protocol" for name, _ in app_headers):
            raise ValueError("set the subprotocol with 'subprotocol', not a header")
        subprotocol = message.get("subprotocol")
        if subprotocol is not None and not isinstance(subprotocol, str):
            raise TypeError(f"websocket.accept 'subprotocol' must be a str, not {subprotocol!r}")
        names = {name for name, _ in app_headers}
        headers = [
            header
            for header in self._ctx.default_headers(self.protocol_name)[0]
            if header[0] not in names
        ]
        headers.extend(app_headers)
        self._host.send_events(
            WebSocketAccept(self.stream_id, self._handshake, subprotocol, tuple(headers))
        )
        self.state = WebSocketState.CONNECTED
        self._response = {"type": "websocket.accept", "status": 101, "headers": headers}
        await self._log_access()

    def _start_response(self, message: Any) -> None:
        status = message["status"]
        if type(status) is not int or not 200 <= status <= 599:
            raise ValueError(f"invalid HTTP status {status!r} in websocket.http.response.start")
        app_headers = validate_headers(message.get("headers", ()))
        names = {name for name, _ in app_headers}
        headers = [
            header for header in self._ctx.default_headers("h11")[0] if header[0] not in names
        ]
        headers.extend(header for header in app_headers if header[0] != b"transfer-encoding")
        self._response = {"type": "http.response.start", "status": status, "headers": headers}
        self._pending_start = ResponseStarted(self.stream_id, status, tuple(headers))
        self.state = WebSocketState.RESPONSE

    async def _send_body(self, message: Any) -> None:
        body = message.get("body", b"")
        if not isinstance(body, bytes | bytearray | memoryview):
            raise TypeError(f"websocket.http.response.body 'body' must be bytes, not {body!r}")
        more_body = bool(message.get("more_body", False))
        events: list[OutboundEvent] = []
        if self._pending_start is not None:
            events.append(self._pending_start)
            self._pending_start = None
        if body:
            self.body_size += len(body)
            events.append(ResponseData(self.stream_id, bytes(body)))
        if not more_body:
            events.append(ResponseEnded(self.stream_id))
            self.state = WebSocketState.CLOSED
        if self._disconnect is None:
            self._host.send_events(*events)
        if not more_body:
            self._finish_response()
            await self._log_access()
        elif self._host.write_paused:
            try:
                await self._host.drain()
            except ClientDisconnectedError:
                self.state = WebSocketState.CLOSED

    async def _respond_error(self, status: int, extra: Headers = ()) -> None:
        self.state = WebSocketState.CLOSED
        headers = (*self._ctx.default_headers("h11")[0], *extra, *_ERROR_HEADERS)
        self._response = {"type": "http.response.start", "status": status, "headers": headers}
        if self._disconnect is None:
            self._host.send_events(
                ResponseStarted(self.stream_id, status, headers), ResponseEnded(self.stream_id)
            )
        self._finish_response()
        await self._log_access()

    def _finish_response(self) -> None:
        if self._disconnect is None:
            self._disconnect = {"type": "websocket.disconnect", "code": _ABNORMAL, "reason": ""}
            self._wake()
            self._host.stream_finished(self.stream_id)

    # -- messages ---------------------------------------------------------------

    def _close(self, message: Any) -> None:
        self.state = WebSocketState.CLOSED
        code = message.get("code")
        code = _NORMAL if code is None else code
        if type(code) is not int:
            raise TypeError(f"websocket.close 'code' must be an int, not {code!r}")
        reason = message.get("reason") or ""
        if self._disconnect is None:
            self._host.send_events(WebSocketClose(self.stream_id, code, reason))

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _release_receive(self) -> None:
        if self._receive_paused:
            self._receive_paused = False
            self._host.set_receive_paused(self.stream_id, False)

    async def _log_access(self) -> None:
        if self._ctx.access_log_enabled and self._response is not None:
            response = {**self._response, "body_size": self.body_size}
            await self._ctx.log.access(
                self.scope,
                response,
                self._ctx.loop.time() - self._start_time,
            )

    # -- the application task -------------------------------------------------

    async def _run(self) -> None:
        if self._handshake_error is not None:
            error = self._handshake_error
            await self._respond_error(error.status, error.headers)
            return
        if not server_name_matches(self._ctx.server_names, self.request.headers):
            await self._respond_error(404)
            return
        log = self._ctx.log
        failed = False
        try:
            await self._ctx.app(self.scope, self.receive, self.send)
        except Exception:
            failed = True
            await log.exception("Error in ASGI application during %s", self._describe())
        except BaseException:  # cancelled (asyncio's or trio's), or the process stops
            self._end(failed=True)
            raise
        state = self.state
        if state is WebSocketState.HANDSHAKE:
            if not failed:
                await log.error(
                    "ASGI application returned without answering the WebSocket handshake to %s",
                    self._describe(),
                )
            await self._respond_error(500)
        else:
            self._end(failed=failed)

    def _end(self, *, failed: bool) -> None:
        state = self.state
        self.state = WebSocketState.CLOSED
        if self._disconnect is not None:
            return
        if state is WebSocketState.CONNECTED:
            code = _INTERNAL_ERROR if failed else _NORMAL
            self._host.send_events(WebSocketClose(self.stream_id, code, ""))
        elif state is WebSocketState.RESPONSE or state is WebSocketState.HANDSHAKE:
            self._host.send_events(StreamAborted(self.stream_id))
            self._finish_response()

    def _describe(self) -> str:
        return f"WebSocket {self.scope['path']}"
