"""The HTTP/2 protocol without I/O: an h2 client connection against ``H2Protocol``.

Client bytes are fed whole, byte by byte, and in seeded random chunks; time
is an argument, so timers are tested without sleeping.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest

from hypercorn.config import Config
from hypercorn.worker.protocol.events import (
    BodyEnded,
    BodyReceived,
    InboundEvent,
    RequestReceived,
    ResponseData,
    ResponseEnded,
    ResponseStarted,
    StreamAborted,
    StreamClosed,
)
from hypercorn.worker.protocol.h2 import SWITCHING_PROTOCOLS, H2Protocol
from tests.splits import bytewise, random_chunks, whole

REQUEST = [
    (b":method", b"GET"),
    (b":scheme", b"http"),
    (b":authority", b"a.test"),
    (b":path", b"/p?q=1"),
]


chunks = random_chunks(40)
SPLITS = [whole, bytewise, chunks]


class Pair:
    def __init__(self, split: Callable[[bytes], Iterator[bytes]] = whole, **settings: object):
        self.split = split
        self.server = H2Protocol(Config.from_mapping(settings), tls=False, now=0.0)
        self.client = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self.client.initiate_connection()
        self.to_server()
        self.to_client()

    def to_server(self, now: float = 0.0) -> list[InboundEvent]:
        for piece in self.split(self.client.data_to_send()):
            self.server.receive_data(piece, now)
        return self.server.events_received()

    def to_client(self) -> list[h2.events.Event]:
        events = self.client.receive_data(self.server.data_to_send())
        return events


@pytest.mark.parametrize("split", SPLITS, ids=lambda split: split.__name__)
def test_request_and_response(split: Callable[[bytes], Iterator[bytes]]) -> None:
    pair = Pair(split)
    pair.client.send_headers(1, [*REQUEST, (b"x-a", b"b")], end_stream=True)
    events = pair.to_server()
    assert events == [
        RequestReceived(1, "GET", b"/p?q=1", ((b"host", b"a.test"), (b"x-a", b"b")), "2"),
        BodyEnded(1),
    ]
    for event in (
        ResponseStarted(1, 200, ((b"connection", b"close"), (b"x-r", b"1"))),
        ResponseData(1, b"hello"),
        ResponseEnded(1),
    ):
        pair.server.send(event, 0.0)
    received = pair.to_client()
    response = next(e for e in received if isinstance(e, h2.events.ResponseReceived))
    assert response.headers == [(b":status", b"200"), (b"x-r", b"1")]
    data = [e for e in received if isinstance(e, h2.events.DataReceived)]
    assert [e.data for e in data] == [b"hello"] and data[0].stream_ended is not None
    assert pair.server.next_deadline() == Config().keep_alive_timeout


def test_request_body_window_given_back_only_when_consumed() -> None:
    pair = Pair()
    pair.client.send_headers(1, REQUEST)
    pair.client.send_data(1, b"z" * 16000)
    events = pair.to_server()
    assert BodyReceived(1, b"z" * 16000) in events
    pair.to_client()
    assert pair.client.local_flow_control_window(1) == 65535 - 16000
    pair.server.acknowledge(1, 16000)
    pair.to_client()
    assert pair.client.local_flow_control_window(1) == 65535 - 16000  # below h2's threshold
    pair.client.send_data(1, b"z" * 16000)
    pair.client.send_data(1, b"z" * 8000)
    pair.to_server()
    pair.to_client()
    assert pair.client.local_flow_control_window(1) == 65535 - 40000
    pair.server.acknowledge(1, 24000)
    pair.to_client()
    assert pair.client.local_flow_control_window(1) > 65535 - 40000  # a WINDOW_UPDATE came


def test_response_waits_for_the_peer_window() -> None:
    pair = Pair()
    pair.client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 10})
    pair.client.send_headers(1, REQUEST, end_stream=True)
    pair.to_server()
    pair.to_client()
    pair.server.send(ResponseStarted(1, 200, ()), 0.0)
    pair.server.send(ResponseData(1, b"0123456789abcdef"), 0.0)
    pair.server.send(ResponseEnded(1), 0.0)
    received = pair.to_client()
    assert b"".join(e.data for e in received if isinstance(e, h2.events.DataReceived)) == (
        b"0123456789"
    )
    assert pair.server.stream_blocked(1)
    pair.client.increment_flow_control_window(6, stream_id=1)
    pair.to_server()
    received = pair.to_client()
    data = [e for e in received if isinstance(e, h2.events.DataReceived)]
    assert data[0].data == b"abcdef" and data[0].stream_ended is not None
    assert not pair.server.stream_blocked(1)


def test_remote_reset_and_abort() -> None:
    pair = Pair()
    pair.client.send_headers(1, REQUEST)
    pair.client.send_headers(3, REQUEST)
    pair.to_server()
    pair.client.reset_stream(1)
    assert pair.to_server() == [StreamClosed(1)]
    pair.server.send(StreamAborted(3), 0.0)
    reset = [e for e in pair.to_client() if isinstance(e, h2.events.StreamReset)]
    assert reset[0].stream_id == 3 and reset[0].error_code == h2.errors.ErrorCodes.INTERNAL_ERROR


def test_max_requests_goaway_then_close() -> None:
    pair = Pair(keep_alive_max_requests=1)
    pair.client.send_headers(1, REQUEST, end_stream=True)
    pair.to_server()
    assert not pair.server.should_close
    pair.server.send(ResponseStarted(1, 204, ()), 0.0)
    pair.server.send(ResponseEnded(1), 0.0)
    data = pair.server.data_to_send()
    assert b"\x00\x00\x08\x07\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00" in data
    assert pair.server.should_close
    # The client's WINDOW_UPDATE or SETTINGS ack may cross the GOAWAY: FIN first.
    assert pair.server.linger_on_close


def test_idle_timeout_and_drain() -> None:
    pair = Pair(keep_alive_timeout=5.0)
    assert pair.server.next_deadline() == 5.0
    pair.server.handle_timer(4.9)
    assert not pair.server.should_close
    pair.server.handle_timer(5.0)
    assert pair.server.should_close

    pair = Pair()
    pair.client.send_headers(1, REQUEST, end_stream=True)
    pair.to_server()
    pair.server.begin_drain()
    assert not pair.server.should_close and pair.server.next_deadline() is None
    pair.client.send_headers(3, REQUEST, end_stream=True)
    assert pair.to_server() == []  # refused: after the GOAWAY's last stream
    pair.server.send(ResponseStarted(1, 200, ()), 0.0)
    pair.server.send(ResponseEnded(1), 0.0)
    pair.server.data_to_send()
    assert pair.server.should_close


def test_goaway_follows_what_was_queued_before_it() -> None:
    """A response queued when the drain starts leaves before the GOAWAY: h2
    clients, among others, drop a stream's frames once they have seen GOAWAY."""
    pair = Pair()
    pair.client.send_headers(1, REQUEST, end_stream=True)
    pair.to_server()
    pair.server.send(ResponseStarted(1, 200, ()), 0.0)
    pair.server.send(ResponseData(1, b"bye"), 0.0)
    pair.server.send(ResponseEnded(1), 0.0)
    pair.server.begin_drain()
    events = pair.to_client()
    kinds = [type(event) for event in events]
    assert kinds[-1] is h2.events.ConnectionTerminated
    assert h2.events.StreamEnded in kinds and pair.server.should_close


def test_upgrade_makes_the_request_stream_one() -> None:
    client = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding=None)
    )
    settings = client.initiate_upgrade_connection()
    request = RequestReceived(1, "GET", b"/", ((b"host", b"h"),), "2")
    server = H2Protocol(Config(), tls=False, now=0.0, upgrade=(settings, request))
    assert server.events_received() == [request, BodyEnded(1)]
    server.send(ResponseStarted(1, 200, ()), 0.0)
    server.send(ResponseData(1, b"up"), 0.0)
    server.send(ResponseEnded(1), 0.0)
    data = server.data_to_send()
    assert data.startswith(SWITCHING_PROTOCOLS)
    server.receive_data(client.data_to_send(), 0.0)
    received = client.receive_data(data[len(SWITCHING_PROTOCOLS) :])
    assert any(isinstance(e, h2.events.DataReceived) and e.data == b"up" for e in received)


def test_eof_closes_open_streams() -> None:
    pair = Pair()
    pair.client.send_headers(1, REQUEST)
    pair.to_server()
    pair.server.receive_data(b"", 0.0)
    assert pair.server.events_received() == [StreamClosed(1)]
    assert pair.server.should_close
