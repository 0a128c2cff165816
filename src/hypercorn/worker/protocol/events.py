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
own stream ids. These dataclasses (and ``ConnectionInfo``, what a stream
learns of its connection) are the only types that cross the seam: h11, h2,
wsproto and aioquic objects stay inside ``worker/protocol``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, dataclass_transform

Headers = tuple[tuple[bytes, bytes], ...]

_T = TypeVar("_T")


@dataclass_transform(frozen_default=True)
def event(cls: type[_T]) -> type[_T]:
    """Make an event class: a slotted dataclass, immutable to the type checker.

    Not frozen at run time: a frozen dataclass's ``__init__`` (one
    ``object.__setattr__`` per field) costs 2-3 times as much, and several
    events are made per request.
    """
    return dataclass(slots=True)(cls)


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """What a connection knows once, for every request on it."""

    protocol: str  # "h11", "h2" or "h3" (the ``server`` header names it)
    scheme: str  # "http" or "https"
    client: tuple[str, int] | None
    server: tuple[str, int | None] | None
    tls: dict[object, object] | None = None


# --------------------------------------------------------------------------
# Inbound: protocol -> stream
# --------------------------------------------------------------------------


@event
class RequestReceived:
    """A complete, validated request head.

    ``target`` is the raw request-target as sent (path and query, or the
    absolute form's path and query once the protocol has reduced it).
    ``headers`` keep their order; names are lower-cased.
    """

    stream_id: int
    method: str
    target: bytes
    headers: Headers
    http_version: str
    expects_continue: bool = False


@event
class BodyReceived:
    """A chunk of the request body (never empty)."""

    stream_id: int
    data: bytes


@event
class BodyEnded:
    """The request body is complete."""

    stream_id: int


@event
class StreamClosed:
    """The peer went away or the stream was reset before it was complete.

    The ASGI layer turns this into ``http.disconnect`` for the stream.
    """

    stream_id: int


@event
class RequestRejected:
    """The protocol answered a malformed request itself (400, 413, 431, ...).

    No app sees the request; the event exists so that the access log and
    metrics can count it.
    """

    stream_id: int
    status_code: int
    reason: str


@event
class UpgradeRequested:
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

    stream_id: int
    request: RequestReceived
    protocol: bytes


@event
class WebSocketMessage:
    """A complete WebSocket message: ``str`` for text, ``bytes`` for binary."""

    stream_id: int
    data: bytes | str


@event
class WebSocketClosed:
    """The WebSocket ended: the peer's close code (1005 if none), 1006 if it was lost."""

    stream_id: int
    code: int
    reason: str = ""


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


@event
class InformationalResponse:
    """A 1xx response (100 Continue, 103 Early Hints)."""

    stream_id: int
    status_code: int
    headers: Headers = ()


@event
class ResponseStarted:
    """The final response head.

    The stream layer has already added the server's default headers; the
    protocol only adds what its framing needs (``content-length``,
    ``transfer-encoding``, ``connection``).
    """

    stream_id: int
    status_code: int
    headers: Headers


@event
class ResponseData:
    """A chunk of the response body."""

    stream_id: int
    data: bytes


@event
class ResponseEnded:
    """The response is complete; ``trailers`` are sent where supported."""

    stream_id: int
    trailers: Headers = ()


@event
class StreamAborted:
    """The app failed after the response started: end the stream abruptly.

    HTTP/1.1 closes the connection so the client can see the body is cut.
    """

    stream_id: int


@event
class WebSocketHandshake:
    """A validated WebSocket opening request (RFC 6455 section 4.2.1, RFC 8441).

    Built by ``ws_handshake.read_handshake``; ``key`` is ``None`` over HTTP/2,
    where extended CONNECT replaces the key exchange.
    """

    key: bytes | None
    subprotocols: tuple[str, ...]
    extensions: bytes


@event
class WebSocketAccept:
    """Complete the handshake: 101 (HTTP/1.1) or 200 (HTTP/2), then frames.

    ``headers`` are the server's and the app's extra response fields; the
    protocol adds the handshake fields and the negotiated extensions.
    """

    stream_id: int
    handshake: WebSocketHandshake
    subprotocol: str | None
    headers: Headers


@event
class WebSocketSend:
    """Send one message: ``str`` as text, ``bytes`` as binary."""

    stream_id: int
    data: bytes | str


@event
class WebSocketClose:
    """Start the closing handshake with ``code`` and ``reason``."""

    stream_id: int
    code: int
    reason: str = ""


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
