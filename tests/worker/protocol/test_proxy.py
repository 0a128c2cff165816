"""PROXY protocol headers (haproxy's proxy-protocol.txt): v1 text, v2 binary, trust."""

from __future__ import annotations

import ipaddress
import random
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hypercorn.worker.protocol.proxy import (
    V2_SIGNATURE,
    ProxyHeader,
    ProxyHeaderReader,
    ProxyProtocolError,
    TrustedAddresses,
)

REQUEST = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"


def v2(
    command: int = 1,
    family: int = 0x11,
    addresses: bytes = b"",
    tlvs: bytes = b"",
    version: int = 2,
) -> bytes:
    body = addresses + tlvs
    return (
        V2_SIGNATURE + bytes([version << 4 | command, family]) + struct.pack("!H", len(body)) + body
    )


def v2_inet(
    client: str, server: str, client_port: int, server_port: int, tlvs: bytes = b""
) -> bytes:
    src, dst = ipaddress.ip_address(client), ipaddress.ip_address(server)
    family = 0x11 if src.version == 4 else 0x21
    addresses = src.packed + dst.packed + struct.pack("!HH", client_port, server_port)
    return v2(family=family, addresses=addresses, tlvs=tlvs)


def feed(data: bytes, sizes: str | int = "whole") -> ProxyHeader:
    """Feed whole, one byte at a time, or in seeded random chunks; the header at the end."""
    reader = ProxyHeaderReader()
    if sizes == "whole":
        chunks = [data]
    elif sizes == "bytes":
        chunks = [data[i : i + 1] for i in range(len(data))]
    else:
        rng = random.Random(sizes)
        chunks, rest = [], data
        while rest:
            size = rng.randint(1, 9)
            chunks.append(rest[:size])
            rest = rest[size:]
    for index, chunk in enumerate(chunks):
        header = reader.receive_data(chunk)
        if header is not None:
            # The bytes after the header: those of its last chunk, then the later chunks.
            rest = header.remaining + b"".join(chunks[index + 1 :])
            return ProxyHeader(header.version, header.client, header.server, rest)
    raise AssertionError("the header never completed")


CHUNKINGS = ["whole", "bytes", 1, 2, 3]


class TestVersion1:
    """Section 2.1: the human-readable header."""

    @pytest.mark.parametrize("sizes", CHUNKINGS)
    def test_tcp4(self, sizes: str | int) -> None:
        header = feed(b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n", sizes)
        assert (header.version, header.client, header.server) == (
            1,
            ("192.0.2.7", 56324),
            ("198.51.100.1", 443),
        )

    def test_tcp6_and_the_bytes_after_it(self) -> None:
        header = feed(b"PROXY TCP6 2001:db8::7 2001:db8::1 1 65535\r\n" + REQUEST)
        assert header.client == ("2001:db8::7", 1) and header.server == ("2001:db8::1", 65535)
        assert header.remaining == REQUEST

    def test_unknown_keeps_the_connection_addresses(self) -> None:
        header = feed(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n" + REQUEST)
        assert header.client is None and header.server is None and header.remaining == REQUEST

    @pytest.mark.parametrize(
        "line",
        [
            b"PROXY TCP4 192.0.2.7 198.51.100.1 56324\r\n",  # a field missing
            b"PROXY TCP5 192.0.2.7 198.51.100.1 1 2\r\n",
            b"PROXY TCP4 2001:db8::7 198.51.100.1 1 2\r\n",  # family mismatch
            b"PROXY TCP4 192.0.2.300 198.51.100.1 1 2\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 01 2\r\n",  # leading zero
            b"PROXY TCP4 192.0.2.7 198.51.100.1 1 65536\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 -1 2\r\n",
            b"PROXY  TCP4 192.0.2.7 198.51.100.1 1 2\r\n",
            b"PROXY TCP4 " + b"1" * 100 + b"\r\n",  # longer than 107 bytes
            REQUEST,  # no header at all
            b"proxy TCP4 192.0.2.7 198.51.100.1 1 2\r\n",
        ],
    )
    def test_malformed(self, line: bytes) -> None:
        with pytest.raises(ProxyProtocolError):
            feed(line)

    def test_no_line_end_within_107_bytes(self) -> None:
        reader = ProxyHeaderReader()
        assert reader.receive_data(b"PROXY TCP4 " + b" " * 95) is None  # 106 bytes: may end yet
        with pytest.raises(ProxyProtocolError, match="107"):
            reader.receive_data(b"x")


class TestVersion2:
    """Section 2.2: the binary header."""

    @pytest.mark.parametrize("sizes", CHUNKINGS)
    def test_tcp4_with_tlvs(self, sizes: str | int) -> None:
        tlvs = b"\x01\x00\x02h2" + b"\x04\x00\x00"  # ALPN, NOOP
        data = v2_inet("192.0.2.7", "198.51.100.1", 56324, 80, tlvs) + REQUEST
        header = feed(data, sizes)
        assert (header.version, header.client, header.server) == (
            2,
            ("192.0.2.7", 56324),
            ("198.51.100.1", 80),
        )
        assert header.remaining == REQUEST

    def test_tcp6(self) -> None:
        header = feed(v2_inet("2001:db8::7", "2001:db8::1", 1, 443) + REQUEST)
        assert header.client == ("2001:db8::7", 1) and header.server == ("2001:db8::1", 443)
        assert header.remaining == REQUEST

    @pytest.mark.parametrize(
        "data",
        [
            v2(command=0, family=0x11, addresses=bytes(12)),  # LOCAL: a health check
            v2(family=0x00),  # AF_UNSPEC
            v2(family=0x31, addresses=bytes(216)),  # AF_UNIX
        ],
        ids=["local", "unspec", "unix"],
    )
    def test_no_address_keeps_the_connection_addresses(self, data: bytes) -> None:
        header = feed(data + REQUEST)
        assert header.client is None and header.remaining == REQUEST

    @pytest.mark.parametrize(
        "data",
        [
            v2(version=1, addresses=bytes(12)),
            v2(command=2, addresses=bytes(12)),
            v2(family=0x21, addresses=bytes(12)),  # IPv6 needs 36 bytes
        ],
        ids=["version", "command", "short"],
    )
    def test_malformed(self, data: bytes) -> None:
        with pytest.raises(ProxyProtocolError):
            feed(data)

    def test_waits_for_the_whole_address_block(self) -> None:
        data = v2_inet("192.0.2.7", "198.51.100.1", 1, 2)
        reader = ProxyHeaderReader()
        assert reader.receive_data(data[:-1]) is None
        assert reader.receive_data(data[-1:]) is not None

    def test_end_of_stream_before_the_header_ends(self) -> None:
        reader = ProxyHeaderReader()
        assert reader.receive_data(V2_SIGNATURE[:5]) is None
        with pytest.raises(ProxyProtocolError, match="closed"):
            reader.receive_data(b"")


@given(
    client=st.ip_addresses(v=4) | st.ip_addresses(v=6),
    ports=st.tuples(st.integers(0, 65535), st.integers(0, 65535)),
    tail=st.binary(max_size=20),
    seed=st.integers(0, 1000),
)
def test_v2_round_trip_whatever_the_chunking(
    client: ipaddress.IPv4Address | ipaddress.IPv6Address,
    ports: tuple[int, int],
    tail: bytes,
    seed: int,
) -> None:
    server = "192.0.2.1" if client.version == 4 else "2001:db8::1"
    data = v2_inet(str(client), server, *ports)
    rng = random.Random(seed)
    cut = rng.randint(1, len(data))
    reader = ProxyHeaderReader()
    first = reader.receive_data(data[:cut])
    header = first if cut == len(data) else reader.receive_data(data[cut:] + tail)
    assert header is not None
    assert header.client == (str(client), ports[0]) and header.server == (server, ports[1])
    assert header.remaining == (b"" if cut == len(data) else tail)


class TestTrustedAddresses:
    def test_addresses_and_networks(self) -> None:
        trusted = TrustedAddresses(["127.0.0.1", "::1", "10.0.0.0/8"])
        assert "127.0.0.1" in trusted and "::1" in trusted and "10.20.30.40" in trusted
        assert "::ffff:10.0.0.1" in trusted  # an IPv4-mapped peer on a dual-stack socket
        assert "192.0.2.1" not in trusted and "not-an-ip" not in trusted
        assert None in trusted  # a unix socket peer

    def test_star_trusts_everyone(self) -> None:
        assert "192.0.2.1" in TrustedAddresses(["*"])

    def test_bad_entry(self) -> None:
        with pytest.raises(ValueError):
            TrustedAddresses(["10.0.0.0/33"])
