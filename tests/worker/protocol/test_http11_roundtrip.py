"""Our server against h11 as the client, and split-invariance of whole exchanges.

A client/server pair of sans-IO objects: no loop, no sockets, no mocks.
"""

from __future__ import annotations

import random

import h11
from hypothesis import given, settings
from hypothesis import strategies as st

from hypercorn.config import Config
from hypercorn.worker.protocol.events import (
    BodyEnded,
    BodyReceived,
    InboundEvent,
    RequestReceived,
    ResponseData,
    ResponseEnded,
    ResponseStarted,
)
from hypercorn.worker.protocol.http11 import H11Protocol

BODIES = st.lists(st.binary(min_size=0, max_size=50), max_size=4)


@st.composite
def exchanges(draw: st.DrawFn) -> tuple[str, bytes, list[bytes], bool, bool]:
    """(method, request body, response pieces, response has a length, trailers)."""
    method = draw(st.sampled_from(["GET", "HEAD", "POST", "PUT"]))
    body = draw(st.binary(max_size=60)) if method in ("POST", "PUT") else b""
    return method, body, draw(BODIES), draw(st.booleans()), draw(st.booleans())


def _pump(client: h11.Connection) -> list[h11.Event]:
    events: list[h11.Event] = []
    while True:
        event = client.next_event()
        if not isinstance(event, h11.Event):  # NEED_DATA or PAUSED
            return events
        events.append(event)


@settings(max_examples=60)
@given(st.lists(exchanges(), min_size=1, max_size=4), st.booleans())
def test_h11_client_reads_our_responses(
    plan: list[tuple[str, bytes, list[bytes], bool, bool]], chunked_request: bool
) -> None:
    client = h11.Connection(h11.CLIENT)
    server = H11Protocol(Config(), tls=False, now=0.0)
    for number, (method, body, pieces, with_length, trailers) in enumerate(plan):
        stream_id = 2 * number + 1
        headers = [("Host", "example.com")]
        if body and chunked_request:
            headers.append(("Transfer-Encoding", "chunked"))
        elif body:
            headers.append(("Content-Length", str(len(body))))
        data = client.send(h11.Request(method=method, target="/x", headers=headers))
        if body:
            data += client.send(h11.Data(data=body))
        data += client.send(h11.EndOfMessage())
        server.receive_data(data, 0.0)
        events = server.events_received()
        assert isinstance(events[0], RequestReceived)
        assert (events[0].stream_id, events[0].method) == (stream_id, method)
        assert b"".join(e.data for e in events if isinstance(e, BodyReceived)) == body
        assert events[-1] == BodyEnded(stream_id)

        content = b"".join(pieces)
        length = ((b"content-length", b"%d" % len(content)),) if with_length else ()
        sent_trailers = ((b"x-sum", b"%d" % len(content)),) if trailers else ()
        server.send(ResponseStarted(stream_id, 200, ((b"x-n", b"%d" % number), *length)), 0.0)
        for piece in pieces:
            server.send(ResponseData(stream_id, piece), 0.0)
        server.send(ResponseEnded(stream_id, sent_trailers), 0.0)
        client.receive_data(server.data_to_send())
        received = _pump(client)
        response, *rest = received
        assert isinstance(response, h11.Response)
        assert response.status_code == 200
        assert (b"x-n", b"%d" % number) in list(response.headers)
        got = b"".join(bytes(e.data) for e in rest if isinstance(e, h11.Data))
        assert got == (b"" if method == "HEAD" else content)
        end = rest[-1]
        assert isinstance(end, h11.EndOfMessage)
        chunked_response = not with_length and method != "HEAD"
        assert list(end.headers) == (list(sent_trailers) if chunked_response else [])
        assert not server.should_close
        client.start_next_cycle()


def _requests(rng: random.Random, count: int) -> bytes:
    out = b""
    for number in range(count):
        kind = rng.choice(["get", "length", "chunked"])
        if kind == "get":
            out += b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n" % number
        elif kind == "length":
            body = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
            out += b"POST /%d HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % (
                number,
                len(body),
            )
            out += body
        else:
            out += b"POST /%d HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" % number
            for _ in range(rng.randrange(3)):
                chunk = bytes(rng.randrange(256) for _ in range(1 + rng.randrange(20)))
                out += b"%x;n=%d\r\n%s\r\n" % (len(chunk), number, chunk)
            out += b"0\r\nx-t: 1\r\n\r\n"
    return out


def _serve(raw: bytes, cuts: list[int]) -> tuple[list[InboundEvent], bytes]:
    server = H11Protocol(Config(), tls=False, now=0.0)
    events: list[InboundEvent] = []
    body = bytearray()
    out = b""
    previous = 0
    for cut in sorted({*cuts, len(raw)} - {0}):
        server.receive_data(raw[previous:cut], 0.0)  # never b"": that is EOF
        previous = cut
        while received := server.events_received():
            for event in received:
                if isinstance(event, BodyReceived):
                    body += event.data
                    continue
                if body:
                    events.append(BodyReceived(0, bytes(body)))
                    body.clear()
                events.append(event)
                if isinstance(event, BodyEnded):
                    sid = event.stream_id
                    server.send(ResponseStarted(sid, 200, ()), 0.0)
                    server.send(ResponseData(sid, b"%d" % sid), 0.0)
                    server.send(ResponseEnded(sid), 0.0)
        out += server.data_to_send()
    return events, out


@given(st.integers(0, 2**32), st.integers(1, 6), st.lists(st.integers(0, 2000), max_size=12))
def test_pipelined_exchanges_do_not_depend_on_the_split(
    seed: int, count: int, cuts: list[int]
) -> None:
    raw = _requests(random.Random(seed), count)
    cuts = [min(cut, len(raw)) for cut in cuts]
    whole = _serve(raw, [])
    assert _serve(raw, cuts) == whole
    events, out = whole
    assert [e.stream_id for e in events if isinstance(e, RequestReceived)] == list(
        range(1, 2 * count, 2)
    )
    assert out.count(b"HTTP/1.1 200 OK\r\n") == count
