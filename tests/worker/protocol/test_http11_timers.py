"""The HTTP/1.1 protocol's deadlines, EOF, lost connections and drained bodies.

Time is an argument: every test drives the clock through ``now``.
"""

from __future__ import annotations

from typing import Any

import pytest

from hypercorn.config import Config
from hypercorn.worker.protocol.events import (
    BodyEnded,
    BodyReceived,
    InformationalResponse,
    RequestReceived,
    RequestRejected,
    ResponseData,
    ResponseEnded,
    ResponseStarted,
    StreamClosed,
)
from hypercorn.worker.protocol.http11 import DRAIN_LIMIT, H11Protocol

GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
POST = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n"
CHUNKED = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
CL2 = ((b"content-length", b"2"),)


def make(now: float = 0.0, **settings: Any) -> H11Protocol:
    config = Config()
    for name, value in settings.items():
        setattr(config, name, value)
    return H11Protocol(config, tls=False, now=now)


def open_(protocol: H11Protocol) -> bool:
    """Whether the connection stays open (a call, so type checkers do not narrow it)."""
    return not protocol.should_close


def respond(protocol: H11Protocol, stream_id: int, now: float = 0.0) -> bytes:
    protocol.send(ResponseStarted(stream_id, 200, CL2), now)
    protocol.send(ResponseData(stream_id, b"ok"), now)
    protocol.send(ResponseEnded(stream_id), now)
    return protocol.data_to_send()


class TestKeepAliveTimeout:
    def test_idle_connection_closes_quietly(self) -> None:
        protocol = make(now=100.0)
        assert protocol.next_deadline() == 105.0
        protocol.handle_timer(104.9)
        assert open_(protocol)
        protocol.handle_timer(105.0)
        assert protocol.should_close
        assert protocol.data_to_send() == b""
        assert protocol.events_received() == []
        assert protocol.next_deadline() is None

    def test_deadline_restarts_when_the_response_ends(self) -> None:
        protocol = make()
        protocol.receive_data(GET, 1.0)
        assert protocol.next_deadline() is None  # the app is working
        respond(protocol, 1, now=7.0)
        assert protocol.next_deadline() == 12.0

    def test_slow_head_is_answered_408(self) -> None:
        protocol = make()
        protocol.receive_data(b"GET / HTTP/1.1\r\n", 4.0)
        assert protocol.next_deadline() == 5.0
        protocol.handle_timer(5.0)
        assert protocol.events_received() == [
            RequestRejected(1, 408, "request head not received in time")
        ]
        assert protocol.data_to_send().startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert protocol.should_close

    def test_leading_empty_lines_leave_the_connection_idle(self) -> None:
        protocol = make(read_timeout=1.0)
        protocol.receive_data(b"\r\n", 3.0)
        assert protocol.next_deadline() == 5.0


class TestReadTimeout:
    def test_partial_head(self) -> None:
        protocol = make(read_timeout=1.0)
        protocol.receive_data(b"GET / HTTP/1.1\r\n", 2.0)
        assert protocol.next_deadline() == 3.0
        protocol.receive_data(b"Host: a\r\n", 2.5)
        assert protocol.next_deadline() == 3.5
        protocol.handle_timer(3.5)
        assert protocol.events_received() == [
            RequestRejected(1, 408, "request head not received in time")
        ]
        assert protocol.should_close

    def test_partial_body_is_answered_408(self) -> None:
        protocol = make(read_timeout=2.0)
        protocol.receive_data(POST + b"abc", 1.0)
        protocol.events_received()
        assert protocol.next_deadline() == 3.0
        protocol.receive_data(b"d", 2.0)
        protocol.handle_timer(3.0)
        assert open_(protocol)
        protocol.handle_timer(4.0)
        assert protocol.events_received() == [
            BodyReceived(1, b"d"),
            StreamClosed(1),
            RequestRejected(1, 408, "request body not received in time"),
        ]
        assert protocol.should_close
        assert protocol.data_to_send().startswith(b"HTTP/1.1 408 Request Timeout\r\n")

    def test_partial_body_after_the_response_started_just_closes(self) -> None:
        protocol = make(read_timeout=2.0)
        protocol.receive_data(POST + b"abc", 1.0)
        protocol.events_received()
        protocol.send(ResponseStarted(1, 200, CL2), 1.5)
        protocol.data_to_send()
        protocol.handle_timer(3.0)
        assert protocol.events_received() == [StreamClosed(1)]
        assert protocol.should_close
        assert protocol.data_to_send() == b""


class TestBodyTimeout:
    """``body_timeout`` (nginx's ``client_body_timeout``): on by default."""

    def test_on_by_default(self) -> None:
        assert Config().body_timeout == 60.0
        protocol = make()
        protocol.receive_data(POST, 1.0)
        assert protocol.next_deadline() == 61.0

    def test_a_trickle_keeps_it_alive_and_a_gap_ends_it(self) -> None:
        protocol = make(body_timeout=2.0)
        protocol.receive_data(POST, 0.0)
        for second in range(1, 10):  # a byte a second: never a 2-second gap
            protocol.handle_timer(float(second))
            protocol.receive_data(b"x", float(second))
        assert open_(protocol)
        assert protocol.next_deadline() == 11.0
        protocol.handle_timer(11.0)
        assert protocol.events_received()[-2:] == [
            StreamClosed(1),
            RequestRejected(1, 408, "request body not received in time"),
        ]
        assert protocol.data_to_send().startswith(b"HTTP/1.1 408 ")
        assert protocol.should_close

    def test_the_shorter_of_read_and_body_timeouts(self) -> None:
        assert make(read_timeout=5.0, body_timeout=3.0).next_deadline() == 5.0  # idle: keep-alive
        protocol = make(read_timeout=5.0, body_timeout=3.0)
        protocol.receive_data(POST, 1.0)
        assert protocol.next_deadline() == 4.0
        protocol = make(read_timeout=2.0, body_timeout=3.0)
        protocol.receive_data(POST, 1.0)
        assert protocol.next_deadline() == 3.0

    def test_none_disables_it(self) -> None:
        protocol = make(body_timeout=None)
        protocol.receive_data(POST, 1.0)
        assert protocol.next_deadline() is None

    def test_chunked_body(self) -> None:
        protocol = make(body_timeout=2.0)
        protocol.receive_data(CHUNKED + b"3\r\nabc\r\n", 1.0)
        assert protocol.next_deadline() == 3.0
        protocol.handle_timer(3.0)
        assert protocol.events_received()[-1] == RequestRejected(
            1, 408, "request body not received in time"
        )

    def test_no_deadline_while_the_client_waits_for_continue(self) -> None:
        protocol = make(read_timeout=2.0, body_timeout=None)
        protocol.receive_data(POST[:-2] + b"Expect: 100-continue\r\n\r\n", 1.0)
        assert protocol.next_deadline() is None
        protocol.send(InformationalResponse(1, 100), 10.0)
        assert protocol.next_deadline() == 12.0

    def test_pipelined_head_gets_a_fresh_read_timeout(self) -> None:
        protocol = make(read_timeout=2.0)
        protocol.receive_data(GET + b"GET /2 HTTP/1.1\r\n", 1.0)
        respond(protocol, 1, now=10.0)
        assert protocol.next_deadline() == 12.0


class TestEndOfInput:
    """The peer's EOF and a lost transport."""

    def test_eof_while_idle(self) -> None:
        protocol = make()
        protocol.receive_data(b"", 0.0)
        assert protocol.should_close
        assert protocol.events_received() == []
        protocol.receive_data(GET, 0.0)
        protocol.receive_data(b"", 0.0)
        assert protocol.events_received() == []

    def test_eof_mid_head(self) -> None:
        protocol = make()
        protocol.receive_data(b"GET / HT", 0.0)
        protocol.receive_data(b"", 0.0)
        assert protocol.should_close
        assert protocol.events_received() == []
        assert protocol.data_to_send() == b""

    def test_eof_mid_body(self) -> None:
        protocol = make()
        protocol.receive_data(POST + b"abc", 0.0)
        protocol.receive_data(b"", 0.0)
        assert protocol.events_received()[1:] == [BodyReceived(1, b"abc"), StreamClosed(1)]
        assert protocol.should_close

    def test_eof_while_the_app_works(self) -> None:
        protocol = make()
        protocol.receive_data(GET, 0.0)
        protocol.receive_data(b"", 0.0)
        assert protocol.events_received()[-1] == StreamClosed(1)
        assert respond(protocol, 1) == b""

    def test_connection_lost_mid_request(self) -> None:
        protocol = make()
        protocol.receive_data(GET, 0.0)
        protocol.events_received()
        protocol.connection_lost()
        protocol.connection_lost()
        assert protocol.events_received() == [StreamClosed(1)]
        assert protocol.should_close

    def test_connection_lost_while_idle(self) -> None:
        protocol = make()
        protocol.receive_data(GET, 0.0)
        protocol.events_received()
        respond(protocol, 1)
        protocol.connection_lost()
        assert protocol.events_received() == []


class TestEarlyResponse:
    """RFC 9112 section 9.3: a response sent before the request body is read."""

    def test_rest_of_the_body_is_drained_then_the_next_request_served(self) -> None:
        protocol = make()
        protocol.receive_data(POST + b"abc", 0.0)
        protocol.events_received()
        respond(protocol, 1, now=1.0)
        assert not protocol.should_close
        assert protocol.next_deadline() == 6.0
        protocol.receive_data(b"defghij" + GET, 2.0)
        assert protocol.events_received() == [
            RequestReceived(3, "GET", b"/", ((b"host", b"a"),), "1.1", False),
            BodyEnded(3),
        ]

    def test_chunked_body_is_drained(self) -> None:
        protocol = make()
        protocol.receive_data(CHUNKED + b"3\r\nabc\r\n", 0.0)
        protocol.events_received()
        respond(protocol, 1)
        protocol.receive_data(b"1\r\nd\r\n0\r\n\r\n" + GET, 0.0)
        assert protocol.events_received()[0].stream_id == 3

    def test_drain_times_out(self) -> None:
        protocol = make()
        protocol.receive_data(POST, 0.0)
        respond(protocol, 1, now=1.0)
        protocol.handle_timer(6.0)
        assert protocol.should_close
        assert [type(e) for e in protocol.events_received()] == [RequestReceived]

    def test_long_body_closes_instead(self) -> None:
        protocol = make()
        big = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % (DRAIN_LIMIT + 1)
        protocol.receive_data(big, 0.0)
        respond(protocol, 1)
        assert protocol.should_close

    def test_long_chunked_body_closes_once_over_the_limit(self) -> None:
        protocol = make()
        protocol.receive_data(CHUNKED, 0.0)
        respond(protocol, 1)
        chunk = b"%x\r\n%s\r\n" % (DRAIN_LIMIT // 2, b"x" * (DRAIN_LIMIT // 2))
        protocol.receive_data(chunk * 2, 0.0)
        assert not protocol.should_close
        protocol.receive_data(b"1\r\nx\r\n", 0.0)
        assert protocol.should_close

    def test_malformed_drained_body_closes_quietly(self) -> None:
        protocol = make()
        protocol.receive_data(CHUNKED, 0.0)
        protocol.events_received()
        respond(protocol, 1)
        protocol.receive_data(b"zz\r\n", 0.0)
        assert protocol.should_close
        assert protocol.events_received() == []
        assert protocol.data_to_send() == b""


class TestMalformedBody:
    def test_before_the_response_is_answered_400(self) -> None:
        protocol = make()
        protocol.receive_data(CHUNKED + b"2\r\nab\r\nzz\r\n", 0.0)
        assert protocol.events_received()[1:] == [
            BodyReceived(1, b"ab"),
            StreamClosed(1),
            RequestRejected(1, 400, "invalid chunk-size line"),
        ]
        assert protocol.data_to_send().startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert protocol.should_close

    def test_after_the_response_started_closes(self) -> None:
        protocol = make()
        protocol.receive_data(CHUNKED, 0.0)
        protocol.events_received()
        protocol.send(ResponseStarted(1, 200, ()), 0.0)
        protocol.data_to_send()
        protocol.receive_data(b"zz\r\n", 0.0)
        assert protocol.events_received() == [StreamClosed(1)]
        assert protocol.data_to_send() == b""
        assert protocol.should_close


@pytest.mark.parametrize("now", [0.0, 1e9])
def test_deadlines_follow_the_clock(now: float) -> None:
    protocol = make(now=now, keep_alive_timeout=2.5)
    assert protocol.next_deadline() == now + 2.5
