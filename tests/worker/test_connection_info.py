"""``connection_info``: the addresses of a real accepted connection, as scopes
give them, for IPv4 and IPv6 alike, and the accepted socket's own class."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from hypercorn.shared.addresses import parse_socket_addr
from hypercorn.worker.connection_info import connection_info
from hypercorn.worker.listener import _accepted_class


class NoExtraInfo:
    """A transport that is never asked: the listener gave both addresses."""

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        raise AssertionError(f"asked the transport for {name}")


@contextlib.contextmanager
def accepted(family: int, host: str) -> Iterator[tuple[socket.socket, Any]]:
    """A listener on loopback and one connection accepted the listener's way."""
    try:
        listener = socket.socket(family, socket.SOCK_STREAM)
    except OSError:
        pytest.skip(f"no {family!r} sockets here")
    with listener:
        try:
            listener.bind((host, 0))
        except OSError:
            pytest.skip(f"{host} is not configured here")
        listener.listen()
        with socket.create_connection(listener.getsockname()[:2], timeout=5) as client:
            fd, peer = listener._accept()  # type: ignore[attr-defined]  # as ``Listener``
            kind = _accepted_class(listener)
            with kind(int(listener.family), int(listener.type), listener.proto, fd) as conn:
                yield conn, peer
            assert client.fileno() >= 0


@pytest.mark.parametrize(
    ("family", "host"), [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]
)
def test_addresses_are_the_ones_parse_socket_addr_gives(family: int, host: str) -> None:
    with accepted(family, host) as (conn, peer):
        sockname = conn.getsockname()
        info = connection_info(NoExtraInfo(), False, peer, sockname)
        assert info.client == parse_socket_addr(family, peer)
        assert info.server == parse_socket_addr(family, sockname)
        assert info.client == conn.getpeername()[:2] and info.server == (host, sockname[1])


@pytest.mark.parametrize(
    ("family", "host"), [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]
)
def test_an_accepted_socket_answers_as_a_plain_one(family: int, host: str) -> None:
    """Its family and type are fixed on its class, and equal what a socket
    made from the same descriptor answers (enum members, as the loop expects)."""
    with accepted(family, host) as (conn, peer):
        assert isinstance(conn, socket.socket)
        plain = socket.socket(fileno=conn.fileno())
        try:
            assert (conn.family, conn.type) == (plain.family, plain.type)
            assert type(conn.family) is socket.AddressFamily
            assert type(conn.type) is socket.SocketKind
        finally:
            plain.detach()
        assert conn.getpeername()[:2] == peer[:2]
