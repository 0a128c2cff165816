"""Socket addresses: the ASGI form and the log form, from real sockets too."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from hypercorn.shared.addresses import parse_socket_addr, repr_socket_addr


@pytest.mark.parametrize(
    ("family", "address", "parsed", "text"),
    [
        (socket.AF_INET, ("192.168.1.100", 8000), ("192.168.1.100", 8000), "192.168.1.100:8000"),
        (socket.AF_INET6, ("::1", 8000, 0, 0), ("::1", 8000), "[::1]:8000"),
        (socket.AF_INET6, ("fe80::1%eth0", 80, 5, 2), ("fe80::1%eth0", 80), "[fe80::1%eth0]:80"),
        (socket.AF_UNIX, "/tmp/socket", "/tmp/socket", "/tmp/socket"),
        (socket.AF_UNIX, b"/tmp/socket", "/tmp/socket", "/tmp/socket"),
        (socket.AF_UNIX, b"\x00abstract", "@abstract", "@abstract"),
        (socket.AF_UNIX, "", "", ""),
    ],
)
def test_known_families(family: int, address: Any, parsed: Any, text: str) -> None:
    assert parse_socket_addr(family, address) == parsed
    assert repr_socket_addr(family, address) == text


def test_other_family_is_none_and_renders_as_str() -> None:
    assert parse_socket_addr(-1, ("x", 1)) is None
    assert repr_socket_addr(-1, ("x", 1)) == "('x', 1)"


def test_missing_address_is_none() -> None:
    assert parse_socket_addr(socket.AF_INET, None) is None


def test_ports_become_int() -> None:
    assert parse_socket_addr(socket.AF_INET, ("127.0.0.1", "80")) == ("127.0.0.1", 80)


def test_real_ipv4_socket() -> None:
    with socket.socket(socket.AF_INET) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        assert parse_socket_addr(sock.family, sock.getsockname()) == ("127.0.0.1", port)
        assert repr_socket_addr(sock.family, sock.getsockname()) == f"127.0.0.1:{port}"


def test_real_ipv6_socket() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    with socket.socket(socket.AF_INET6) as sock:
        try:
            sock.bind(("::1", 0))
        except OSError:
            pytest.skip("no IPv6 loopback")
        port = sock.getsockname()[1]
        assert len(sock.getsockname()) == 4
        assert parse_socket_addr(sock.family, sock.getsockname()) == ("::1", port)
        assert repr_socket_addr(sock.family, sock.getsockname()) == f"[::1]:{port}"


def test_real_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(path)
        assert parse_socket_addr(sock.family, sock.getsockname()) == path
        assert repr_socket_addr(sock.family, sock.getsockname()) == path
