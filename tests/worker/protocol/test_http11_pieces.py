"""HTTP/1.1 output as pieces: a large body leaves beside its head, uncopied.

``pieces_to_send`` must give the very bytes ``data_to_send`` gives (the
reference), in as few pieces as the rule allows, with every body piece of
``WRITE_ALONE`` bytes or more being the app's own object; and the I/O layer
must hand those pieces to the transport in one call.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hypercorn.config import Config
from hypercorn.worker.context import WorkerContext
from hypercorn.worker.io import HTTPConnection
from hypercorn.worker.protocol.events import (
    Headers,
    InformationalResponse,
    ResponseData,
    ResponseEnded,
    ResponseStarted,
)
from hypercorn.worker.protocol.http11_response import WRITE_ALONE, gather
from tests.worker.fakes import FakeTransport
from tests.worker.protocol.test_http11 import make
from tests.worker.test_io import GET, run

W = WRITE_ALONE
SMALL, EDGE, LARGE = b"a" * 10, b"e" * (W - 1), b"L" * W


@pytest.mark.parametrize(
    ("pieces", "expected"),
    [
        ([], []),
        ([b""], []),
        ([LARGE, b"", LARGE], [LARGE, LARGE]),
        ([SMALL], [SMALL]),
        ([SMALL, b"b", EDGE], [SMALL + b"b" + EDGE]),
        ([SMALL, b"b", LARGE], [SMALL + b"b", LARGE]),
        ([LARGE], [LARGE]),
        ([SMALL, LARGE, b"\r\n"], [SMALL, LARGE, b"\r\n"]),
        ([LARGE, LARGE, SMALL, SMALL], [LARGE, LARGE, SMALL + SMALL]),
    ],
)
def test_gather_joins_runs_of_small_pieces_only(pieces: list[bytes], expected: list[bytes]) -> None:
    gathered = gather(pieces)
    assert gathered == expected
    for piece in pieces:
        if len(piece) >= W:
            assert any(piece is out for out in gathered)  # not a copy


@given(st.lists(st.sampled_from([0, 1, 7, W // 2, W - 1, W, W + 1, 3 * W]), max_size=8))
@settings(max_examples=200, deadline=None)
def test_gather_keeps_the_bytes_and_their_order(sizes: list[int]) -> None:
    pieces = [bytes([65 + n % 26]) * size for n, size in enumerate(sizes)]
    gathered = gather(pieces)
    assert b"".join(gathered) == b"".join(pieces)
    assert all(gathered)  # nothing empty for the transport
    for before, after in itertools.pairwise(gathered):
        assert len(before) >= W or len(after) >= W  # two small runs would be one


REQUESTS = {
    "length": GET,
    "chunked": GET,
    "close": b"GET / HTTP/1.0\r\n\r\n",
    "head": b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
}


def drive(framing: str, sizes: list[int], drains: list[bool], *, pieces: bool) -> list[Any]:
    """Serve one response with bodies of ``sizes``, draining after each event
    ``drains`` marks and at the end (by ``pieces_to_send`` if ``pieces``, else
    by ``data_to_send``); return what each drain gave."""
    protocol = make()
    protocol.receive_data(REQUESTS[framing], 0.0)
    protocol.events_received()
    headers: Headers = ((b"x-a", b"1"),)
    if framing in ("length", "head"):
        headers += ((b"content-length", b"%d" % sum(sizes)),)
    events: list[Any] = [InformationalResponse(1, 103, ((b"link", b"</a>"),))]
    events.append(ResponseStarted(1, 200, headers))
    events += [ResponseData(1, bytes([97 + n]) * size) for n, size in enumerate(sizes)]
    events.append(ResponseEnded(1))
    drain = protocol.pieces_to_send if pieces else protocol.data_to_send
    drained = []
    for event, now in zip(events, drains, strict=True):
        protocol.send(event, 0.0)
        if now:
            drained.append(drain())
    drained.append(drain())
    return drained


@given(
    framing=st.sampled_from(sorted(REQUESTS)),
    sizes=st.lists(st.sampled_from([0, 5, W - 1, W, 2 * W + 3]), max_size=4),
    data=st.data(),
)
@settings(max_examples=200, deadline=None)
def test_pieces_are_the_reference_bytes(framing: str, sizes: list[int], data: Any) -> None:
    """Drained at any points, ``pieces_to_send`` gives what ``data_to_send``
    gives; small output leaves in one piece."""
    steps = len(sizes) + 3
    drains = data.draw(st.lists(st.booleans(), min_size=steps, max_size=steps))
    expected = drive(framing, sizes, drains, pieces=False)
    got = drive(framing, sizes, drains, pieces=True)
    assert [b"".join(drained) for drained in got] == expected
    for drained in got:
        assert all(drained)
        if not any(len(piece) >= W for piece in drained):
            assert len(drained) <= 1


def test_a_large_body_is_the_apps_own_object() -> None:
    protocol = make()
    protocol.receive_data(GET, 0.0)
    body = b"x" * (64 * 1024)
    protocol.send(ResponseStarted(1, 200, ((b"content-length", b"65536"),)), 0.0)
    protocol.send(ResponseData(1, body), 0.0)
    protocol.send(ResponseEnded(1), 0.0)
    head, sent = protocol.pieces_to_send()
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n")
    assert sent is body
    assert protocol.pieces_to_send() == [] and protocol.data_to_send() == b""


class Recording(FakeTransport):
    """Records each call the I/O layer makes: ``write`` or ``writelines``."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, list[bytes]]] = []

    def write(self, data: bytes) -> None:
        self.calls.append(("write", [data]))
        super().write(data)

    def writelines(self, pieces: list[bytes]) -> None:
        self.calls.append(("writelines", list(pieces)))
        FakeTransport.write(self, b"".join(pieces))


BIG = b"y" * (64 * 1024)


async def big_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = BIG if scope["path"] == "/big" else b"small"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def test_the_io_layer_writes_head_and_large_body_in_one_call_without_a_copy() -> None:
    async def test() -> None:
        connection = HTTPConnection(
            WorkerContext(big_app, Config(), asyncio.get_running_loop(), {}), secure=False
        )
        transport = Recording()
        transport.protocol = connection
        connection.connection_made(transport)  # type: ignore[arg-type]
        for path in (b"/big", b"/"):
            connection.data_received(b"GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % path)
            for _ in range(10):
                await asyncio.sleep(0)
        (kind, pieces), (small_kind, small) = transport.calls
        assert kind == "writelines" and len(pieces) == 2 and pieces[1] is BIG
        assert pieces[0].startswith(b"HTTP/1.1 200 OK\r\n")
        assert pieces[0].endswith(b"content-length: 65536\r\n\r\n")
        assert small_kind == "write" and small[0].endswith(b"\r\n\r\nsmall")  # one write

    run(test)
