"""Read a WebSocket opening request and build the fields of its answer.

Over HTTP/1.1 the client proves it speaks WebSocket with a key that the
server hashes into ``sec-websocket-accept`` (RFC 6455 section 4.2); over
HTTP/2 an extended CONNECT with ``:protocol websocket`` replaces the key and
the ``Upgrade``/``Connection`` fields (RFC 8441 section 5). Both carry the
version (13), the offered subprotocols and the offered extensions, and both
end in the same frame layer (``ws.WSConnection``).

The only extension offered back is permessage-deflate (RFC 7692); its
negotiation (``accept_extensions``) happens when the app accepts, so that the
extension objects never leave this layer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from wsproto.extensions import Extension, PerMessageDeflate

from hypercorn.worker.protocol.events import Headers, WebSocketHandshake

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3


class HandshakeError(Exception):
    """The opening request is refused with ``status`` (and ``headers``)."""

    def __init__(self, status: int, reason: str, headers: Headers = ()) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers


def read_handshake(headers: Headers, *, http2: bool = False) -> WebSocketHandshake:
    """Validate the WebSocket fields of an opening request.

    Args:
        headers: the request's fields, names lower-cased.
        http2: the request is an extended CONNECT (no key is expected).

    Returns:
        The key (``None`` over HTTP/2), offered subprotocols and extensions.

    Raises:
        HandshakeError: 400 for a missing or malformed key, 426 with
            ``sec-websocket-version: 13`` for another version
            (RFC 6455 section 4.2.2).
    """
    key: bytes | None = None
    version = b""
    subprotocols: list[str] = []
    extensions: list[bytes] = []
    for name, value in headers:
        if name == b"sec-websocket-key":
            if key is not None:
                raise HandshakeError(400, "more than one Sec-WebSocket-Key")
            key = value.strip()
        elif name == b"sec-websocket-version":
            version = value.strip()
        elif name == b"sec-websocket-protocol":
            subprotocols.extend(
                token for raw in value.split(b",") if (token := raw.strip().decode("latin-1"))
            )
        elif name == b"sec-websocket-extensions":
            extensions.append(value)
    if version != b"13":
        raise HandshakeError(
            426, "unsupported WebSocket version", ((b"sec-websocket-version", b"13"),)
        )
    if not http2:
        try:
            valid = key is not None and len(base64.b64decode(key, validate=True)) == 16
        except binascii.Error:
            valid = False
        if not valid:
            raise HandshakeError(400, "missing or invalid Sec-WebSocket-Key")
    else:
        key = None
    return WebSocketHandshake(key, tuple(subprotocols), b", ".join(extensions))


def accept_token(key: bytes) -> bytes:
    """``sec-websocket-accept`` for a client's key (RFC 6455 section 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())


def accept_extensions(handshake: WebSocketHandshake) -> tuple[bytes | None, list[Extension]]:
    """Negotiate the extensions offered in ``handshake``.

    Returns:
        The ``sec-websocket-extensions`` value to answer (``None`` when no
        offer was accepted) and the extensions to run on the frames.
    """
    # RFC 7692 section 5: offers come in order of preference; take the first
    # one whose parameters we can honour.
    for offer in handshake.extensions.decode("latin-1").split(","):
        if offer.split(";", 1)[0].strip() != PerMessageDeflate.name:
            continue
        deflate = PerMessageDeflate()
        accepted = deflate.accept(offer.strip())
        if accepted is not None and accepted is not False:
            params = b"" if accepted is True else accepted.encode("ascii")
            value = b"permessage-deflate; " + params if params else b"permessage-deflate"
            return value, [deflate]
    return None, []


def response_fields(
    handshake: WebSocketHandshake, subprotocol: str | None, accepted: bytes | None
) -> Headers:
    """The handshake's own response fields: accept token, subprotocol, extensions."""
    fields: list[tuple[bytes, bytes]] = []
    if handshake.key is not None:
        fields += (
            (b"upgrade", b"websocket"),
            (b"connection", b"Upgrade"),
            (b"sec-websocket-accept", accept_token(handshake.key)),
        )
    if subprotocol is not None:
        fields.append((b"sec-websocket-protocol", subprotocol.encode("latin-1")))
    if accepted:
        fields.append((b"sec-websocket-extensions", accepted))
    return tuple(fields)
