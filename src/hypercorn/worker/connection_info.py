"""What a new connection's transport tells about it: addresses, scheme, TLS.

The I/O layer reads these once per connection and hands them to the sans-IO
connection as a ``ConnectionInfo`` (``worker/protocol/events.py``); the
streams copy them into every scope. The ASGI TLS extension
(``scope["extensions"]["tls"]``) is built here because it needs the ``ssl``
objects, which ``worker/protocol`` never imports.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any, Protocol

from hypercorn.shared.addresses import parse_socket_addr
from hypercorn.worker.protocol.events import ConnectionInfo

_TLS_VERSIONS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
_RDN_NAMES = {
    "commonName": "CN",
    "countryName": "C",
    "domainComponent": "DC",
    "localityName": "L",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "stateOrProvinceName": "ST",
    "streetAddress": "STREET",
    "userId": "UID",
}


class ExtraInfo(Protocol):
    """What a transport answers: ``get_extra_info`` (asyncio's and uvloop's alike)."""

    def get_extra_info(self, name: str, default: Any = None) -> Any: ...


def connection_info(
    transport: ExtraInfo, secure: bool, peername: Any = None, sockname: Any = None
) -> ConnectionInfo:
    """Client, server, scheme and TLS details of a new connection.

    ``peername`` and ``sockname`` are the addresses as the listener already
    knows them (``accept`` returns the peer's; a listener bound to one address
    has every connection's local one); the transport is asked for those not given.
    """
    # The family shows in the address itself (a tuple for IPv4 and IPv6, a
    # path for unix), which spares asking for the socket and its family.
    if sockname is None:
        sockname = transport.get_extra_info("sockname")
    client: tuple[str, int] | None = None
    server: tuple[str, int | None] | None = None
    if isinstance(sockname, tuple):
        server = _host_port(sockname)
        if peername is None:
            peername = transport.get_extra_info("peername")
        client = _host_port(peername)
    elif sockname is not None:
        path = parse_socket_addr(socket.AF_UNIX, sockname)
        server = (path if isinstance(path, str) else "", None)
    tls = None
    if secure:
        ssl_object: ssl.SSLObject | None = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            tls = tls_extension(ssl_object)
    return ConnectionInfo(
        protocol="h11",
        scheme="https" if secure else "http",
        client=client,
        server=server,
        tls=tls,
    )


def _host_port(address: Any) -> tuple[str, int] | None:
    """An IPv4 or IPv6 address as scopes give it (``parse_socket_addr``'s rule,
    without its interpreted call per address)."""
    if address is None:
        return None
    return (str(address[0]), int(address[1]))


def selected_alpn(transport: ExtraInfo) -> str | None:
    """The protocol TLS negotiated by ALPN, if any."""
    ssl_object: ssl.SSLObject | None = transport.get_extra_info("ssl_object")
    return ssl_object.selected_alpn_protocol() if ssl_object is not None else None


_cipher_ids: dict[str, int] = {}


def _cipher_suite(context: ssl.SSLContext, name: str) -> int | None:
    if name not in _cipher_ids:
        for cipher in context.get_ciphers():
            _cipher_ids[cipher["name"]] = cipher["id"] & 0xFFFF
    return _cipher_ids.get(name)


def tls_extension(ssl_object: ssl.SSLObject) -> dict[object, object]:
    """The ASGI TLS extension for a connection (``scope["extensions"]["tls"]``)."""
    version = ssl_object.version()
    cipher = ssl_object.cipher()
    der = ssl_object.getpeercert(binary_form=True)
    subject = (ssl_object.getpeercert() or {}).get("subject", ())
    name = ",".join(
        f"{_RDN_NAMES.get(key, key)}={value}"
        for rdn in reversed(subject)  # RFC 4514 lists the most specific RDN first
        for key, value in rdn
    )
    return {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": name or None,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(version) if version else None,
        "cipher_suite": _cipher_suite(ssl_object.context, cipher[0]) if cipher else None,
    }
