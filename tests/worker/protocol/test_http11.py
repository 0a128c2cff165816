"""The HTTP/1.1 server protocol: lifecycle, framing, keep-alive, 100-continue."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hypercorn.config import Config
from hypercorn.worker.protocol.base import ProtocolCore
from hypercorn.worker.protocol.events import (
    BodyEnded,
    BodyReceived,
    Headers,
    InformationalResponse,
    RequestReceived,
    RequestRejected,
    ResponseData,
    ResponseEnded,
    ResponseStarted,
    StreamAborted,
)
from hypercorn.worker.protocol.http11 import MAX_EMPTY_LINES, H11Protocol
from tests.splits import Split, bytewise, whole

HOST = ((b"host", b"a"),)
GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
CL2 = ((b"content-length", b"2"),)


def make(now: float = 0.0, **settings: Any) -> H11Protocol:
    config = Config()
    for name, value in settings.items():
        setattr(config, name, value)
    return H11Protocol(config, tls=False, now=now)


def closing(protocol: H11Protocol) -> bool:
    """``should_close``, read through a call so type checkers do not narrow it."""
    return protocol.should_close


def paused(protocol: H11Protocol) -> bool:
    """``reading_paused``, read through a call so type checkers do not narrow it."""
    return protocol.reading_paused


def respond(
    protocol: H11Protocol,
    stream_id: int,
    headers: Headers = CL2,
    body: bytes = b"ok",
    status: int = 200,
    now: float = 0.0,
) -> bytes:
    protocol.send(ResponseStarted(stream_id, status, headers), now)
    protocol.send(ResponseData(stream_id, body), now)
    protocol.send(ResponseEnded(stream_id), now)
    return protocol.data_to_send()


def test_is_a_server_protocol() -> None:
    protocol: ProtocolCore = make()
    assert not protocol.should_close
    assert not protocol.reading_paused


class TestMessageExchange:
    """RFC 9112 section 2: one request, one response."""

    def test_get(self) -> None:
        protocol = make()
        protocol.receive_data(GET, 0.0)
        assert protocol.events_received() == [
            RequestReceived(1, "GET", b"/", HOST, "1.1", False),
            BodyEnded(1),
        ]
        assert protocol.events_received() == []
        assert respond(protocol, 1) == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
        assert protocol.data_to_send() == b""
        assert not closing(protocol)

    def test_post_body_is_handed_out_as_it_arrives(self) -> None:
        protocol = make()
        protocol.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\nabc", 0.0)
        assert protocol.events_received()[1:] == [BodyReceived(1, b"abc")]
        protocol.receive_data(b"def", 0.0)
        assert protocol.events_received() == [BodyReceived(1, b"def"), BodyEnded(1)]

    def test_headers_pass_in_order_and_unknown_status_has_no_phrase(self) -> None:
        protocol = make()
        protocol.receive_data(GET, 0.0)
        headers = ((b"x-b", b"1"), (b"Set-Cookie", b"a=b"), (b"content-length", b"0"))
        assert respond(protocol, 1, headers, b"", status=599) == (
            b"HTTP/1.1 599 \r\nx-b: 1\r\nSet-Cookie: a=b\r\ncontent-length: 0\r\n\r\n"
        )

    def test_events_for_other_streams_are_dropped(self) -> None:
        protocol = make()
        protocol.receive_data(GET, 0.0)
        protocol.send(ResponseStarted(3, 200, CL2), 0.0)
        protocol.send(StreamAborted(3), 0.0)
        assert protocol.data_to_send() == b""
        assert not closing(protocol)

    def test_events_before_any_request_are_dropped(self) -> None:
        protocol = make()
        protocol.send(ResponseData(1, b"x"), 0.0)
        assert protocol.data_to_send() == b""


class TestResponseFraming:
    """RFC 9112 section 6: how the response body is delimited."""

    def test_chunked_without_content_length(self) -> None:
        protocol = make()
        protocol.receive_data(GET, 0.0)
        protocol.send(ResponseStarted(1, 200, ()), 0.0)
        protocol.send(ResponseData(1, b"hello"), 0.0)
        protocol.send(ResponseData(1, b""), 0.0)
        protocol.send(ResponseData(1, b"x" * 26), 0.0)
        protocol.send(ResponseEnded(1, ((b"x-checksum", b"abc"),)), 0.0)
        assert protocol.data_to_send() == (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n1a\r\n" + b"x" * 26 + b"\r\n0\r\nx-checksum: abc\r\n\r\n"
        )
        assert not closing(protocol)

    def test_app_framing_headers_are_replaced(self) -> None:
        protocol = make()
        protocol.receive_data(GET, 0.0)
        headers = ((b"Transfer-Encoding", b"chunked"), (b"Connection", b"keep-alive"), *CL2)
        assert respond(protocol, 1, headers) == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"

    def test_app_connection_close_closes(self) -> None:
        protocol = make()
        protocol.receive_data(GET, 0.0)
        out = respond(protocol, 1, ((b"connection", b"Upgrade, Close"), *CL2))
        assert out == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
        assert protocol.should_close

    def test_trailers_are_dropped_without_chunking(self) -> None:
        protocol = make()
        protocol.receive_data(GET, 0.0)
        protocol.send(ResponseStarted(1, 200, CL2), 0.0)
        protocol.send(ResponseData(1, b"ok"), 0.0)
        protocol.send(ResponseEnded(1, ((b"x-t", b"1"),)), 0.0)
        assert protocol.data_to_send().endswith(b"\r\n\r\nok")

    def test_head_response_has_no_body(self) -> None:
        protocol = make()
        protocol.receive_data(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", 0.0)
        protocol.events_received()
        out = respond(protocol, 1, ((b"content-length", b"5"),), b"hello")
        assert out == b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"
        assert not closing(protocol)

    def test_head_response_without_length_is_not_chunked(self) -> None:
        protocol = make()
        protocol.receive_data(b"HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 0.0)
        out = respond(protocol, 1, (), b"hello")
        assert out == b"HTTP/1.1 200 OK\r\nconnection: keep-alive\r\n\r\n"
        assert not closing(protocol)

    @pytest.mark.parametrize(
        ("status", "expected"),
        [
            (204, b"HTTP/1.1 204 No Content\r\n\r\n"),
            (304, b"HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\n\r\n"),
        ],
    )
    def test_no_body_statuses(self, status: int, expected: bytes) -> None:
        protocol = make()
        protocol.receive_data(GET, 0.0)
        assert respond(protocol, 1, ((b"content-length", b"5"),), b"hello", status) == expected
        assert not closing(protocol)

    def test_too_much_data_is_cut_and_closes(self) -> None:
        protocol = make()
        protocol.receive_data(GET, 0.0)
        protocol.send(ResponseStarted(1, 200, CL2), 0.0)
        protocol.send(ResponseData(1, b"okay"), 0.0)
        protocol.send(ResponseData(1, b"more"), 0.0)
        protocol.send(ResponseEnded(1), 0.0)
        assert protocol.data_to_send().endswith(b"\r\n\r\nok")
        assert protocol.should_close

    def test_too_little_data_closes(self) -> None:
        protocol = make()
        protocol.receive_data(GET, 0.0)
        respond(protocol, 1, ((b"content-length", b"5"),), b"ok")
        assert protocol.should_close

    def test_stream_aborted_closes_without_last_chunk(self) -> None:
        protocol = make()
        protocol.receive_data(GET, 0.0)
        protocol.send(ResponseStarted(1, 200, ()), 0.0)
        protocol.send(ResponseData(1, b"part"), 0.0)
        protocol.send(StreamAborted(1), 0.0)
        assert protocol.should_close
        assert protocol.data_to_send().endswith(b"4\r\npart\r\n")
        protocol.send(ResponseEnded(1), 0.0)
        assert protocol.data_to_send() == b""

    def test_abort_before_the_response(self) -> None:
        protocol = make()
        protocol.receive_data(GET, 0.0)
        protocol.send(StreamAborted(1), 0.0)
        assert protocol.should_close
        assert protocol.data_to_send() == b""
        assert protocol.events_received() == [
            RequestReceived(1, "GET", b"/", HOST, "1.1", False),
            BodyEnded(1),
        ]

    @pytest.mark.parametrize(
        ("events", "error"),
        [
            ([ResponseData(1, b"x")], RuntimeError),
            ([ResponseEnded(1)], RuntimeError),
            ([ResponseStarted(1, 200, ()), ResponseStarted(1, 200, ())], RuntimeError),
            ([ResponseStarted(1, 101, ())], ValueError),
            ([ResponseStarted(1, 200, ((b"content-length", b"-1"),))], ValueError),
            ([ResponseStarted(1, 200, ((b"content-length", b"1"),) * 2 + CL2)], ValueError),
            ([InformationalResponse(1, 200)], ValueError),
        ],
    )
    def test_misuse_by_the_stream_layer_raises(self, events: list[Any], error: type) -> None:
        protocol = make()
        protocol.receive_data(GET, 0.0)
        with pytest.raises(error):
            for event in events:
                protocol.send(event, 0.0)

    def test_a_refused_head_writes_nothing(self) -> None:
        protocol = make()
        protocol.receive_data(GET, 0.0)
        with pytest.raises(ValueError):
            protocol.send(ResponseStarted(1, 200, ((b"x", b"y"), (b"content-length", b"x"))), 0.0)
        assert protocol.data_to_send() == b""
        assert respond(protocol, 1) == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


class TestPersistence:
    """RFC 9112 section 9.3: keep-alive, HTTP/1.0, Connection: close."""

    def test_requests_are_numbered_one_three_five(self) -> None:
        protocol = make()
        for stream_id in (1, 3, 5):
            protocol.receive_data(GET, 0.0)
            assert protocol.events_received()[0] == RequestReceived(
                stream_id, "GET", b"/", HOST, "1.1", False
            )
            respond(protocol, stream_id)

    def test_connection_close_request(self) -> None:
        protocol = make()
        protocol.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 0.0)
        protocol.send(ResponseStarted(1, 200, CL2), 0.0)
        assert not closing(protocol)
        assert protocol.data_to_send().endswith(b"connection: close\r\n\r\n")
        protocol.send(ResponseData(1, b"ok"), 0.0)
        protocol.send(ResponseEnded(1), 0.0)
        assert protocol.should_close
        assert protocol.reading_paused

    def test_http10_closes_by_default(self) -> None:
        protocol = make()
        protocol.receive_data(b"GET / HTTP/1.0\r\n\r\n", 0.0)
        out = respond(protocol, 1, (), b"body")
        assert out == b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nbody"
        assert protocol.should_close

    def test_http10_keep_alive(self) -> None:
        protocol = make()
        protocol.receive_data(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 0.0)
        protocol.events_received()
        out = respond(protocol, 1)
        assert out == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nok"
        assert not closing(protocol)
        protocol.receive_data(b"GET /2 HTTP/1.0\r\n\r\n", 0.0)
        assert protocol.events_received()[0].stream_id == 3

    def test_http10_keep_alive_without_length_closes(self) -> None:
        protocol = make()
        protocol.receive_data(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 0.0)
        assert respond(protocol, 1, (), b"x").endswith(b"connection: close\r\n\r\nx")
        assert protocol.should_close

    def test_keep_alive_max_requests(self) -> None:
        protocol = make(keep_alive_max_requests=2)
        protocol.receive_data(GET, 0.0)
        assert b"connection" not in respond(protocol, 1)
        protocol.receive_data(GET, 0.0)
        assert respond(protocol, 3).endswith(b"connection: close\r\n\r\nok")
        assert protocol.should_close


class TestReusable:
    """``reusable``: whether the request limit counts on one more request."""

    def test_a_new_connection_brings_a_request(self) -> None:
        assert make().reusable

    def test_one_request_is_taken_for_a_one_shot_client(self) -> None:
        protocol = make()
        protocol.receive_data(GET, 0.0)
        protocol.events_received()
        assert not protocol.reusable
        respond(protocol, 1)
        assert not protocol.reusable  # idle after its first response

    def test_part_of_a_second_request_is_one_more(self) -> None:
        protocol = make()
        protocol.receive_data(GET, 0.0)
        respond(protocol, 1)
        protocol.receive_data(GET[:5], 0.0)
        assert protocol.reusable

    def test_a_reused_connection_brings_one_more(self) -> None:
        protocol = make()
        for stream_id in (1, 3):
            protocol.receive_data(GET, 0.0)
            protocol.events_received()
            assert not protocol.reusable  # the request under way is counted already
            respond(protocol, stream_id)
        assert protocol.reusable

    def test_a_closing_connection_brings_none(self) -> None:
        protocol = make()
        protocol.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 0.0)
        respond(protocol, 1)
        assert not protocol.reusable


class TestPipelining:
    """RFC 9112 section 9.3.2: requests are answered in order, one at a time."""

    def test_pipelined_requests_wait_for_the_response(self) -> None:
        protocol = make()
        protocol.receive_data(GET + b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\nGET /3 HTTP/1.1\r\n", 0.0)
        assert [type(e) for e in protocol.events_received()] == [RequestReceived, BodyEnded]
        assert not paused(protocol)
        respond(protocol, 1)
        events = protocol.events_received()
        assert events[0] == RequestReceived(3, "GET", b"/2", HOST, "1.1", False)
        respond(protocol, 3)
        assert protocol.events_received() == []
        protocol.receive_data(b"Host: a\r\n\r\n", 0.0)
        assert protocol.events_received()[0].stream_id == 5

    def test_backlog_over_the_head_limit_pauses_reading(self) -> None:
        protocol = make(h11_max_incomplete_size=100)
        protocol.receive_data(GET, 0.0)
        protocol.receive_data(GET * 3, 0.0)
        assert not paused(protocol)
        protocol.receive_data(GET, 0.0)
        assert protocol.reading_paused
        respond(protocol, 1)
        assert not paused(protocol)

    def test_invalid_pipelined_request_waits_its_turn(self) -> None:
        protocol = make()
        protocol.receive_data(GET + b"BAD\n\n", 0.0)
        assert protocol.data_to_send() == b""
        assert not closing(protocol)
        protocol.events_received()
        out = respond(protocol, 1)
        assert out.startswith(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 400 ")
        assert protocol.events_received() == [RequestRejected(3, 400, "bare LF in request head")]
        assert protocol.should_close


class TestContinue:
    """RFC 9110 section 10.1.1: Expect: 100-continue."""

    EXPECT = b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"
    HEADERS = (*HOST, (b"expect", b"100-continue"), (b"content-length", b"4"))

    def test_continue_is_sent_when_the_stream_asks(self) -> None:
        protocol = make()
        protocol.receive_data(self.EXPECT, 0.0)
        assert protocol.events_received() == [
            RequestReceived(1, "PUT", b"/", self.HEADERS, "1.1", expects_continue=True)
        ]
        assert protocol.data_to_send() == b""
        protocol.send(InformationalResponse(1, 100), 0.0)
        protocol.send(InformationalResponse(1, 100), 0.0)
        assert protocol.data_to_send() == b"HTTP/1.1 100 Continue\r\n\r\n"
        protocol.receive_data(b"data", 0.0)
        assert protocol.events_received() == [BodyReceived(1, b"data"), BodyEnded(1)]
        assert b"connection" not in respond(protocol, 1)
        assert not closing(protocol)

    def test_early_response_skips_continue_and_closes(self) -> None:
        protocol = make()
        protocol.receive_data(self.EXPECT, 0.0)
        protocol.send(ResponseStarted(1, 417, CL2), 0.0)
        protocol.send(InformationalResponse(1, 100), 0.0)
        protocol.send(ResponseData(1, b"no"), 0.0)
        protocol.send(ResponseEnded(1), 0.0)
        out = protocol.data_to_send()
        assert out == (
            b"HTTP/1.1 417 Expectation Failed\r\ncontent-length: 2\r\nconnection: close\r\n\r\nno"
        )
        assert protocol.should_close

    def test_no_continue_once_the_body_arrives(self) -> None:
        protocol = make()
        protocol.receive_data(self.EXPECT + b"da", 0.0)
        protocol.send(InformationalResponse(1, 100), 0.0)
        assert protocol.data_to_send() == b""

    @pytest.mark.parametrize(
        "request_bytes",
        [
            b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n",
            b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
        ],
    )
    def test_no_continue_unless_expected(self, request_bytes: bytes) -> None:
        protocol = make()
        protocol.receive_data(request_bytes, 0.0)
        protocol.send(InformationalResponse(1, 100), 0.0)
        assert protocol.data_to_send() == b""

    def test_early_hints(self) -> None:
        protocol = make()
        protocol.receive_data(GET, 0.0)
        protocol.send(InformationalResponse(1, 103, ((b"link", b"</s.css>; rel=preload"),)), 0.0)
        protocol.send(InformationalResponse(1, 101), 0.0)
        assert protocol.data_to_send() == (
            b"HTTP/1.1 103 Early Hints\r\nlink: </s.css>; rel=preload\r\n\r\n"
        )
        protocol.send(ResponseStarted(1, 200, CL2), 0.0)
        protocol.send(InformationalResponse(1, 103), 0.0)
        assert protocol.data_to_send() == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"

    def test_no_informational_to_http10(self) -> None:
        protocol = make()
        protocol.receive_data(b"GET / HTTP/1.0\r\n\r\n", 0.0)
        protocol.send(InformationalResponse(1, 103), 0.0)
        assert protocol.data_to_send() == b""


class TestLargeReads:
    """A read that holds a head and a large body part is served as if fed in pieces."""

    BODY = bytes(range(256)) * 400  # 100 KiB
    POST = b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(BODY)

    def events(self, chunks: list[bytes]) -> list[Any]:
        protocol = make()
        events: list[Any] = []
        for chunk in chunks:
            protocol.receive_data(chunk, 0.0)
            events += protocol.events_received()
        return events

    def body(self, events: list[Any]) -> bytes:
        return b"".join(e.data for e in events if isinstance(e, BodyReceived))

    def test_one_read_equals_small_reads(self) -> None:
        data = self.POST + self.BODY
        whole = self.events([data])
        pieces = self.events([data[i : i + 1000] for i in range(0, len(data), 1000)])
        assert [type(e) for e in whole] == [RequestReceived, BodyReceived, BodyEnded]
        assert self.body(whole) == self.body(pieces) == self.BODY
        assert whole[0] == pieces[0]

    def test_pipelined_request_after_the_body_waits_its_turn(self) -> None:
        protocol = make()
        protocol.receive_data(self.POST + self.BODY + GET, 0.0)
        events = protocol.events_received()
        assert self.body(events) == self.BODY and isinstance(events[-1], BodyEnded)
        respond(protocol, 1)
        follow = protocol.events_received()
        assert isinstance(follow[0], RequestReceived) and follow[0].target == b"/"

    def test_a_bad_head_in_a_large_read_is_refused(self) -> None:
        protocol = make()
        protocol.receive_data(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n" + self.BODY, 0.0)
        events = protocol.events_received()
        assert [type(e) for e in events] == [RequestRejected]  # no Host
        assert closing(protocol)
        assert protocol.data_to_send().startswith(b"HTTP/1.1 400 ")

    def test_a_head_past_the_limit_in_a_large_read_is_431(self) -> None:
        protocol = make(h11_max_incomplete_size=1024)
        head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"b" * 2000 + b"\r\n\r\n"
        protocol.receive_data(head + b"x" * 20000, 0.0)
        assert protocol.data_to_send().startswith(b"HTTP/1.1 431 ")


class TestEmptyLines:
    """RFC 9112 section 2.2: empty lines before a request-line are skipped, a few only."""

    @pytest.mark.parametrize("split", [whole, bytewise], ids=lambda split: split.__name__)
    def test_a_few_are_skipped(self, split: Split) -> None:
        protocol = make()
        for piece in split(b"\r\n" * MAX_EMPTY_LINES + GET):
            protocol.receive_data(piece, 0.0)
        assert protocol.events_received() == [
            RequestReceived(1, "GET", b"/", HOST, "1.1"),
            BodyEnded(1),
        ]

    @pytest.mark.parametrize("split", [whole, bytewise], ids=lambda split: split.__name__)
    def test_one_too_many_is_refused(self, split: Split) -> None:
        protocol = make()
        for piece in split(b"\r\n" * (MAX_EMPTY_LINES + 1) + GET):
            protocol.receive_data(piece, 0.0)
        assert protocol.events_received() == [
            RequestRejected(1, 400, "too many empty lines before the request line")
        ]
        assert protocol.data_to_send().startswith(b"HTTP/1.1 400 ")
        assert closing(protocol)

    def test_the_count_restarts_with_each_request(self) -> None:
        protocol = make()
        protocol.receive_data(b"\r\n" * MAX_EMPTY_LINES + GET, 0.0)
        protocol.events_received()
        respond(protocol, 1)
        protocol.receive_data(b"\r\n" * MAX_EMPTY_LINES + GET, 0.0)
        assert [type(e) for e in protocol.events_received()] == [RequestReceived, BodyEnded]

    def test_a_flood_in_one_large_read_is_refused_at_once(self) -> None:
        # 40 KB of CRLF in one read used to recurse once per line.
        protocol = make()
        started = time.perf_counter()
        protocol.receive_data(b"\r\n" * 20_000 + GET, 0.0)
        elapsed = time.perf_counter() - started
        assert [type(e) for e in protocol.events_received()] == [RequestRejected]
        assert protocol.data_to_send().startswith(b"HTTP/1.1 400 ")
        assert closing(protocol)
        assert elapsed < 0.05  # measured at about 10 µs; the recursion took ~100 ms


def _request(kind: int, size: int) -> bytes:
    body = bytes(range(256)) * (size // 256) + bytes(size % 256)
    if kind == 0:
        return GET
    if kind == 1:
        return b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % size + body
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(body[i : i + 5000]), body[i : i + 5000])
                       for i in range(0, size, 5000))  # fmt: skip
    return (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked + b"0\r\n\r\n"
    )


def _serve(data: bytes, cuts: list[int]) -> list[Any]:
    """Feed ``data`` cut after each of ``cuts`` bytes, answering each complete
    request; the events with each request's body joined (reads cut it anyhow)."""
    protocol = make()
    events: list[Any] = []
    index = 0
    for step in [*cuts, len(data)]:
        protocol.receive_data(data[index : index + step], 0.0)
        index += step
        pending = protocol.events_received()
        while pending:
            events += pending
            ended = [e.stream_id for e in pending if isinstance(e, BodyEnded)]
            pending = []
            for stream_id in ended:
                respond(protocol, stream_id)
                pending += protocol.events_received()
    joined: list[Any] = []
    for event in events:
        if isinstance(event, BodyReceived) and joined and isinstance(joined[-1], BodyReceived):
            joined[-1] = BodyReceived(event.stream_id, joined[-1].data + event.data)
        else:
            joined.append(event)
    return joined


class TestFastAndReferencePaths:
    """``_fast_head`` and ``_fast_body`` (a read that is one whole head, a large
    read that starts with one, body bytes with nothing buffered) and the
    buffer's reference path give the same events however the bytes are cut."""

    @settings(max_examples=100, deadline=None)
    @given(
        st.lists(
            st.tuples(st.integers(0, 2), st.sampled_from([0, 1, 700, 17_000, 40_000])),
            min_size=1,
            max_size=4,
        ),
        st.lists(st.integers(min_value=1, max_value=20_000), max_size=12),
    )
    def test_any_cutting_reads_the_same(
        self, requests: list[tuple[int, int]], cuts: list[int]
    ) -> None:
        data = b"".join(_request(kind, size) for kind, size in requests)
        whole_events = _serve(data, [])
        assert sum(isinstance(e, RequestReceived) for e in whole_events) == len(requests)
        assert _serve(data, cuts) == whole_events
        # Reads of one request each, the keep-alive client's: the fast paths.
        assert _serve(data, [len(_request(k, s)) for k, s in requests]) == whole_events
