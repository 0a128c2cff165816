"""Events that cross the seam between a sans-IO protocol and the ASGI streams.

Theory of operation
-------------------
A protocol object (HTTP/1.1, HTTP/2, WebSocket, HTTP/3) turns bytes into
*inbound* events and *outbound* events into bytes. It never touches a socket,
a loop or a clock: the I/O layer feeds it with ``receive_data(data, now)`` and
``handle_timer(now)``, drains ``events_received()`` and ``data_to_send()``,
and hands outbound events to ``send(event, now)``.

Every event names its ``stream_id``. HTTP/1.1 numbers its requests 1, 3, 5,
... on a connection (one at a time, in order); HTTP/2 and HTTP/3 use their
own stream ids. These classes (and ``ConnectionInfo``, what a stream
learns of its connection) are the only types that cross the seam: h11, h2,
wsproto and aioquic objects stay inside ``worker/protocol``.
"""

from __future__ import annotations

from typing import ClassVar, Final

Headers = tuple[tuple[bytes, bytes], ...]


class Event:
    """What every event class shares: equality and a repr by fields.

    Events are plain slotted classes with their own ``__init__`` rather than
    dataclasses: compiled, such a class is a native type whose construction is
    a C call (a dataclass keeps a Python ``__init__`` even then), and several
    events are made per request. The fields are ``Final``, so the type checker
    holds events immutable; the compiled build enforces it at run time too.
    ``__match_args__`` names the fields, in order.
    """

    __slots__ = ()
    __match_args__: ClassVar[tuple[str, ...]] = ()
    __hash__ = None  # type: ignore[assignment]  # equal by value, like a dataclass

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__match_args__)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__match_args__)
        return f"{type(self).__name__}({fields})"


class ConnectionInfo(Event):
    """What a connection knows once, for every request on it.

    Not an event, but built like one (a native class when compiled, equal by
    value): one is made per connection, and a frozen dataclass's ``__init__``
    cost more than the rest of the connection's set-up together.
    """

    __slots__ = ("client", "protocol", "scheme", "server", "tls")
    __match_args__ = ("protocol", "scheme", "client", "server", "tls")
    protocol: Final[str]  # "h11", "h2" or "h3" (the ``server`` header names it)
    scheme: Final[str]  # "http" or "https"
    client: Final[tuple[str, int] | None]
    server: Final[tuple[str, int | None] | None]
    tls: Final[dict[object, object] | None]

    def __init__(
        self,
        protocol: str,
        scheme: str,
        client: tuple[str, int] | None,
        server: tuple[str, int | None] | None,
        tls: dict[object, object] | None = None,
    ) -> None:
        self.protocol = protocol
        self.scheme = scheme
        self.client = client
        self.server = server
        self.tls = tls


# --------------------------------------------------------------------------
# Inbound: protocol -> stream
# --------------------------------------------------------------------------


class RequestReceived(Event):
    """A complete, validated request head.

    ``target`` is the raw request-target as sent (path and query, or the
    absolute form's path and query once the protocol has reduced it).
    ``headers`` keep their order; names are lower-cased.
    """

    __slots__ = ("expects_continue", "headers", "http_version", "method", "stream_id", "target")
    __match_args__ = (
        "stream_id",
        "method",
        "target",
        "headers",
        "http_version",
        "expects_continue",
    )
    stream_id: Final[int]
    method: Final[str]
    target: Final[bytes]
    headers: Final[Headers]
    http_version: Final[str]
    expects_continue: Final[bool]

    def __init__(
        self,
        stream_id: int,
        method: str,
        target: bytes,
        headers: Headers,
        http_version: str,
        expects_continue: bool = False,
    ) -> None:
        self.stream_id = stream_id
        self.method = method
        self.target = target
        self.headers = headers
        self.http_version = http_version
        self.expects_continue = expects_continue


class BodyReceived(Event):
    """A chunk of the request body (never empty)."""

    __slots__ = ("data", "stream_id")
    __match_args__ = ("stream_id", "data")
    stream_id: Final[int]
    data: Final[bytes]

    def __init__(self, stream_id: int, data: bytes) -> None:
        self.stream_id = stream_id
        self.data = data


class BodyEnded(Event):
    """The request body is complete."""

    __slots__ = ("stream_id",)
    __match_args__ = ("stream_id",)
    stream_id: Final[int]

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id


class StreamClosed(Event):
    """The peer went away or the stream was reset before it was complete.

    The ASGI layer turns this into ``http.disconnect`` for the stream.
    """

    __slots__ = ("stream_id",)
    __match_args__ = ("stream_id",)
    stream_id: Final[int]

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id


class RequestRejected(Event):
    """The protocol answered a malformed request itself (400, 413, 431, ...).

    No app sees the request; the event exists so that the access log and
    metrics can count it.
    """

    __slots__ = ("reason", "status_code", "stream_id")
    __match_args__ = ("stream_id", "status_code", "reason")
    stream_id: Final[int]
    status_code: Final[int]
    reason: Final[str]

    def __init__(self, stream_id: int, status_code: int, reason: str) -> None:
        self.stream_id = stream_id
        self.status_code = status_code
        self.reason = reason


class UpgradeRequested(Event):
    """A request asks to switch protocols (RFC 9110 section 7.8).

    Sent by HTTP/1.1 instead of ``RequestReceived`` when a body-less request
    carries ``Connection: upgrade`` and an ``Upgrade`` the server speaks:
    ``protocol`` is ``b"websocket"`` (a GET, RFC 6455 section 4.2.1) or
    ``b"h2c"`` (plain TCP only, RFC 7540 section 3.2). The protocol holds
    every byte that arrives after the head, unparsed, until either the I/O
    layer takes the connection over (``H11Protocol.switch_protocol``, which
    returns those bytes) or a normal response to ``request`` is sent on the
    stream, which declines the upgrade. ``request`` is the request itself,
    so a declined upgrade can be served as an ordinary request with no body.
    """

    __slots__ = ("protocol", "request", "stream_id")
    __match_args__ = ("stream_id", "request", "protocol")
    stream_id: Final[int]
    request: Final[RequestReceived]
    protocol: Final[bytes]

    def __init__(self, stream_id: int, request: RequestReceived, protocol: bytes) -> None:
        self.stream_id = stream_id
        self.request = request
        self.protocol = protocol


class WebSocketMessage(Event):
    """A complete WebSocket message: ``str`` for text, ``bytes`` for binary."""

    __slots__ = ("data", "stream_id")
    __match_args__ = ("stream_id", "data")
    stream_id: Final[int]
    data: Final[bytes | str]

    def __init__(self, stream_id: int, data: bytes | str) -> None:
        self.stream_id = stream_id
        self.data = data


class WebSocketClosed(Event):
    """The WebSocket ended: the peer's close code (1005 if none), 1006 if it was lost."""

    __slots__ = ("code", "reason", "stream_id")
    __match_args__ = ("stream_id", "code", "reason")
    stream_id: Final[int]
    code: Final[int]
    reason: Final[str]

    def __init__(self, stream_id: int, code: int, reason: str = "") -> None:
        self.stream_id = stream_id
        self.code = code
        self.reason = reason


InboundEvent = (
    RequestReceived
    | BodyReceived
    | BodyEnded
    | StreamClosed
    | RequestRejected
    | UpgradeRequested
    | WebSocketMessage
    | WebSocketClosed
)

# --------------------------------------------------------------------------
# Outbound: stream -> protocol
# --------------------------------------------------------------------------


class InformationalResponse(Event):
    """A 1xx response (100 Continue, 103 Early Hints)."""

    __slots__ = ("headers", "status_code", "stream_id")
    __match_args__ = ("stream_id", "status_code", "headers")
    stream_id: Final[int]
    status_code: Final[int]
    headers: Final[Headers]

    def __init__(self, stream_id: int, status_code: int, headers: Headers = ()) -> None:
        self.stream_id = stream_id
        self.status_code = status_code
        self.headers = headers


class ResponseStarted(Event):
    """The final response head.

    The stream layer has already added the server's default headers; the
    protocol only adds what its framing needs (``content-length``,
    ``transfer-encoding``, ``connection``).
    """

    __slots__ = ("headers", "status_code", "stream_id")
    __match_args__ = ("stream_id", "status_code", "headers")
    stream_id: Final[int]
    status_code: Final[int]
    headers: Final[Headers]

    def __init__(self, stream_id: int, status_code: int, headers: Headers) -> None:
        self.stream_id = stream_id
        self.status_code = status_code
        self.headers = headers


class ResponseData(Event):
    """A chunk of the response body."""

    __slots__ = ("data", "stream_id")
    __match_args__ = ("stream_id", "data")
    stream_id: Final[int]
    data: Final[bytes]

    def __init__(self, stream_id: int, data: bytes) -> None:
        self.stream_id = stream_id
        self.data = data


class ResponseEnded(Event):
    """The response is complete; ``trailers`` are sent where supported."""

    __slots__ = ("stream_id", "trailers")
    __match_args__ = ("stream_id", "trailers")
    stream_id: Final[int]
    trailers: Final[Headers]

    def __init__(self, stream_id: int, trailers: Headers = ()) -> None:
        self.stream_id = stream_id
        self.trailers = trailers


class StreamAborted(Event):
    """The app failed after the response started: end the stream abruptly.

    HTTP/1.1 closes the connection so the client can see the body is cut.
    """

    __slots__ = ("stream_id",)
    __match_args__ = ("stream_id",)
    stream_id: Final[int]

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id


class WebSocketHandshake(Event):
    """A validated WebSocket opening request (RFC 6455 section 4.2.1, RFC 8441).

    Built by ``ws_handshake.read_handshake``; ``key`` is ``None`` over HTTP/2,
    where extended CONNECT replaces the key exchange.
    """

    __slots__ = ("extensions", "key", "subprotocols")
    __match_args__ = ("key", "subprotocols", "extensions")
    key: Final[bytes | None]
    subprotocols: Final[tuple[str, ...]]
    extensions: Final[bytes]

    def __init__(self, key: bytes | None, subprotocols: tuple[str, ...], extensions: bytes) -> None:
        self.key = key
        self.subprotocols = subprotocols
        self.extensions = extensions


class WebSocketAccept(Event):
    """Complete the handshake: 101 (HTTP/1.1) or 200 (HTTP/2), then frames.

    ``headers`` are the server's and the app's extra response fields; the
    protocol adds the handshake fields and the negotiated extensions.
    """

    __slots__ = ("handshake", "headers", "stream_id", "subprotocol")
    __match_args__ = ("stream_id", "handshake", "subprotocol", "headers")
    stream_id: Final[int]
    handshake: Final[WebSocketHandshake]
    subprotocol: Final[str | None]
    headers: Final[Headers]

    def __init__(
        self,
        stream_id: int,
        handshake: WebSocketHandshake,
        subprotocol: str | None,
        headers: Headers,
    ) -> None:
        self.stream_id = stream_id
        self.handshake = handshake
        self.subprotocol = subprotocol
        self.headers = headers


class WebSocketSend(Event):
    """Send one message: ``str`` as text, ``bytes`` as binary."""

    __slots__ = ("data", "stream_id")
    __match_args__ = ("stream_id", "data")
    stream_id: Final[int]
    data: Final[bytes | str]

    def __init__(self, stream_id: int, data: bytes | str) -> None:
        self.stream_id = stream_id
        self.data = data


class WebSocketClose(Event):
    """Start the closing handshake with ``code`` and ``reason``."""

    __slots__ = ("code", "reason", "stream_id")
    __match_args__ = ("stream_id", "code", "reason")
    stream_id: Final[int]
    code: Final[int]
    reason: Final[str]

    def __init__(self, stream_id: int, code: int, reason: str = "") -> None:
        self.stream_id = stream_id
        self.code = code
        self.reason = reason


OutboundEvent = (
    InformationalResponse
    | ResponseStarted
    | ResponseData
    | ResponseEnded
    | StreamAborted
    | WebSocketAccept
    | WebSocketSend
    | WebSocketClose
)
