"""The WebSocket frame layer (RFC 6455) against a wsproto client, with no loop.

Every exchange is fed whole, byte by byte and in seeded random chunks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage
from wsproto.extensions import PerMessageDeflate

from hypercorn.config import Config
from hypercorn.worker.protocol.events import (
    InboundEvent,
    WebSocketAccept,
    WebSocketClose,
    WebSocketClosed,
    WebSocketHandshake,
    WebSocketMessage,
    WebSocketSend,
)
from hypercorn.worker.protocol.ws import CLOSE_TIMEOUT, WSConnection
from hypercorn.worker.protocol.ws_handshake import (
    HandshakeError,
    accept_extensions,
    accept_token,
    read_handshake,
)
from tests.splits import bytewise, random_chunks, whole

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
HANDSHAKE = WebSocketHandshake(KEY, (), b"")


chunks = random_chunks(7)
SPLITS = [whole, bytewise, chunks]


def make(
    handshake: WebSocketHandshake = HANDSHAKE,
    *,
    http11: bool = True,
    subprotocol: str | None = None,
    **settings: Any,
) -> WSConnection:
    config = Config.from_mapping(settings)
    accept = WebSocketAccept(1, handshake, subprotocol, ((b"x-app", b"1"),))
    return WSConnection(config, accept, 0.0, http11=http11)


def feed(
    server: WSConnection,
    data: bytes,
    split: Callable[[bytes], Iterator[bytes]] = whole,
    now: float = 0.0,
) -> list[InboundEvent]:
    events: list[InboundEvent] = []
    for piece in split(data):
        server.receive_data(piece, now)
        events += server.events_received()
    return events


def client(extensions: list[Any] | None = None) -> Connection:
    return Connection(ConnectionType.CLIENT, extensions)


def client_events(conn: Connection, data: bytes) -> list[Any]:
    conn.receive_data(data)
    return list(conn.events())


class TestHandshake:
    """RFC 6455 section 4.2: the opening request and the server's answer."""

    def test_accept_token_example(self) -> None:
        # The example of RFC 6455 section 1.3.
        assert accept_token(KEY) == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

    def test_reads_fields(self) -> None:
        headers = (
            (b"sec-websocket-key", KEY),
            (b"sec-websocket-version", b"13"),
            (b"sec-websocket-protocol", b"chat, superchat"),
            (b"sec-websocket-protocol", b"v3"),
            (b"sec-websocket-extensions", b"permessage-deflate"),
        )
        handshake = read_handshake(headers)
        assert handshake.subprotocols == ("chat", "superchat", "v3")
        assert handshake.extensions == b"permessage-deflate"

    @pytest.mark.parametrize(
        ("headers", "status"),
        [
            (((b"sec-websocket-version", b"13"),), 400),
            (((b"sec-websocket-key", b"short"), (b"sec-websocket-version", b"13")), 400),
            (((b"sec-websocket-key", b"!!!!"), (b"sec-websocket-version", b"13")), 400),
            (((b"sec-websocket-key", KEY), (b"sec-websocket-version", b"8")), 426),
            (((b"sec-websocket-key", KEY),), 426),
            (
                (
                    (b"sec-websocket-key", KEY),
                    (b"sec-websocket-key", KEY),
                    (b"sec-websocket-version", b"13"),
                ),
                400,
            ),
        ],
    )
    def test_refused(self, headers: tuple[tuple[bytes, bytes], ...], status: int) -> None:
        with pytest.raises(HandshakeError) as info:
            read_handshake(headers)
        assert info.value.status == status
        if status == 426:
            assert info.value.headers == ((b"sec-websocket-version", b"13"),)

    def test_http2_needs_no_key(self) -> None:
        handshake = read_handshake(((b"sec-websocket-version", b"13"),), http2=True)
        assert handshake.key is None

    def test_switching_protocols_head(self) -> None:
        server = make(subprotocol="chat")
        head = server.data_to_send()
        assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
        assert b"sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in head
        assert b"sec-websocket-protocol: chat\r\n" in head
        assert b"x-app: 1\r\n" in head
        assert head.endswith(b"\r\n\r\n")

    def test_http2_answer_has_no_upgrade_fields(self) -> None:
        server = make(WebSocketHandshake(None, (), b""), http11=False, subprotocol="chat")
        assert server.data_to_send() == b""
        assert dict(server.response_headers) == {
            b"sec-websocket-protocol": b"chat",
            b"x-app": b"1",
        }

    @pytest.mark.parametrize(
        ("offer", "answer"),
        [
            (b"permessage-deflate", b"permessage-deflate"),
            (
                b"permessage-deflate; client_max_window_bits",
                b"permessage-deflate; client_max_window_bits=15",
            ),
            # The first offer asks for a window wsproto cannot honour: the next one is taken.
            (
                b"permessage-deflate; server_max_window_bits=8, permessage-deflate",
                b"permessage-deflate",
            ),
            (b"x-unknown, permessage-deflate", b"permessage-deflate"),
            (b"x-unknown", None),
        ],
    )
    def test_deflate_negotiation(self, offer: bytes, answer: bytes | None) -> None:
        accepted, extensions = accept_extensions(WebSocketHandshake(KEY, (), offer))
        assert accepted == answer
        assert len(extensions) == (answer is not None)


class TestMessages:
    """RFC 6455 sections 5.4 and 5.6: data frames, fragments and messages."""

    @pytest.mark.parametrize("split", SPLITS)
    def test_text_and_binary_round_trip(self, split: Callable[[bytes], Iterator[bytes]]) -> None:
        server = make()
        server.data_to_send()
        peer = client()
        data = peer.send(TextMessage("héllo")) + peer.send(BytesMessage(b"\x00\xff"))
        events = feed(server, data, split)
        assert events == [WebSocketMessage(1, "héllo"), WebSocketMessage(1, b"\x00\xff")]
        server.send(WebSocketSend(1, "back"), 0.0)
        server.send(WebSocketSend(1, b"bin"), 0.0)
        got = client_events(peer, server.data_to_send())
        assert [(type(e), e.data) for e in got] == [(TextMessage, "back"), (BytesMessage, b"bin")]

    @pytest.mark.parametrize("split", SPLITS)
    def test_fragments_are_joined(self, split: Callable[[bytes], Iterator[bytes]]) -> None:
        server = make()
        peer = client()
        data = (
            peer.send(TextMessage("ab", message_finished=False))
            + peer.send(Ping(b"p"))  # control frames may come between fragments
            + peer.send(TextMessage("cd", message_finished=False))
            + peer.send(TextMessage("é"))
        )
        assert feed(server, data, split) == [WebSocketMessage(1, "abcdé")]

    def test_binary_fragments(self) -> None:
        server = make()
        peer = client()
        data = peer.send(BytesMessage(b"x" * 3, message_finished=False)) + peer.send(
            BytesMessage(b"y")
        )
        assert feed(server, data) == [WebSocketMessage(1, b"xxxy")]

    @pytest.mark.parametrize("split", [whole, chunks])
    def test_deflate_round_trip(self, split: Callable[[bytes], Iterator[bytes]]) -> None:
        offer = PerMessageDeflate()
        server = make(
            WebSocketHandshake(KEY, (), b"permessage-deflate; " + str(offer.offer()).encode())
        )
        head = server.data_to_send()
        value = next(
            line.split(b": ", 1)[1]
            for line in head.split(b"\r\n")
            if line.startswith(b"sec-websocket-extensions")
        )
        offer.finalize(value.decode())
        peer = client([offer])
        text = "compress me " * 200
        data = peer.send(TextMessage(text))
        assert len(data) < len(text) // 10
        assert feed(server, data, split) == [WebSocketMessage(1, text)]
        server.send(WebSocketSend(1, text), 0.0)
        out = server.data_to_send()
        assert len(out) < len(text) // 10
        assert [e.data for e in client_events(peer, out)] == [text]


class TestLimits:
    """``websocket_max_message_size``: close 1009 (RFC 6455 section 7.4.1)."""

    @pytest.mark.parametrize("fragmented", [False, True])
    def test_too_big(self, fragmented: bool) -> None:
        server = make(websocket_max_message_size=10)
        server.data_to_send()
        peer = client()
        if fragmented:
            data = peer.send(BytesMessage(b"x" * 6, message_finished=False)) + peer.send(
                BytesMessage(b"x" * 6)
            )
        else:
            data = peer.send(BytesMessage(b"x" * 11))
        assert feed(server, data) == [WebSocketClosed(1, 1009, "message too big")]
        [close] = client_events(peer, server.data_to_send())
        assert isinstance(close, CloseConnection)
        assert close.code == 1009
        assert server.should_close  # failed: the peer's close is not waited for

    def test_at_the_limit(self) -> None:
        server = make(websocket_max_message_size=10)
        assert feed(server, client().send(BytesMessage(b"x" * 10))) == [
            WebSocketMessage(1, b"x" * 10)
        ]


class TestClosing:
    """RFC 6455 section 7: closing handshakes and failures."""

    @pytest.mark.parametrize("split", SPLITS)
    def test_peer_closes(self, split: Callable[[bytes], Iterator[bytes]]) -> None:
        server = make()
        server.data_to_send()
        peer = client()
        events = feed(server, peer.send(CloseConnection(4000, "bye")), split)
        assert events == [WebSocketClosed(1, 4000, "bye")]
        assert server.should_close
        [echo] = client_events(peer, server.data_to_send())
        assert isinstance(echo, CloseConnection)
        assert echo.code == 4000
        # Nothing more is read or sent.
        server.send(WebSocketSend(1, "late"), 0.0)
        assert server.data_to_send() == b""

    def test_peer_closes_without_code(self) -> None:
        server = make()
        server.data_to_send()
        peer = client()
        empty_close = bytes([0x88, 0x80, 0, 0, 0, 0])
        assert feed(server, empty_close) == [WebSocketClosed(1, 1005, "")]
        [echo] = client_events(peer, server.data_to_send())
        assert echo.code == 1005  # echoed as an empty close frame

    def test_app_closes_and_peer_answers(self) -> None:
        server = make()
        server.data_to_send()
        peer = client()
        server.send(WebSocketClose(1, 1000, "done"), 5.0)
        [close] = client_events(peer, server.data_to_send())
        assert (close.code, close.reason) == (1000, "done")
        assert server.next_deadline() == 5.0 + CLOSE_TIMEOUT
        server.send(WebSocketSend(1, "after close"), 5.0)
        assert server.data_to_send() == b""
        # Messages still in flight from the peer are dropped.
        events = feed(server, peer.send(close.response()))
        assert events == [WebSocketClosed(1, 1000, "done")]
        assert server.should_close

    def test_unanswered_close_times_out(self) -> None:
        server = make()
        server.send(WebSocketClose(1, 1000, ""), 0.0)
        server.handle_timer(CLOSE_TIMEOUT - 0.1)
        assert not server.should_close
        server.handle_timer(CLOSE_TIMEOUT)
        assert server.should_close
        assert server.events_received() == [WebSocketClosed(1, 1006, "")]

    def test_invalid_utf8_fails_with_1007(self) -> None:
        server = make()
        server.data_to_send()
        # A masked text frame whose payload is not UTF-8 (RFC 6455 section 8.1).
        frame = bytes([0x81, 0x82, 0, 0, 0, 0, 0xC3, 0x28])
        [event] = feed(server, frame)
        assert isinstance(event, WebSocketClosed)
        assert event.code == 1007
        [close] = client_events(client(), server.data_to_send())
        assert close.code == 1007

    def test_unmasked_frame_fails_with_1002(self) -> None:
        server = make()
        [event] = feed(server, b"\x81\x02hi")
        assert isinstance(event, WebSocketClosed)
        assert event.code == 1002

    @pytest.mark.parametrize(
        ("frame", "code"),
        [
            pytest.param(b"\x81\x02hi", 1002, id="unmasked"),
            pytest.param(bytes([0x88, 0x82, 0, 0, 0, 0, 0x03, 0xEC]), 1002, id="close-1004"),
            pytest.param(bytes([0x88, 0x81, 0, 0, 0, 0, 0x03]), 1002, id="close-one-byte"),
            pytest.param(bytes([0x81, 0x82, 0, 0, 0, 0, 0xC3, 0x28]), 1007, id="utf8"),
        ],
    )
    def test_a_failure_ends_the_connection_at_once(self, frame: bytes, code: int) -> None:
        # RFC 6455 section 7.1.7: our close, then the end; the peer's answer
        # is not waited for (after bad framing it could not even be found).
        server = make()
        server.data_to_send()
        [event] = feed(server, frame)
        assert isinstance(event, WebSocketClosed)
        assert event.code == code
        [close] = client_events(client(), server.data_to_send())
        assert close.code == code
        assert server.should_close
        assert server.linger_on_close  # the peer may still be sending
        assert server.next_deadline() is None
        assert feed(server, client().send(CloseConnection(1000))) == []
        assert server.data_to_send() == b""

    def test_a_completed_handshake_does_not_linger(self) -> None:
        server = make()
        server.send(WebSocketClose(1, 1000, ""), 0.0)
        [close] = client_events(client(), server.data_to_send())
        feed(server, client().send(close.response()))
        assert server.should_close
        assert not server.linger_on_close

    @pytest.mark.parametrize("split", SPLITS)
    def test_too_big_ends_the_connection_at_once(
        self, split: Callable[[bytes], Iterator[bytes]]
    ) -> None:
        server = make(websocket_max_message_size=10)
        server.data_to_send()
        peer = client()
        data = peer.send(BytesMessage(b"x" * 5000)) + peer.send(TextMessage("late"))
        events = feed(server, data[:20], split)
        assert events == [WebSocketClosed(1, 1009, "message too big")]
        [close] = client_events(peer, server.data_to_send())
        assert close.code == 1009
        assert server.should_close
        assert feed(server, data[20:] + peer.send(close.response()), split) == []
        assert server.data_to_send() == b""

    def test_eof_and_loss_are_1006_once(self) -> None:
        server = make()
        assert feed(server, b"") == [WebSocketClosed(1, 1006, "")]
        server.connection_lost()
        assert server.events_received() == []
        assert server.should_close


class TestPing:
    """RFC 6455 section 5.5.2: pings are answered; the server pings on its own."""

    def test_ping_answered(self) -> None:
        server = make()
        server.data_to_send()
        peer = client()
        assert feed(server, peer.send(Ping(b"abc"))) == []
        [pong] = client_events(peer, server.data_to_send())
        assert isinstance(pong, Pong)
        assert pong.payload == b"abc"

    def test_ping_interval(self) -> None:
        server = make(websocket_ping_interval=2.0)
        server.data_to_send()
        assert server.next_deadline() == 2.0
        server.handle_timer(1.0)
        assert server.data_to_send() == b""
        server.handle_timer(2.0)
        [ping] = client_events(client(), server.data_to_send())
        assert isinstance(ping, Ping)
        assert server.next_deadline() == 4.0

    def test_no_ping_interval(self) -> None:
        assert make().next_deadline() is None
