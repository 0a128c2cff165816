"""Events that cross the seam between a sans-IO protocol and the ASGI streams.

Theory of operation
-------------------
A protocol object (HTTP/1.1 today; HTTP/2 and HTTP/3 later) turns bytes into
*inbound* events and *outbound* events into bytes. It never touches a socket,
a loop or a clock: the I/O layer feeds it with ``receive_data(data)`` and
``handle_timer(now)``, drains ``events_received()`` and ``data_to_send()``,
and hands outbound events to ``send(event)``.

Every event names its ``stream_id``. HTTP/1.1 numbers its requests 1, 3, 5,
... on a connection (one at a time, in order); HTTP/2 and HTTP/3 use their
own stream ids. These dataclasses are the only types that cross the seam:
h11, h2, wsproto and aioquic objects stay inside ``worker/protocol``.
"""

from __future__ import annotations

from dataclasses import dataclass

Headers = tuple[tuple[bytes, bytes], ...]

# --------------------------------------------------------------------------
# Inbound: protocol -> stream
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class BodyReceived:
    """A chunk of the request body (never empty)."""

    stream_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class BodyEnded:
    """The request body is complete."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class StreamClosed:
    """The peer went away or the stream was reset before it was complete.

    The ASGI layer turns this into ``http.disconnect`` for the stream.
    """

    stream_id: int


@dataclass(frozen=True, slots=True)
class RequestRejected:
    """The protocol answered a malformed request itself (400, 413, 431, ...).

    No app sees the request; the event exists so that the access log and
    metrics can count it.
    """

    stream_id: int
    status_code: int
    reason: str


InboundEvent = RequestReceived | BodyReceived | BodyEnded | StreamClosed | RequestRejected

# --------------------------------------------------------------------------
# Outbound: stream -> protocol
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InformationalResponse:
    """A 1xx response (100 Continue, 103 Early Hints)."""

    stream_id: int
    status_code: int
    headers: Headers = ()


@dataclass(frozen=True, slots=True)
class ResponseStarted:
    """The final response head.

    The stream layer has already added the server's default headers; the
    protocol only adds what its framing needs (``content-length``,
    ``transfer-encoding``, ``connection``).
    """

    stream_id: int
    status_code: int
    headers: Headers


@dataclass(frozen=True, slots=True)
class ResponseData:
    """A chunk of the response body."""

    stream_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class ResponseEnded:
    """The response is complete; ``trailers`` are sent where supported."""

    stream_id: int
    trailers: Headers = ()


@dataclass(frozen=True, slots=True)
class StreamAborted:
    """The app failed after the response started: end the stream abruptly.

    HTTP/1.1 closes the connection so the client can see the body is cut.
    """

    stream_id: int


OutboundEvent = (
    InformationalResponse | ResponseStarted | ResponseData | ResponseEnded | StreamAborted
)
