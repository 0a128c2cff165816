"""HTTP/1.1 protocol switches (RFC 9110 section 7.8): ``UpgradeRequested`` events."""

from __future__ import annotations

import pytest

from hypercorn.config import Config
from hypercorn.worker.protocol.events import (
    BodyEnded,
    RequestReceived,
    ResponseEnded,
    ResponseStarted,
    UpgradeRequested,
    WebSocketSend,
)
from hypercorn.worker.protocol.http11 import H11Protocol

WS_HEAD = (
    b"GET /chat HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n"
    b"Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)
H2C_HEAD = (
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
    b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
)


def make(*, tls: bool = False) -> H11Protocol:
    return H11Protocol(Config(), tls=tls, now=0.0)


class TestUpgradeEvent:
    @pytest.mark.parametrize(("head", "name"), [(WS_HEAD, b"websocket"), (H2C_HEAD, b"h2c")])
    def test_upgrade_is_one_event(self, head: bytes, name: bytes) -> None:
        protocol = make()
        protocol.receive_data(head, 0.0)
        [event] = protocol.events_received()
        assert isinstance(event, UpgradeRequested)
        assert event.protocol == name
        assert event.stream_id == event.request.stream_id == 1
        assert event.request.method == "GET"

    def test_byte_by_byte(self) -> None:
        protocol = make()
        events = []
        for index in range(len(WS_HEAD)):
            protocol.receive_data(WS_HEAD[index : index + 1], 0.0)
            events += protocol.events_received()
        assert [type(event) for event in events] == [UpgradeRequested]

    def test_switch_returns_the_bytes_after_the_head(self) -> None:
        protocol = make()
        protocol.receive_data(WS_HEAD + b"\x81", 0.0)
        protocol.receive_data(b"\x80more", 0.0)
        [event] = protocol.events_received()
        assert protocol.switch_protocol(event.stream_id) == b"\x81\x80more"
        assert protocol.should_close
        assert protocol.data_to_send() == b""

    def test_declined_upgrade_is_answered_and_the_connection_kept(self) -> None:
        protocol = make()
        protocol.receive_data(WS_HEAD + b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0.0)
        [event] = protocol.events_received()
        protocol.send(ResponseStarted(1, 403, ((b"content-length", b"0"),)), 0.0)
        protocol.send(ResponseEnded(1), 0.0)
        assert protocol.data_to_send().startswith(b"HTTP/1.1 403 ")
        assert [type(event) for event in protocol.events_received()] == [
            RequestReceived,
            BodyEnded,
        ]
        with pytest.raises(RuntimeError):
            protocol.switch_protocol(event.stream_id)

    @pytest.mark.parametrize(
        "head",
        [
            # Connection does not list upgrade: the Upgrade field is ignored.
            b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
            # WebSocket needs GET on HTTP/1.1 (RFC 6455 section 4.1).
            b"POST / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
            b"GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
            # A protocol the server does not speak.
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: foo/2\r\n\r\n",
            # A request with a body is served, not upgraded.
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: h2c\r\n"
            b"Content-Length: 1\r\n\r\nx",
        ],
    )
    def test_not_an_upgrade(self, head: bytes) -> None:
        protocol = make()
        protocol.receive_data(head, 0.0)
        events = protocol.events_received()
        assert isinstance(events[0], RequestReceived)

    def test_no_h2c_over_tls(self) -> None:
        protocol = make(tls=True)
        protocol.receive_data(H2C_HEAD, 0.0)
        assert isinstance(protocol.events_received()[0], RequestReceived)

    def test_websocket_events_need_a_switch(self) -> None:
        protocol = make()
        protocol.receive_data(WS_HEAD, 0.0)
        protocol.events_received()
        with pytest.raises(RuntimeError):
            protocol.send(WebSocketSend(1, "hi"), 0.0)
