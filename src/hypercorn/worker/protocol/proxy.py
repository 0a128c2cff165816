"""The PROXY protocol header (versions 1 and 2), parsed sans-IO.

Theory of operation
-------------------
A proxy that speaks the PROXY protocol (haproxy's specification,
``proxy-protocol.txt``) opens every connection to the server with one header
that names the real client's and the proxy's addresses, before any byte of
the client's own. ``ProxyHeaderReader`` is fed the first bytes of a
connection until it can say one of three things: not enough yet
(``receive_data`` returns None), the header (a ``ProxyHeader``, whose
``remaining`` bytes are the start of the client's stream, to be handed to
the HTTP protocol), or a ``ProxyProtocolError``, after which the connection
must be closed. The version is told by the first bytes: ``PROXY `` for the
text version 1 (section 2.1, at most 107 bytes with its CRLF), the 12-byte
signature for the binary version 2 (section 2.2).

A header that says ``UNKNOWN`` (v1), ``LOCAL`` or an unspecified or unix
family (v2) carries no client address: the proxy itself is talking (a health
check) or the client is not on TCP; the connection's own addresses are then
kept, and ``ProxyHeader.client`` is None. Version 2 TLVs are skipped.

``TrustedAddresses`` decides whose headers are believed: only a peer in the
configured addresses or networks may send one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "V2_SIGNATURE",
    "ProxyHeader",
    "ProxyHeaderReader",
    "ProxyProtocolError",
    "TrustedAddresses",
]

V1_PREFIX = b"PROXY "
V1_MAX_LENGTH = 107
"""The longest version 1 header, CRLF included (section 2.1)."""
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_HEADER_LENGTH = 16
_V2_ADDRESS_LENGTHS = {0x1: 12, 0x2: 36}  # AF_INET, AF_INET6: two addresses, two ports


class ProxyProtocolError(ValueError):
    """The connection does not start with a valid PROXY protocol header."""


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """What a PROXY header says.

    Attributes:
        version: 1 or 2.
        client: the real client's ``(host, port)``; None when the header
            carries no address (v1 ``UNKNOWN``, v2 ``LOCAL`` or an unspecified family).
        server: the address the client connected to, likewise.
        remaining: the bytes that followed the header (the client's stream).
    """

    version: int
    client: tuple[str, int] | None
    server: tuple[str, int] | None
    remaining: bytes


class ProxyHeaderReader:
    """Collects a connection's first bytes until its PROXY header is complete."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def receive_data(self, data: bytes) -> ProxyHeader | None:
        """Take more bytes; the header once complete, else None.

        Args:
            data: bytes received; ``b""`` for the end of the stream.

        Returns:
            The header, with the bytes after it, once it is complete.

        Raises:
            ProxyProtocolError: the bytes cannot start a valid header, or the
                stream ended before the header did.
        """
        if not data:
            raise ProxyProtocolError("connection closed before the PROXY header ended")
        self._buffer += data
        buffer = self._buffer
        if len(buffer) < len(V2_SIGNATURE) and V2_SIGNATURE.startswith(buffer):
            return None
        if buffer.startswith(V2_SIGNATURE):
            return _parse_v2(buffer)
        if V1_PREFIX.startswith(buffer[:6]):
            return _parse_v1(buffer) if len(buffer) >= 6 else None
        raise ProxyProtocolError("no PROXY protocol header")


def _parse_v1(buffer: bytes) -> ProxyHeader | None:
    end = buffer.find(b"\r\n", 0, V1_MAX_LENGTH)
    if end < 0:
        if len(buffer) >= V1_MAX_LENGTH:
            raise ProxyProtocolError("PROXY v1 header longer than 107 bytes")
        return None
    fields = buffer[:end].split(b" ")
    remaining = buffer[end + 2 :]
    if len(fields) >= 2 and fields[1] == b"UNKNOWN":
        return ProxyHeader(1, None, None, remaining)  # the rest of the line is ignored
    if len(fields) != 6 or fields[1] not in {b"TCP4", b"TCP6"}:
        raise ProxyProtocolError("malformed PROXY v1 header")
    version = 4 if fields[1] == b"TCP4" else 6
    client_host = _v1_address(fields[2], version)
    server_host = _v1_address(fields[3], version)
    client_port = _v1_port(fields[4])
    server_port = _v1_port(fields[5])
    return ProxyHeader(1, (client_host, client_port), (server_host, server_port), remaining)


def _v1_address(text: bytes, version: int) -> str:
    try:
        address = ipaddress.ip_address(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise ProxyProtocolError(f"bad address in PROXY v1 header: {text!r}") from None
    if address.version != version:
        raise ProxyProtocolError(f"address {text!r} does not match the PROXY v1 family")
    return str(address)


def _v1_port(text: bytes) -> int:
    # Section 2.1: ports are decimal, 0..65535, without leading zeros.
    if not text.isdigit() or (len(text) > 1 and text.startswith(b"0")) or int(text) > 65535:
        raise ProxyProtocolError(f"bad port in PROXY v1 header: {text!r}")
    return int(text)


def _parse_v2(buffer: bytes) -> ProxyHeader | None:
    if len(buffer) < V2_HEADER_LENGTH:
        return None
    version_command, family_transport = buffer[12], buffer[13]
    length = int.from_bytes(buffer[14:16], "big")
    if version_command >> 4 != 2:
        raise ProxyProtocolError(f"unsupported PROXY version {version_command >> 4}")
    command = version_command & 0x0F
    if command > 1:
        raise ProxyProtocolError(f"unknown PROXY v2 command {command}")
    if len(buffer) < V2_HEADER_LENGTH + length:
        return None
    body = buffer[V2_HEADER_LENGTH : V2_HEADER_LENGTH + length]
    remaining = buffer[V2_HEADER_LENGTH + length :]
    family = family_transport >> 4
    if command == 0 or family not in _V2_ADDRESS_LENGTHS:
        return ProxyHeader(2, None, None, remaining)  # LOCAL, AF_UNSPEC or AF_UNIX
    needed = _V2_ADDRESS_LENGTHS[family]
    if length < needed:
        raise ProxyProtocolError("PROXY v2 address block too short")
    half = (needed - 4) // 2
    client_host = str(ipaddress.ip_address(body[:half]))
    server_host = str(ipaddress.ip_address(body[half : 2 * half]))
    client_port = int.from_bytes(body[2 * half : 2 * half + 2], "big")
    server_port = int.from_bytes(body[2 * half + 2 : 2 * half + 4], "big")
    return ProxyHeader(2, (client_host, client_port), (server_host, server_port), remaining)


class TrustedAddresses:
    """The peers allowed to send a PROXY header: addresses, networks, or ``*``.

    Args:
        entries: ``"*"`` for any peer, or IP addresses and networks
            (``"10.0.0.0/8"``, ``"::1"``).

    Raises:
        ValueError: an entry is neither ``*`` nor an address or network.
    """

    __slots__ = ("_any", "_networks")

    def __init__(self, entries: Iterable[str]) -> None:
        networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self._any = False
        for entry in entries:
            if entry.strip() == "*":
                self._any = True
            else:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        self._networks = tuple(networks)

    def __contains__(self, host: object) -> bool:
        """True if ``host`` (an address string; None for a unix socket peer) is trusted.

        A unix socket's peer is on this machine and always trusted.
        """
        if self._any or host is None:
            return True
        if not isinstance(host, str):
            return False
        try:
            address = ipaddress.ip_address(host.partition("%")[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._networks)
