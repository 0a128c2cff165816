"""Which listeners expect a PROXY protocol header, and from whom.

``proxy_protocol`` names binds the way ``bind`` does; a listening socket is
chosen when its bound address is the one an entry names (a host name is
resolved, once, at startup), or by ``*``. A bind on port 0 gets its port from
the system, so only ``*`` can choose it. The header precedes any TLS
handshake and asyncio's TLS servers read the handshake first, so only
plain-text listeners can take it: naming a TLS bind is a configuration error.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING

from hypercorn.shared.sockets import BindSpec, parse_bind
from hypercorn.shared.validators import ConfigError
from hypercorn.worker.protocol.proxy import TrustedAddresses

if TYPE_CHECKING:
    from hypercorn.config import Config

__all__ = ["ProxyBinds"]


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return None


def _addresses(spec: BindSpec) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    address = _ip(spec.host)
    if address is not None:
        return {address}
    try:
        infos = socket.getaddrinfo(spec.host, spec.port, type=socket.SOCK_STREAM)
    except OSError:
        return set()
    return {ip for *_, sockaddr in infos if (ip := _ip(str(sockaddr[0]))) is not None}


def _matches(spec: BindSpec, sock: socket.socket) -> bool:
    if spec.kind == "fd":
        return sock.fileno() == spec.fd
    name = sock.getsockname()
    if spec.kind == "unix":
        return sock.family == socket.AF_UNIX and name == spec.path
    if sock.family not in {socket.AF_INET, socket.AF_INET6} or name[1] != spec.port:
        return False
    return _ip(name[0]) in _addresses(spec)


class ProxyBinds:
    """The PROXY protocol settings, compiled once per worker.

    Args:
        config: supplies ``proxy_protocol`` and ``forwarded_allow_ips``.

    Raises:
        ConfigError: an entry is not a valid bind, or it names a TLS listener
            (call ``check`` with the listeners).
    """

    def __init__(self, config: Config) -> None:
        self._all = "*" in config.proxy_protocol
        self._specs = [parse_bind(entry) for entry in config.proxy_protocol if entry != "*"]
        self.trusted = TrustedAddresses(config.forwarded_allow_ips)

    def choose(self, listeners: Iterable[tuple[socket.socket, bool]]) -> list[bool]:
        """For each ``(socket, secure)`` listener, whether it expects the header.

        Raises:
            ConfigError: an entry names a TLS listener.
        """
        chosen: list[bool] = []
        for sock, secure in listeners:
            named = [spec for spec in self._specs if _matches(spec, sock)]
            if secure and named:
                raise ConfigError(
                    f"proxy_protocol {named[0].text!r} names a TLS bind; the PROXY header "
                    "is read on plain-text binds only"
                )
            chosen.append(not secure and (self._all or bool(named)))
        return chosen
