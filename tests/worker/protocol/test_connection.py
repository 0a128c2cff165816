"""``ServerConnection``: what a connection speaks, its switches and its drain, sans I/O."""

from __future__ import annotations

from typing import Any

import h2.config
import h2.connection
import h2.events
import pytest

from hypercorn.config import Config
from hypercorn.worker.protocol.base import ServerProtocol
from hypercorn.worker.protocol.connection import PREFACE, ServerConnection
from hypercorn.worker.protocol.events import (
    BodyEnded,
    ConnectionInfo,
    RequestReceived,
    ResponseData,
    ResponseEnded,
    ResponseStarted,
    UpgradeRequested,
    WebSocketAccept,
    WebSocketHandshake,
    WebSocketMessage,
)
from hypercorn.worker.protocol.proxy import TrustedAddresses
from tests.splits import Split, bytewise, random_chunks, whole

INFO = ConnectionInfo("h11", "http", ("192.0.2.1", 40000), ("127.0.0.1", 80))
GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
GRACE = 1.0
SPLITS = [whole, bytewise, random_chunks(7)]


def make(now: float = 0.0, info: ConnectionInfo = INFO, **options: Any) -> ServerConnection:
    return ServerConnection(Config(), info, now, drain_grace=GRACE, **options)


def feed(connection: ServerConnection, data: bytes, split: Split = whole) -> list[Any]:
    events: list[Any] = []
    for piece in split(data):
        connection.receive_data(piece, 0.0)
        events += connection.events_received()
    return events


def respond(connection: ServerConnection, stream_id: int, now: float = 0.0) -> bytes:
    connection.send(ResponseStarted(stream_id, 200, ((b"content-length", b"2"),)), now)
    connection.send(ResponseData(stream_id, b"ok"), now)
    connection.send(ResponseEnded(stream_id), now)
    return connection.data_to_send()


def test_is_a_server_protocol() -> None:
    connection: ServerProtocol = make()
    assert not connection.should_close


class TestPriorKnowledge:
    @pytest.mark.parametrize("split", SPLITS)
    def test_the_preface_starts_http2_however_it_is_split(self, split: Split) -> None:
        connection = make()
        peer = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        peer.initiate_connection()
        peer.send_headers(1, [(":method", "GET"), (":path", "/"), (":scheme", "http"),
                              (":authority", "a")], end_stream=True)  # fmt: skip
        events = feed(connection, peer.data_to_send(), split)
        assert connection.multiplexed
        assert connection.info.protocol == "h2"
        assert [type(e) for e in events] == [RequestReceived, BodyEnded]
        assert events[0].http_version == "2"

    @pytest.mark.parametrize("split", SPLITS)
    def test_a_request_that_starts_like_the_preface_is_http11(self, split: Split) -> None:
        connection = make()
        events = feed(connection, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", split)
        assert not connection.multiplexed
        assert [type(e) for e in events] == [RequestReceived, BodyEnded]

    def test_tls_is_never_sniffed(self) -> None:
        connection = make(info=ConnectionInfo("h11", "https", None, None))
        connection.receive_data(PREFACE, 0.0)
        assert not connection.multiplexed
        assert connection.data_to_send().startswith(b"HTTP/1.1 505 ")

    def test_alpn_h2(self) -> None:
        connection = make(info=ConnectionInfo("h11", "https", None, None), alpn="h2")
        assert connection.multiplexed
        assert connection.info.protocol == "h2"


class TestUpgrades:
    H2C = b"GET /up HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"

    def test_h2c_becomes_stream_one(self) -> None:
        connection = make()
        events = feed(connection, self.H2C + b"HTTP2-Settings: \r\n\r\n")
        assert events == [RequestReceived(1, "GET", b"/up", events[0].headers, "2"), BodyEnded(1)]
        assert connection.multiplexed
        assert connection.data_to_send().startswith(b"HTTP/1.1 101 Switching Protocols\r\n")

    def test_h2c_after_a_pipelined_request_switches_once_that_is_answered(self) -> None:
        connection = make()
        events = feed(connection, GET + self.H2C + b"HTTP2-Settings: \r\n\r\n")
        assert [type(e) for e in events] == [RequestReceived, BodyEnded]
        answers = respond(connection, 1)
        assert answers.startswith(b"HTTP/1.1 200 OK\r\n")  # before the switch
        assert b"HTTP/1.1 101 Switching Protocols\r\n" in answers
        assert connection.multiplexed
        upgraded = connection.events_received()
        assert [type(e) for e in upgraded] == [RequestReceived, BodyEnded]
        assert (upgraded[0].stream_id, upgraded[0].target, upgraded[0].http_version) == (
            1,
            b"/up",
            "2",
        )

    def test_a_bad_h2c_upgrade_is_a_plain_request(self) -> None:
        connection = make()
        events = feed(connection, self.H2C + b"HTTP2-Settings: !!\r\n\r\n")
        assert [type(e) for e in events] == [RequestReceived, BodyEnded]
        assert events[0].http_version == "1.1"
        assert not connection.multiplexed
        assert respond(connection, 1).startswith(b"HTTP/1.1 200 ")

    def test_websocket_accept_takes_over_with_the_bytes_after_the_head(self) -> None:
        connection = make()
        frame = bytes([0x81, 0x82, 0, 0, 0, 0]) + b"hi"  # a masked text frame
        key = b"dGhlIHNhbXBsZSBub25jZQ=="
        events = feed(
            connection,
            b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n" + frame,
        )
        assert [type(e) for e in events] == [UpgradeRequested]
        connection.send(WebSocketAccept(1, WebSocketHandshake(key, (), b""), None, ()), 0.0)
        assert connection.data_to_send().startswith(b"HTTP/1.1 101 ")
        assert connection.events_received() == [WebSocketMessage(1, "hi")]
        assert not connection.reusable


class TestDrain:
    def test_idle_http11_lingers_then_closes_gently(self) -> None:
        connection = make()
        connection.receive_data(GET, 0.0)
        respond(connection, 1)
        connection.begin_drain(1.0)
        assert connection.next_deadline() == 1.0 + GRACE
        connection.handle_timer(1.0 + GRACE / 2)
        assert not connection.should_close
        connection.handle_timer(1.0 + GRACE)
        assert connection.should_close and connection.linger_on_close

    def test_input_waiting_keeps_it_lingering(self) -> None:
        connection = make()
        connection.begin_drain(1.0)
        connection.handle_timer(2.0)
        connection.input_waiting(2.0)
        assert not connection.should_close
        assert connection.next_deadline() == 2.0 + GRACE
        connection.receive_data(GET, 2.1)
        [request, _] = connection.events_received()
        assert b"connection: close\r\n" in respond(connection, request.stream_id)
        assert connection.should_close

    def test_a_request_under_way_is_answered_with_close(self) -> None:
        connection = make()
        connection.receive_data(GET, 0.0)
        connection.begin_drain(1.0)
        assert b"connection: close\r\n" in respond(connection, 1)
        assert connection.should_close and not connection.linger_on_close

    def test_a_request_sent_in_the_grace_is_served_with_close(self) -> None:
        # Whatever stopped the worker (a reload, its request limit): a client
        # that reuses its connection in the grace is answered, never refused.
        connection = make()
        connection.receive_data(GET, 0.0)
        [first, _] = connection.events_received()
        respond(connection, first.stream_id)
        connection.begin_drain(1.0)
        connection.receive_data(GET, 1.5)
        [request, _] = connection.events_received()
        assert b"connection: close\r\n" in respond(connection, request.stream_id, 1.5)
        assert connection.should_close

    def test_http2_goaway_waits_for_the_first_request(self) -> None:
        connection = make()
        peer = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        peer.initiate_connection()
        connection.receive_data(peer.data_to_send(), 0.0)
        peer.receive_data(connection.data_to_send())
        connection.begin_drain(1.0)
        assert connection.next_deadline() == 1.0 + GRACE
        assert not _goaway(peer, connection.data_to_send())
        peer.send_headers(1, [(":method", "GET"), (":path", "/"), (":scheme", "http"),
                              (":authority", "a")], end_stream=True)  # fmt: skip
        connection.receive_data(peer.data_to_send(), 1.5)
        assert _goaway(peer, connection.data_to_send()) == 1  # names the request it serves

    def test_http2_goaway_after_the_grace_without_a_request(self) -> None:
        connection = make()
        peer = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        peer.initiate_connection()
        connection.receive_data(peer.data_to_send(), 0.0)
        peer.receive_data(connection.data_to_send())
        connection.begin_drain(1.0)
        connection.handle_timer(1.0 + GRACE)
        assert _goaway(peer, connection.data_to_send()) == 0
        assert connection.should_close


class TestProxyHeader:
    TRUSTED = TrustedAddresses(["192.0.2.1"])

    @pytest.mark.parametrize("split", SPLITS)
    def test_the_header_names_the_client(self, split: Split) -> None:
        connection = make(proxy=self.TRUSTED)
        header = b"PROXY TCP4 198.51.100.7 203.0.113.9 5555 443\r\n"
        events = feed(connection, header + GET, split)
        assert [type(e) for e in events] == [RequestReceived, BodyEnded]
        assert connection.info.client == ("198.51.100.7", 5555)

    def test_an_untrusted_peer_is_refused(self) -> None:
        connection = make(proxy=TrustedAddresses(["10.0.0.1"]))
        assert connection.should_close
        assert connection.close_reason == "PROXY protocol: peer not in forwarded_allow_ips"

    def test_eof_before_the_header_ends(self) -> None:
        connection = make(proxy=self.TRUSTED)
        connection.receive_data(b"PROXY TCP4", 0.0)
        connection.receive_data(b"", 0.0)
        assert connection.should_close
        assert connection.close_reason is not None


class TestPausing:
    def test_a_stream_pauses_http11_reading(self) -> None:
        connection = make()
        connection.set_receive_paused(1, True)
        assert connection.reading_paused
        connection.set_receive_paused(1, False)
        assert not connection.reading_paused

    def test_http2_pauses_on_write_pressure_not_on_streams(self) -> None:
        connection = make(info=ConnectionInfo("h11", "https", None, None), alpn="h2")
        connection.set_receive_paused(1, True)
        assert not connection.reading_paused
        connection.set_write_paused(True)
        assert connection.reading_paused


def _goaway(peer: h2.connection.H2Connection, data: bytes) -> int | None:
    """The last stream id of a GOAWAY in ``data``, if there is one."""
    for event in peer.receive_data(data):
        if isinstance(event, h2.events.ConnectionTerminated):
            return event.last_stream_id
    return None
