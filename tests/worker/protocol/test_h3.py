"""The sans-IO HTTP/3 server: an aioquic client and our endpoint, datagrams
moved by hand, time an argument (no event loop, no sockets)."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
import trustme
from aioquic._buffer import Buffer
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated
from aioquic.quic.packet import QuicErrorCode, QuicProtocolVersion, pull_quic_header
from aioquic.quic.packet import QuicPacketType as PT

from hypercorn.config import Config
from hypercorn.worker.protocol.events import (
    BodyEnded,
    BodyReceived,
    RequestReceived,
    ResponseData,
    ResponseEnded,
    ResponseStarted,
)
from hypercorn.worker.protocol.h3 import H3Protocol
from hypercorn.worker.protocol.h3_endpoint import QuicEndpoint, TLSFiles, quic_configuration

CLIENT = ("127.0.0.1", 50000)
SERVER = ("127.0.0.1", 4433)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    path: Path = tmp_path_factory.mktemp("h3")
    cert.private_key_pem.write_to_path(str(path / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(path / "cert.pem"))
    return TLSFiles(str(path / "cert.pem"), str(path / "key.pem"))


def endpoint(tls: TLSFiles, **settings: Any) -> QuicEndpoint:
    config = Config.from_mapping({"keep_alive_timeout": 5, **settings})
    return QuicEndpoint(config, quic_configuration(tls))


class Client:
    """An aioquic HTTP/3 client wired to an endpoint by hand."""

    def __init__(self, server: QuicEndpoint, now: float = 0.0, address: Any = CLIENT) -> None:
        configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
        configuration.verify_mode = ssl.CERT_NONE
        self.quic = QuicConnection(configuration=configuration)
        self.quic.connect(SERVER, now)
        self.h3 = H3Connection(self.quic)
        self.server = server
        self.address = address
        self.now = now
        self.h3_events: list[H3Event] = []
        self.terminated: ConnectionTerminated | None = None
        self.protocols: list[H3Protocol] = []

    def pending(self) -> list[bytes]:
        return [data for data, _ in self.quic.datagrams_to_send(self.now)]

    def deliver(self, datagrams: list[bytes], to: QuicEndpoint | None = None) -> None:
        """Client -> server."""
        for data in datagrams:
            protocol = (to or self.server).receive_datagram(data, self.address, self.now)
            if protocol is not None and protocol not in self.protocols:
                self.protocols.append(protocol)

    def exchange(self, rounds: int = 10) -> None:
        """Move datagrams both ways until both sides are quiet."""
        for _ in range(rounds):
            self.now += 0.001  # past the client's pacing
            sent = self.pending()
            self.deliver(sent)
            back = list(self.server.replies)
            self.server.replies.clear()
            for protocol in self.protocols:
                back += protocol.datagrams_to_send(self.now)
                self.server.track(protocol)
            for data, address in back:
                assert address == self.address
                self.quic.receive_datagram(data, SERVER, self.now)
            self._client_events()
            if not sent and not back:
                return

    def _client_events(self) -> None:
        while (event := self.quic.next_event()) is not None:
            if isinstance(event, ConnectionTerminated):
                self.terminated = event
            self.h3_events += self.h3.handle_event(event)

    def run_timers(self) -> None:
        timer = self.quic.get_timer()
        if timer is not None:
            self.now = max(self.now, timer)
            self.quic.handle_timer(self.now)
            self._client_events()

    @property
    def protocol(self) -> H3Protocol:
        return self.protocols[0]

    def get(self, path: bytes = b"/", end: bool = True) -> int:
        stream_id = self.quic.get_next_available_stream_id()
        headers = [(b":method", b"GET"), (b":scheme", b"https")]
        headers += [(b":authority", b"example.com"), (b":path", path)]
        self.h3.send_headers(stream_id, headers, end_stream=end)
        return stream_id


def respond(protocol: H3Protocol, stream_id: int, body: bytes, now: float = 0.0) -> None:
    protocol.send(ResponseStarted(stream_id, 200, ((b"x-a", b"1"),)), now)
    protocol.send(ResponseData(stream_id, body), now)
    protocol.send(ResponseEnded(stream_id), now)


class TestRequests:
    """RFC 9114 section 4: requests and responses on request streams."""

    def test_get(self, tls: TLSFiles) -> None:
        client = Client(endpoint(tls))
        client.exchange()
        stream_id = client.get(b"/path?q=1")
        client.exchange()
        events = client.protocol.events_received()
        assert events == [
            RequestReceived(stream_id, "GET", b"/path?q=1", ((b"host", b"example.com"),), "3"),
            BodyEnded(stream_id),
        ]
        respond(client.protocol, stream_id, b"hello")
        client.exchange()
        heads = [e for e in client.h3_events if isinstance(e, HeadersReceived)]
        assert heads[0].headers == [(b":status", b"200"), (b"x-a", b"1")]
        data = b"".join(e.data for e in client.h3_events if isinstance(e, DataReceived))
        assert data == b"hello"

    def test_post_body(self, tls: TLSFiles) -> None:
        client = Client(endpoint(tls))
        client.exchange()
        stream_id = client.get(b"/", end=False)
        client.h3.send_data(stream_id, b"abc", end_stream=False)
        client.h3.send_data(stream_id, b"def", end_stream=True)
        client.exchange()
        events = client.protocol.events_received()
        body = b"".join(e.data for e in events if isinstance(e, BodyReceived))
        assert body == b"abcdef" and events[-1] == BodyEnded(stream_id)

    def test_response_before_body_stops_sending(self, tls: TLSFiles) -> None:
        client = Client(endpoint(tls))
        client.exchange()
        stream_id = client.get(b"/", end=False)
        client.exchange()
        respond(client.protocol, stream_id, b"early")
        client.exchange()
        data = b"".join(e.data for e in client.h3_events if isinstance(e, DataReceived))
        assert data == b"early"
        # STOP_SENDING ended the client's sending side: the stream is done both ways.
        assert stream_id not in client.quic._streams


class TestTimers:
    def test_keep_alive_closes_idle_connection(self, tls: TLSFiles) -> None:
        client = Client(endpoint(tls, keep_alive_timeout=2))
        client.exchange()
        protocol = client.protocol
        deadline = protocol.next_deadline()
        assert deadline is not None and deadline <= client.now + 2.0
        client.now = deadline
        protocol.handle_timer(client.now)
        client.exchange()
        client.run_timers()
        assert client.terminated is not None
        assert client.terminated.error_code == 0x100  # H3_NO_ERROR
        client.now += 10  # the server's closing period ends too: it is forgotten
        protocol.handle_timer(client.now)
        protocol.datagrams_to_send(client.now)
        assert protocol.closed and protocol.next_deadline() is None
        client.server.track(protocol)
        assert client.server.connections == []

    def test_open_stream_keeps_connection(self, tls: TLSFiles) -> None:
        client = Client(endpoint(tls, keep_alive_timeout=2))
        client.exchange()
        client.get()
        client.exchange()
        client.now = 3.0
        client.protocol.handle_timer(client.now)
        client.exchange()
        assert client.terminated is None


class TestEndpoint:
    """RFC 9000: what the endpoint answers before any connection exists."""

    def test_version_negotiation(self, tls: TLSFiles) -> None:
        server = endpoint(tls)
        packet = bytes([0xC0]) + (0x1A2A3A4A).to_bytes(4, "big") + b"\x08" + b"d" * 8
        packet += b"\x08" + b"s" * 8
        assert server.receive_datagram(packet + b"\0" * 1200, CLIENT, 0.0) is None
        ((reply, address),) = server.replies
        header = pull_quic_header(Buffer(data=reply), host_cid_length=8)
        assert header.packet_type == PT.VERSION_NEGOTIATION and address == CLIENT
        assert header.destination_cid == b"s" * 8
        assert QuicProtocolVersion.VERSION_1 in header.supported_versions
        server.replies.clear()
        server.receive_datagram(packet, CLIENT, 0.0)  # too small to answer
        assert server.replies == []

    @pytest.mark.parametrize(
        "datagram",
        [
            b"",
            b"\x00",
            b"\xff" * 3,
            b"\x40" + b"x" * 40,
            b"\xc0\x00\x00\x00\x01\x30",
            b"\x80" * 1300,
        ],
        ids=["empty", "one-byte", "truncated-long", "unknown-short", "bad-cid-length", "junk"],
    )
    def test_garbage_is_dropped(self, tls: TLSFiles, datagram: bytes) -> None:
        server = endpoint(tls)
        assert server.receive_datagram(datagram, CLIENT, 0.0) is None
        assert server.replies == [] and server.connections == []

    def test_undecryptable_initial_leaves_no_state(self, tls: TLSFiles) -> None:
        server = endpoint(tls)
        client = Client(server)
        (initial,) = client.pending()
        forged = initial[:100] + bytes(b ^ 0xFF for b in initial[100:140]) + initial[140:]
        assert server.receive_datagram(forged, CLIENT, 0.0) is None
        assert server.connections == [] and server.replies == []
        client.deliver([initial])
        assert len(server.connections) == 1  # the real one still gets through

    def test_small_initial_is_dropped(self, tls: TLSFiles) -> None:
        server = endpoint(tls)
        client = Client(server)
        (initial,) = client.pending()
        assert server.receive_datagram(initial[:1000], CLIENT, 0.0) is None
        assert server.connections == [] and server.replies == []
        client.deliver([initial])
        assert len(server.connections) == 1

    def test_packets_for_another_endpoint_are_dropped(self, tls: TLSFiles) -> None:
        """Another worker's connection: no answer, no state, no crash."""
        server, other = endpoint(tls), endpoint(tls)
        client = Client(server)
        client.exchange()
        client.get()
        later = client.pending()
        assert later
        client.deliver(later, to=other)
        assert other.connections == [] and other.replies == []

    def test_retry(self, tls: TLSFiles) -> None:
        server = endpoint(tls, quic_retry=True)
        client = Client(server)
        (initial,) = client.pending()
        client.deliver([initial])
        ((retry, _),) = server.replies
        assert server.connections == []
        assert pull_quic_header(Buffer(data=retry), host_cid_length=8).packet_type == PT.RETRY
        server.replies.clear()
        client.quic.receive_datagram(retry, SERVER, 0.0)
        client.exchange()
        assert client.quic._retry_source_connection_id is not None
        stream_id = client.get()
        client.exchange()
        assert client.protocol.events_received()[0].stream_id == stream_id

    def test_connection_limit_refuses(self, tls: TLSFiles) -> None:
        server = endpoint(tls, quic_max_connections=1)
        first = Client(server)
        first.exchange()
        second = Client(server, address=("127.0.0.1", 50001))
        second.exchange()
        second.run_timers()  # the client reports the close once its draining period ends
        assert second.terminated is not None
        assert second.terminated.error_code == QuicErrorCode.CONNECTION_REFUSED
        assert len(server.connections) == 1

    def test_draining_admits_no_connection(self, tls: TLSFiles) -> None:
        server = endpoint(tls)
        server.draining = True
        client = Client(server)
        client.deliver(client.pending())
        assert server.connections == [] and server.replies == []

    def test_stream_limit_advertised(self, tls: TLSFiles) -> None:
        client = Client(endpoint(tls, h2_max_concurrent_streams=7))
        client.exchange()
        assert client.quic._remote_max_streams_bidi == 7
