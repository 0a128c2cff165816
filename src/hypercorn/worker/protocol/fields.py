"""Header fields as HTTP/2 and HTTP/3 carry them: pseudo-headers and connection fields.

Both protocols send a request's method, target and authority as pseudo-header
fields and forbid the connection-specific fields of HTTP/1.1 (RFC 9113 section
8.2.2, RFC 9114 section 4.2). The two protocol modules share this one reading,
so a request means the same whichever protocol carried it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

from hypercorn.worker.protocol.events import Headers

CONNECTION_HEADERS = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)


class RequestFields(NamedTuple):
    """A request's pseudo-header values and its regular fields.

    ``headers`` starts with ``host`` (from ``:authority``, else the ``host``
    field) when either is present, as ASGI applications expect.
    """

    method: bytes
    path: bytes
    authority: bytes
    protocol: bytes
    headers: Headers


def split_request_fields(fields: Iterable[tuple[bytes, bytes]]) -> RequestFields:
    """Separate the pseudo-header fields of a request from its regular fields."""
    method = path = authority = protocol = b""
    headers: list[tuple[bytes, bytes]] = []
    host: bytes | None = None
    for raw_name, raw_value in fields:
        name = bytes(raw_name)
        value = bytes(raw_value)
        if name[:1] == b":":
            if name == b":method":
                method = value
            elif name == b":path":
                path = value
            elif name == b":authority":
                authority = value
            elif name == b":protocol":
                protocol = value
        elif name == b"host":
            host = value
        else:
            headers.append((name, value))
    authority = authority or host or b""
    if authority:
        headers.insert(0, (b"host", authority))
    return RequestFields(method, path, authority, protocol, tuple(headers))


def expects_continue(headers: Headers) -> bool:
    """True when the request asks for ``100 Continue`` before sending its body."""
    return any(name == b"expect" and value.lower() == b"100-continue" for name, value in headers)


def strip_connection_fields(
    headers: Iterable[tuple[bytes, bytes]],
) -> Iterator[tuple[bytes, bytes]]:
    """Response fields without the connection-specific ones (``te`` only as ``trailers``)."""
    for header in headers:
        name = header[0]
        if name in CONNECTION_HEADERS or (name == b"te" and header[1].lower() != b"trailers"):
            continue
        yield header
