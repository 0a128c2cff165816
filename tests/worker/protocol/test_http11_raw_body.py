"""Body bytes the I/O layer writes itself (``sendfile``): which the framing allows,
and how the count written decides keep-alive, for HTTP/1.1 and through
``ServerConnection`` (which allows none once HTTP/2 speaks)."""

from __future__ import annotations

import pytest

from hypercorn.config import Config
from hypercorn.worker.protocol.connection import PREFACE, ServerConnection
from hypercorn.worker.protocol.events import (
    ConnectionInfo,
    Headers,
    ResponseData,
    ResponseEnded,
    ResponseStarted,
)
from hypercorn.worker.protocol.http11 import H11Protocol

GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
INFO = ConnectionInfo("h11", "http", ("192.0.2.1", 40000), ("127.0.0.1", 80))


def started(
    request: bytes = GET, headers: Headers = ((b"content-length", b"10"),), status: int = 200
) -> H11Protocol:
    protocol = H11Protocol(Config(), tls=False, now=0.0)
    protocol.receive_data(request, 0.0)
    protocol.events_received()
    protocol.send(ResponseStarted(1, status, headers), 0.0)
    protocol.data_to_send()
    return protocol


@pytest.mark.parametrize(
    ("request_", "headers", "status", "size", "allowed"),
    [
        (GET, ((b"content-length", b"10"),), 200, 4, 4),  # within the announced length
        (GET, ((b"content-length", b"10"),), 200, 25, 10),  # never past it
        (b"GET / HTTP/1.0\r\n\r\n", (), 200, 25, 25),  # close-delimited: all of it
        (GET, (), 200, 25, 0),  # chunked: every piece needs its chunk line
        (b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", ((b"content-length", b"10"),), 200, 4, 0),
        (GET, ((b"content-length", b"10"),), 304, 4, 0),  # no body may follow
    ],
)
def test_the_framing_decides_what_may_go_raw(
    request_: bytes, headers: Headers, status: int, size: int, allowed: int
) -> None:
    assert started(request_, headers, status).raw_body_allowed(1, size) == allowed


def test_nothing_goes_raw_for_another_stream_or_before_the_head() -> None:
    protocol = started()
    assert protocol.raw_body_allowed(3, 4) == 0
    fresh = H11Protocol(Config(), tls=False, now=0.0)
    fresh.receive_data(GET, 0.0)
    assert fresh.raw_body_allowed(1, 4) == 0  # no head yet: framing unknown


def test_bytes_written_count_against_the_length_and_the_connection_is_kept() -> None:
    protocol = started()
    protocol.raw_body_written(1, 6)
    assert protocol.raw_body_allowed(1, 10) == 4
    protocol.send(ResponseData(1, b"abcd"), 0.0)  # the rest as ordinary data
    protocol.send(ResponseEnded(1), 0.0)
    assert protocol.data_to_send() == b"abcd"
    assert not protocol.should_close
    protocol.receive_data(GET, 0.0)  # the next request is read
    assert protocol.events_received()


def test_a_short_raw_body_closes_the_connection() -> None:
    protocol = started()
    protocol.raw_body_written(1, 7)  # the file had 7 of the 10 bytes announced
    protocol.send(ResponseEnded(1), 0.0)
    assert protocol.should_close


class TestThroughTheConnection:
    def test_http11_allows_what_its_framing_allows(self) -> None:
        connection = ServerConnection(Config(), INFO, 0.0)
        connection.receive_data(GET, 0.0)
        connection.events_received()
        connection.send(ResponseStarted(1, 200, ((b"content-length", b"10"),)), 0.0)
        assert connection.raw_body_allowed(1, 25) == 10
        connection.raw_body_written(1, 10)
        connection.send(ResponseEnded(1), 0.0)
        assert not connection.should_close

    def test_http2_allows_none(self) -> None:
        connection = ServerConnection(Config(), INFO, 0.0)
        connection.receive_data(PREFACE, 0.0)
        assert connection.multiplexed
        assert connection.raw_body_allowed(1, 25) == 0
        connection.raw_body_written(1, 0)  # nothing to count; no error either
