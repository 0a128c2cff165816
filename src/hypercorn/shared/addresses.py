"""Socket addresses in the ASGI ``client``/``server`` form and as log text."""

from __future__ import annotations

import os
import socket
from typing import Any

__all__ = ["parse_socket_addr", "repr_socket_addr"]


def _unix_path(address: Any) -> str:
    if isinstance(address, bytes):
        if address.startswith(b"\x00"):
            # Linux abstract namespace: shown with the conventional "@".
            return "@" + address[1:].decode("utf-8", "backslashreplace")
        return os.fsdecode(address)
    return str(address)


def parse_socket_addr(family: int, address: Any) -> tuple[str, int] | str | None:
    """Turn a socket address into the form ASGI scopes use.

    Args:
        family: the socket's family (``socket.AF_INET``, ``AF_INET6``, ``AF_UNIX``).
        address: the address as ``getsockname``/``getpeername`` return it.

    Returns:
        ``(host, port)`` for IPv4 and IPv6 (the flow info and scope id are
        dropped); the path string for a unix socket; None for other families
        or an address that is missing.
    """
    if address is None:
        return None
    if family in (socket.AF_INET, socket.AF_INET6):
        return (str(address[0]), int(address[1]))
    if family == socket.AF_UNIX:
        return _unix_path(address)
    return None


def repr_socket_addr(family: int, address: Any) -> str:
    """Render a socket address for logs and messages.

    Args:
        family: the socket's family.
        address: the address as ``getsockname``/``getpeername`` return it.

    Returns:
        ``"192.168.1.100:8000"`` for IPv4, ``"[::1]:8000"`` for IPv6, the path
        for a unix socket (``"/tmp/socket"``), and ``str(address)`` otherwise.
    """
    if family == socket.AF_INET:
        return f"{address[0]}:{address[1]}"
    if family == socket.AF_INET6:
        return f"[{address[0]}]:{address[1]}"
    if family == socket.AF_UNIX:
        return _unix_path(address)
    return str(address)
