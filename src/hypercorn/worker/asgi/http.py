"""One HTTP request as an ASGI ``http`` connection scope (ASGI HTTP spec 2.4).

Theory of operation
-------------------
The connection creates an ``HTTPStream`` for each ``RequestReceived`` and feeds
it the request's ``BodyReceived``/``BodyEnded``/``StreamClosed`` events; the
stream runs the application in one task and turns its ``send`` messages into
outbound protocol events. Two independent halves:

Request body (``receive``). Body chunks are kept as received; a
``receive()`` hands out everything buffered as one ``http.request`` (a lone
chunk as is, without a copy). Once the
buffer holds ``BODY_HIGH_WATER`` bytes or ``max_app_queue_size`` chunks the
stream asks the connection to pause reading, and lets it resume as soon as
the app takes the buffer: a slow app back-pressures the client. The first
``receive()`` of a request that expects it sends ``100 Continue``. After the
response is complete, or once the client is gone, ``receive()`` returns
``http.disconnect`` (and body still arriving is dropped).

Response (``send``). ``ResponseState`` checks the order of messages; a
message out of order, or of an unknown type, raises
``UnexpectedMessageError`` inside ``send``. ``http.response.start`` is held
until the first body message so that a complete small response leaves in one
write. Default headers (``date``, ``server``, ``alt-svc``) are prepended unless
the app set the same name; while the worker drains, ``connection: close`` is
added. When the transport's buffer is full, ``send`` waits for it to drain: a
slow client back-pressures the app. ``send`` on a disconnected client raises
``ClientDisconnectedError`` (an ``OSError``, spec 2.4), which the stream
expects and does not log; messages after the response is complete are
ignored, as the spec says. File bodies (``http.response.pathsend`` and
``zerocopysend``) are handled in ``files.py``.

Ending. The app raises before a response head left: 500. It raises after:
the stream is aborted (HTTP/1.1 closes the connection, so the client sees a
truncated body rather than a complete-looking one). It returns without
sending a response: 500. It returns mid-body: aborted likewise, since ending
the body normally would pass a truncated response off as whole. All of these
are logged once; the access log gets one line per response.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote_to_bytes

from hypercorn.shared.errors import ClientDisconnectedError as ClientDisconnectedError
from hypercorn.shared.errors import UnexpectedMessageError
from hypercorn.shared.header_rules import server_name_matches, validate_headers
from hypercorn.worker.asgi import files
from hypercorn.worker.protocol.events import (
    ConnectionInfo,
    Headers,
    InformationalResponse,
    OutboundEvent,
    RequestReceived,
    ResponseData,
    ResponseEnded,
    ResponseStarted,
    StreamAborted,
)

if TYPE_CHECKING:
    from hypercorn.shared.eventloop import Future
    from hypercorn.typing import ASGIReceiveEvent, ASGISendEvent, HTTPScope
    from hypercorn.worker.context import WorkerContext

ASGI_VERSIONS: dict[str, str] = {"version": "3.0", "spec_version": "2.4"}
BODY_HIGH_WATER = 64 * 1024
"""Buffered request-body bytes past which reading pauses until the app receives."""

_CLOSE_HEADER = (b"connection", b"close")
_MULTIPLEXED = frozenset(("2", "3"))  # HTTP/2 and HTTP/3: streams, push, trailers
_ERROR_HEADERS: Headers = ((b"content-length", b"0"),)


class StreamHost(Protocol):
    """What a stream needs from its connection."""

    def send_events(self, *events: OutboundEvent) -> None:
        """Hand events to the protocol and write the resulting bytes (one write)."""

    @property
    def write_paused(self) -> bool:
        """True while the transport's write buffer is above its high-water mark."""
        ...

    async def drain(self, stream_id: int | None = None) -> None:
        """Wait until the transport accepts more data (and, given ``stream_id``,
        until that stream's queued bytes have left under HTTP/2 flow control).

        Raises:
            ClientDisconnectedError: the connection was lost meanwhile.
        """

    def stream_blocked(self, stream_id: int) -> bool:
        """HTTP/2: True while the stream's sent bytes wait for flow-control window."""
        ...

    async def send_file(self, stream_id: int, fd: int, offset: int, count: int) -> int:
        """Write up to ``count`` bytes of the regular file ``fd`` from ``offset`` as
        the stream's next body bytes without reading them into Python
        (``os.sendfile``), after everything sent before; return how many were
        written. 0 where the bytes need the protocol's framing or encryption
        (TLS, HTTP/2 and HTTP/3, a chunked body) or the I/O layer has no such
        call: the stream then reads and sends them itself. Fewer than
        ``count`` if the file ended early.

        Raises:
            ClientDisconnectedError: the connection was lost, before or during.
        """
        ...

    def body_consumed(self, stream_id: int, size: int) -> None:
        """HTTP/2: the app took ``size`` body bytes; their window can be given back."""

    def push(self, stream_id: int, path: bytes, headers: Headers) -> None:
        """HTTP/2: promise and serve ``GET path`` as a pushed response."""

    def set_receive_paused(self, stream_id: int, paused: bool) -> None:
        """Ask for reading to pause (or allow it to resume) for this stream's sake."""

    def stream_finished(self, stream_id: int) -> None:
        """The stream's response is complete or aborted."""


class ResponseState(enum.Enum):
    # Hashed by identity, in C: the send table is looked up by (state, type)
    # on every message, and Enum's own __hash__ is Python code.
    __hash__ = object.__hash__

    WAITING = "waiting for http.response.start"
    STARTED = "response head held until the first body message"
    BODY = "response head sent; body messages flow"
    TRAILERS = "body complete; waiting for http.response.trailers"
    COMPLETE = "response complete or aborted"


def build_scope(
    event: RequestReceived, info: ConnectionInfo, root_path: str, state: dict[str, Any]
) -> HTTPScope:
    """The ASGI ``http`` scope for a request (ASGI HTTP spec, connection scope)."""
    target = event.target
    if not target.startswith(b"/") and b"://" in target:
        # Absolute form (RFC 9112 section 3.2.2): keep the path and query only.
        rest = target.split(b"://", 1)[1]
        slash = rest.find(b"/")
        target = rest[slash:] if slash >= 0 else b"/"
    raw_path, _, query_string = target.partition(b"?")
    extensions: dict[str, dict[object, object]] = {
        "http.response.early_hint": {},
        "http.response.pathsend": {},
        "http.response.zerocopysend": {},
    }
    if event.http_version in _MULTIPLEXED:
        extensions["http.response.push"] = {}
        if any(name == b"te" and b"trailers" in value.lower() for name, value in event.headers):
            extensions["http.response.trailers"] = {}
    if info.tls is not None:
        extensions["tls"] = info.tls
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": ASGI_VERSIONS["spec_version"]},
        "http_version": event.http_version,
        "method": event.method,
        "scheme": info.scheme,
        # ``0x25 in`` ("%"): a bytes needle makes ``in`` try it as an int first,
        # and build and drop a TypeError, at ten times the cost.
        "path": (unquote_to_bytes(raw_path) if 0x25 in raw_path else raw_path).decode(
            "utf-8", "replace"
        ),
        "raw_path": raw_path,
        "query_string": query_string,
        "root_path": root_path,
        "headers": list(event.headers),
        "client": info.client,
        "server": info.server,
        "state": dict(state),
        "extensions": extensions,
    }


def _can_frame(status: int, framed: bool, method: str) -> bool:
    """True if a content-length may be added to a response whose body is complete
    (``framed``: the app gave one itself)."""
    # RFC 9110 sections 8.6, 9.3.2: for HEAD, 204 and 304 the length would be
    # wrong or is forbidden.
    return not framed and method != "HEAD" and status != 204 and status != 304


class HTTPStream:
    """One request/response exchange and its application task."""

    __slots__ = (
        "_body",
        "_body_buffered",
        "_body_done",
        "_body_sent",
        "_continue_sent",
        "_ctx",
        "_disconnected",
        "_framed",
        "_h2",
        "_host",
        "_pending_start",
        "_protocol_name",
        "_receive_paused",
        "_response_headers",
        "_start_time",
        "_status",
        "_trailers",
        "_wakeup",
        "body_size",
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
        self._protocol_name = info.protocol
        self.scope = build_scope(request, info, ctx.config.root_path, ctx.state)
        self.state = ResponseState.WAITING
        self.body_size = 0
        self._start_time = now
        self._body: list[bytes] = []  # received, not yet handed to the app
        self._body_buffered = 0  # their size
        self._body_done = False
        self._body_sent = False
        self._continue_sent = False
        self._disconnected = False
        self._receive_paused = False
        self._pending_start: list[tuple[bytes, bytes]] | None = None  # the held head's headers
        self._framed = False  # the app's response head has a content-length
        # The response head as the app gave it (for the counters and the access
        # log, which builds its message only when it is written); 0: none yet.
        self._status = 0
        self._response_headers: Sequence[tuple[bytes, bytes]] = ()
        self._h2 = request.http_version in _MULTIPLEXED  # per-stream flow control
        self._trailers: list[tuple[bytes, bytes]] | None = None
        self._wakeup: Future[None] | None = None  # made by a receive() that waits

    # -- events from the connection -------------------------------------------

    def start(self) -> None:
        """Start the application task."""
        self._ctx.request_started()
        self._ctx.spawn(self._run())

    def body_received(self, data: bytes) -> None:
        if self.state is ResponseState.COMPLETE or self._disconnected:
            return
        self._body.append(data)
        self._body_buffered += len(data)
        if not self._receive_paused and (
            self._body_buffered >= BODY_HIGH_WATER
            or len(self._body) >= self._ctx.config.max_app_queue_size
        ):
            self._receive_paused = True
            self._host.set_receive_paused(self.stream_id, True)
        self._wake()

    def body_ended(self) -> None:
        self._body_done = True
        self._wake()

    def closed(self) -> None:
        """The client went away (or the request was cut short)."""
        self._disconnected = True
        self._release_receive()
        self._wake()
        if self.state is not ResponseState.COMPLETE:
            self._host.stream_finished(self.stream_id)

    def _wake(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    # -- the ASGI callables ---------------------------------------------------

    async def receive(self) -> ASGIReceiveEvent:
        """ASGI ``receive``: the request body, then ``http.disconnect``."""
        while True:
            if self._disconnected or self.state is ResponseState.COMPLETE:
                return {"type": "http.disconnect"}
            if self._body_buffered or (self._body_done and not self._body_sent):
                chunks = self._body
                data = chunks[0] if len(chunks) == 1 else b"".join(chunks)  # one chunk: no copy
                self._body = []
                self._body_buffered = 0
                self._release_receive()
                if self._h2 and data:
                    self._host.body_consumed(self.stream_id, len(data))
                more_body = not self._body_done
                self._body_sent = not more_body
                return {"type": "http.request", "body": data, "more_body": more_body}
            if (
                self.request.expects_continue
                and not self._continue_sent
                and self.state is ResponseState.WAITING
            ):
                self._continue_sent = True
                self._host.send_events(InformationalResponse(self.stream_id, 100))
            wakeup = self._wakeup = self._ctx.loop.create_future()
            try:
                await wakeup
            finally:
                self._wakeup = None

    async def send(self, message: ASGISendEvent) -> None:
        """ASGI ``send``: validate the message against the state and pass it on.

        Raises:
            UnexpectedMessageError: the message is out of order or unknown.
            ClientDisconnectedError: the client is gone.
            TypeError, ValueError: the message's fields are invalid.
        """
        kind = message.get("type")
        state = self.state
        # The two messages of every response, called directly (compiled: a
        # native call, no key tuple, no lookup); the same handlers as ``_SEND``.
        if kind == "http.response.body":
            if state is ResponseState.BODY or state is ResponseState.STARTED:
                await self._send_body(message)
                return
        elif kind == "http.response.start" and state is ResponseState.WAITING:
            self._start(message)
            return
        try:
            handler = _SEND.get((state, kind))
        except TypeError:  # an unhashable type
            handler = None
        if handler is not None:
            step = handler(self, message)
            if step is not None:
                await step
        elif state is not ResponseState.COMPLETE or not (
            kind in _IGNORED_WHEN_COMPLETE or (kind == "http.response.push" and self._h2)
        ):
            raise UnexpectedMessageError(state, str(kind))

    def _push_message(self, message: Any) -> None:
        if not self._h2:
            raise UnexpectedMessageError(self.state, "http.response.push")
        if not self._disconnected:
            self._push(message)

    # -- response -------------------------------------------------------------

    def _start(self, message: Any) -> None:
        if self._disconnected:
            raise ClientDisconnectedError("client disconnected")
        status = message["status"]
        if type(status) is not int or not 200 <= status <= 599:
            raise ValueError(f"invalid HTTP status {status!r} in http.response.start")
        app_headers = validate_headers(message.get("headers", ()))
        defaults, default_names = self._ctx.default_headers(self._protocol_name)
        replaced = framed = transfer_encoding = False
        for name, _ in app_headers:
            if name in default_names:
                replaced = True  # the app's own date, server or alt-svc wins
            elif name == b"content-length":
                framed = True
            elif name == b"transfer-encoding":
                transfer_encoding = True  # framing is the protocol's business
        if replaced:
            names = {name for name, _ in app_headers}
            headers = [header for header in defaults if header[0] not in names]
        else:
            headers = list(defaults)
        if transfer_encoding:
            headers.extend(header for header in app_headers if header[0] != b"transfer-encoding")
        else:
            headers += app_headers
        self._framed = framed
        if self._ctx.draining:
            headers.append(_CLOSE_HEADER)
        if message.get("trailers") and "http.response.trailers" in self.scope["extensions"]:
            self._trailers = []
        self._pending_start = headers
        self._status = status
        self._response_headers = headers
        self.state = ResponseState.STARTED

    async def _send_body(self, message: Any) -> None:
        if self._disconnected:
            raise ClientDisconnectedError("client disconnected")
        body = message.get("body", b"")
        if type(body) is not bytes:
            if not isinstance(body, bytearray | memoryview):
                raise TypeError(f"http.response.body 'body' must be bytes, not {type(body)}")
            body = bytes(body)
        more_body = bool(message.get("more_body", False))
        events: list[OutboundEvent] = []
        start = None
        if self._pending_start is not None:
            start = self._take_head(None if more_body else len(body))
            events.append(start)
        if body:
            self.body_size += len(body)
            events.append(ResponseData(self.stream_id, body))
        trailers_next = not more_body and self._trailers is not None
        if not more_body and not trailers_next:
            events.append(ResponseEnded(self.stream_id))
        try:
            self._host.send_events(*events)
        except (ValueError, RuntimeError):
            if start is not None:
                # The protocol refused the head (e.g. a bad content-length): nothing
                # was written, so the app's error can still become a 500.
                self.state = ResponseState.WAITING
            raise
        if trailers_next:
            self.state = ResponseState.TRAILERS
        elif not more_body:
            self._complete()
            if (duration := self._count_response()) is not None:
                await self._log_access(duration)
        elif self._h2:
            if self._host.write_paused or self._host.stream_blocked(self.stream_id):
                await self._host.drain(self.stream_id)
        elif self._host.write_paused:
            await self._host.drain()

    def _take_head(self, length: int | None) -> ResponseStarted:
        """The held head, as the first body message takes it out; ``length``
        is the whole body's when that message completes the body."""
        headers = self._pending_start
        status = self._status
        assert headers is not None and status  # set with the held head
        if length is not None and _can_frame(status, self._framed, self.request.method):
            # The whole body is known: frame it by length, not chunks.
            headers.append((b"content-length", b"%d" % length))
        self._pending_start = None
        self.state = ResponseState.BODY
        return ResponseStarted(self.stream_id, status, tuple(headers))

    async def _send_trailers(self, message: Any) -> None:
        if self._disconnected:
            raise ClientDisconnectedError("client disconnected")
        assert self._trailers is not None
        self._trailers.extend(validate_headers(message.get("headers", ())))
        if message.get("more_trailers", False):
            return
        self._host.send_events(ResponseEnded(self.stream_id, tuple(self._trailers)))
        self._complete()
        if (duration := self._count_response()) is not None:
            await self._log_access(duration)

    def _push(self, message: Any) -> None:
        path = message["path"]
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"http.response.push 'path' must be an absolute path, not {path!r}")
        headers = validate_headers(message.get("headers", ()))
        self._host.push(self.stream_id, path.encode("ascii"), tuple(headers))

    def _early_hint(self, message: Any) -> None:
        if self._disconnected or self.request.http_version == "1.0":
            return  # RFC 9110 section 15.2: no 1xx to HTTP/1.0 clients
        links = [(b"link", bytes(link)) for link in message.get("links", ())]
        if links:
            self._host.send_events(InformationalResponse(self.stream_id, 103, tuple(links)))

    def _complete(self) -> None:
        self.state = ResponseState.COMPLETE
        self._release_receive()
        self._body = []
        self._body_buffered = 0
        self._wake()
        if not self._disconnected:
            self._host.stream_finished(self.stream_id)

    def _release_receive(self) -> None:
        if self._receive_paused:
            self._receive_paused = False
            self._host.set_receive_paused(self.stream_id, False)

    def _count_response(self) -> float | None:
        """Count the response as it ends; its duration if it is due an access-log line."""
        if not self._status:
            return None
        ctx = self._ctx
        duration = ctx.loop.time() - self._start_time
        ctx.counters.observe(self._status, duration)
        return duration if ctx.access_log_enabled else None

    async def _log_access(self, duration: float) -> None:
        assert self._status
        response = {
            "type": "http.response.start",
            "status": self._status,
            "headers": self._response_headers,
            "body_size": self.body_size,
        }
        await self._ctx.log.access(self.scope, response, duration)

    async def _respond_error(self, status: int) -> None:
        """Send a bodiless error response in place of the app's."""
        self._pending_start = None
        headers = (*self._ctx.default_headers(self._protocol_name)[0], *_ERROR_HEADERS)
        self._status = status
        self._response_headers = headers
        self._host.send_events(
            ResponseStarted(self.stream_id, status, headers), ResponseEnded(self.stream_id)
        )
        self._complete()
        if (duration := self._count_response()) is not None:
            await self._log_access(duration)

    def _abort(self) -> None:
        self._host.send_events(StreamAborted(self.stream_id))
        self._complete()

    # -- the application task -------------------------------------------------

    async def _run(self) -> None:
        log = self._ctx.log
        if not server_name_matches(self._ctx.server_names, self.request.headers):
            await self._respond_error(404)
            return
        try:
            await self._ctx.app(self.scope, self.receive, self.send)
        except Exception as error:
            if self._disconnected and isinstance(error, OSError):
                await log.debug("client disconnected during %s", self._describe())
            else:
                await log.exception("Error in ASGI application during %s", self._describe())
        except BaseException:  # cancelled (asyncio's or trio's), or the process stops
            if self.state is not ResponseState.COMPLETE and not self._disconnected:
                self._abort()
            raise
        else:
            if self.state is not ResponseState.COMPLETE and not self._disconnected:
                await log.error(
                    "ASGI application returned without completing the response to %s",
                    self._describe(),
                )
        if self.state is ResponseState.COMPLETE:
            return
        if self._disconnected:
            self.state = ResponseState.COMPLETE
        elif self.state is ResponseState.BODY or self.state is ResponseState.TRAILERS:
            self._abort()
            if (duration := self._count_response()) is not None:
                await self._log_access(duration)
        else:
            await self._respond_error(500)

    def _describe(self) -> str:
        scope = self.scope
        return f"{scope['method']} {scope['path']}"


_Handler = Callable[[HTTPStream, Any], Awaitable[None] | None]
_SEND: dict[tuple[ResponseState, str], _Handler] = {
    (ResponseState.WAITING, "http.response.start"): HTTPStream._start,
    (ResponseState.WAITING, "http.response.early_hint"): HTTPStream._early_hint,
    (ResponseState.STARTED, "http.response.body"): HTTPStream._send_body,
    (ResponseState.BODY, "http.response.body"): HTTPStream._send_body,
    (ResponseState.TRAILERS, "http.response.trailers"): HTTPStream._send_trailers,
    (ResponseState.STARTED, "http.response.pathsend"): files.send_path,
    (ResponseState.STARTED, "http.response.zerocopysend"): files.send_zerocopy,
    (ResponseState.BODY, "http.response.zerocopysend"): files.send_zerocopy,
    **{
        (state, "http.response.push"): HTTPStream._push_message
        for state in ResponseState
        if state is not ResponseState.COMPLETE
    },
}
"""What ``send`` does with each message in each state; any other pair is out of
order (``UnexpectedMessageError``), except those the spec ignores once the
response is complete."""

_IGNORED_WHEN_COMPLETE = frozenset(
    ("http.response.start", "http.response.early_hint", "http.response.body",
     "http.response.trailers", "http.response.pathsend", "http.response.zerocopysend")
)  # fmt: skip
