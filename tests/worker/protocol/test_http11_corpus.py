"""Replay the HTTP/1.1 request corpus against the protocol layer.

Each case is fed whole, one byte at a time and in seeded random chunks; a
stand-in application answers every complete request with ``200 ok``. The
events (consecutive body chunks merged) and the bytes written must be the
same for every split, and must match the case's expected outcome.
"""

from __future__ import annotations

import random
import re

import pytest

from hypercorn.config import Config
from hypercorn.worker.protocol.events import (
    BodyEnded,
    BodyReceived,
    InboundEvent,
    RequestReceived,
    RequestRejected,
    ResponseData,
    ResponseEnded,
    ResponseStarted,
)
from hypercorn.worker.protocol.http11 import H11Protocol
from tests.corpus_http1 import Case, ExpectedRequest, decode_raw, load_cases, parse_case

CONFIG = Config()
CASES = load_cases()
SEEDS = range(5)


def _splits(length: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    sizes = []
    while length > 0:
        size = min(length, rng.choice((1, 2, 3, 7, 16, 64, 1000)))
        sizes.append(size)
        length -= size
    return sizes


def _merge(events: list[InboundEvent]) -> list[InboundEvent]:
    merged: list[InboundEvent] = []
    for event in events:
        last = merged[-1] if merged else None
        if isinstance(event, BodyReceived) and isinstance(last, BodyReceived):
            merged[-1] = BodyReceived(event.stream_id, last.data + event.data)
        else:
            merged.append(event)
    return merged


def replay(raw: bytes, sizes: list[int]) -> tuple[list[InboundEvent], bytes, bool]:
    """Feed ``raw`` split into ``sizes``; answer each complete request."""
    protocol = H11Protocol(CONFIG, tls=False, now=0.0)
    events: list[InboundEvent] = []
    out = bytearray()
    position = 0
    for size in sizes:
        protocol.receive_data(raw[position : position + size], 0.0)
        position += size
        while received := protocol.events_received():
            events += received
            for event in received:
                if isinstance(event, BodyEnded):
                    sid = event.stream_id
                    protocol.send(ResponseStarted(sid, 200, ((b"content-length", b"2"),)), 0.0)
                    protocol.send(ResponseData(sid, b"ok"), 0.0)
                    protocol.send(ResponseEnded(sid), 0.0)
        out += protocol.data_to_send()
    return _merge(events), bytes(out), protocol.should_close


def _delivered(events: list[InboundEvent]) -> list[ExpectedRequest]:
    requests: list[ExpectedRequest] = []
    current: RequestReceived | None = None
    body = b""
    for event in events:
        if isinstance(event, RequestReceived):
            current, body = event, b""
        elif isinstance(event, BodyReceived):
            body += event.data
        elif isinstance(event, BodyEnded):
            assert current is not None and current.stream_id == event.stream_id
            requests.append(
                ExpectedRequest(
                    current.method, current.target, current.headers, body, current.http_version
                )
            )
    return requests


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_case(case: Case) -> None:
    events, out, closed = replay(case.raw, [len(case.raw)])

    assert _delivered(events) == list(case.expected_requests)
    stream_ids = [e.stream_id for e in events if isinstance(e, RequestReceived)]
    assert stream_ids == list(range(1, 2 * len(stream_ids), 2))
    statuses = [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", out)]
    rejected = [e for e in events if isinstance(e, RequestRejected)]
    if case.expected_status is None:
        assert not rejected
        assert statuses == [200] * len(case.expected_requests)
    else:
        assert [e.status_code for e in rejected] == [case.expected_status]
        assert statuses[-1] == case.expected_status
        assert out.endswith(b"connection: close\r\n\r\n")
        assert closed


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_case_is_split_invariant(case: Case) -> None:
    whole = replay(case.raw, [len(case.raw)])
    assert replay(case.raw, [1] * len(case.raw)) == whole
    for seed in SEEDS:
        assert replay(case.raw, _splits(len(case.raw), seed)) == whole, seed


def test_corpus_covers_the_brief() -> None:
    names = {case.name for case in CASES}
    statuses = {case.expected_status for case in CASES}
    assert {400, 405, 431, 501, 505} <= statuses
    assert len([n for n in names if n.startswith("valid-")]) >= 10
    assert len([n for n in names if n.startswith(("smuggle-", "chunk-"))]) >= 40


class TestCorpusFormat:
    def test_escapes(self) -> None:
        assert decode_raw("a\\r\\n\\t\\0\\\\\\x7f\n b\\{3*xy}") == b"a\r\n\t\0\\\x7f bxyxyxy"

    @pytest.mark.parametrize("text", ["a ", "a\t", "\\q", "caf\u00e9", "\x01"])
    def test_refused_raw_text(self, text: str) -> None:
        with pytest.raises(ValueError):
            decode_raw(text)

    @pytest.mark.parametrize(
        "text",
        [
            "expect-status: 400\nGET",
            "description: nothing\n---\nGET",
            "expect-state: 400\n---\nGET",
            'expect-request: {"method": "GET", "path": "/"}\n---\nGET',
        ],
    )
    def test_refused_case_files(self, text: str) -> None:
        with pytest.raises((ValueError, KeyError)):
            parse_case("bad", text)
