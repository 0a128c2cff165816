"""HTTP/2 attacks driven over a real socket: each ends with GOAWAY and a bounded cost.

Every attack is generated lazily (far more bytes than the server may keep)
and written while the server's frames are read. The server must answer with
GOAWAY carrying the expected error code and close; the test bounds the time
it took, the application calls it caused, and (with ``tracemalloc``) the peak
memory allocated meanwhile, which an unbounded buffer of the attack would
exceed many times over.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import h2.config
import h2.connection
import hpack
import pytest
from h2.errors import ErrorCodes

from tests.e2e.conftest import ServerAddress, close_raw, open_raw, running_server, scaled

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.usefixtures("worker_class"),
    pytest.mark.worker_classes("asyncio", "trio"),
]

MEMORY_BOUND = 24 * 1024 * 1024
calls: list[str] = []


async def body_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    calls.append(scope["path"])
    while True:
        message = await receive()
        if message["type"] == "http.disconnect" or not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _client() -> h2.connection.H2Connection:
    client = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding=None)
    )
    client.initiate_connection()
    return client


REQUEST = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"x"), (b":path", b"/")]
DATA, HEADERS, RST_STREAM, SETTINGS, PING, WINDOW_UPDATE, CONTINUATION = 0, 1, 3, 4, 6, 8, 9
END_STREAM, END_HEADERS = 0x1, 0x4


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One HTTP/2 frame, built by hand (RFC 9113 section 4.1)."""
    return (
        struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", kind, flags, stream_id) + payload
    )


async def _read_goaway(reader: asyncio.StreamReader) -> tuple[int, int]:
    """Read frames until a GOAWAY; return (last stream id, error code)."""
    while True:
        head = await reader.readexactly(9)
        length = int.from_bytes(head[:3], "big")
        payload = await reader.readexactly(length)
        if head[3] == 0x7:
            last, code = struct.unpack(">II", payload[:8])
            return last & 0x7FFFFFFF, code


async def attack(
    address: ServerAddress, chunks: Iterator[bytes], *, deadline: float = 10.0
) -> tuple[int, int, float, int]:
    """Send the client preface, then ``chunks``, until the server answers with GOAWAY.

    Returns:
        The GOAWAY's last stream id and error code, the seconds it took, and the
        peak memory traced meanwhile.
    """
    calls.clear()
    reader, writer = await open_raw(address)
    tracemalloc.start()
    started = time.monotonic()

    async def write_all() -> None:
        writer.write(_client().data_to_send())
        with contextlib.suppress(ConnectionError):
            for chunk in chunks:
                writer.write(chunk)
                await writer.drain()
                await asyncio.sleep(0)  # let the server read

    writing = asyncio.create_task(write_all())
    try:
        last, code = await asyncio.wait_for(_read_goaway(reader), scaled(deadline))
        elapsed = time.monotonic() - started
        # The server closes after its GOAWAY.
        with contextlib.suppress(ConnectionError):
            while await asyncio.wait_for(reader.read(65536), scaled(5)):
                pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        writing.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await writing
        await close_raw(writer)
    return last, code, elapsed, peak


def _frames(make: Any, count: int, batch: int = 256) -> Iterator[bytes]:
    one = make(0)
    for _ in range(0, count, batch):
        yield one * batch


async def test_rapid_reset_is_cut_off() -> None:
    """CVE-2023-44487: HEADERS then RST_STREAM, many times over."""

    block = hpack.Encoder().encode(REQUEST)
    cancel = struct.pack(">I", ErrorCodes.CANCEL)

    def chunks() -> Iterator[bytes]:
        for base in range(1, 200_000, 400):
            yield b"".join(
                frame(HEADERS, END_HEADERS, stream_id, block)
                + frame(RST_STREAM, 0, stream_id, cancel)
                for stream_id in range(base, base + 400, 2)
            )

    async with running_server(body_app) as server:
        _, code, elapsed, peak = await attack(server, chunks())
    assert code == ErrorCodes.ENHANCE_YOUR_CALM
    assert len(calls) <= 400  # the reset budget, not the 100 000 streams sent
    assert elapsed < scaled(2) and peak < MEMORY_BOUND


async def test_continuation_flood_is_cut_off() -> None:
    """CVE-2024-27316: a header block that never ends."""

    def chunks() -> Iterator[bytes]:
        yield frame(HEADERS, 0, 1, b"\x82")  # :method GET, then an endless block
        fragment = frame(CONTINUATION, 0, 1, b"\x00" * 16_000)
        yield from _frames(lambda _: fragment, 8_000, batch=8)  # 128 MB if kept

    async with running_server(body_app) as server:
        _, code, elapsed, peak = await attack(server, chunks())
    assert code == ErrorCodes.ENHANCE_YOUR_CALM
    assert calls == [] and elapsed < scaled(2) and peak < MEMORY_BOUND


async def test_small_continuation_frames_are_capped() -> None:
    def chunks() -> Iterator[bytes]:
        yield frame(HEADERS, 0, 1, b"\x82")
        fragment = frame(CONTINUATION, 0, 1, b"\x00")
        yield from _frames(lambda _: fragment, 1_000_000)

    async with running_server(body_app) as server:
        _, code, elapsed, peak = await attack(server, chunks())
    assert code == ErrorCodes.PROTOCOL_ERROR  # the 65th CONTINUATION of one block is refused
    assert calls == [] and elapsed < scaled(2) and peak < MEMORY_BOUND


async def test_settings_flood_is_cut_off() -> None:
    settings = frame(SETTINGS, 0, 0)
    async with running_server(body_app) as server:
        _, code, elapsed, peak = await attack(server, _frames(lambda _: settings, 1_000_000))
    assert code == ErrorCodes.ENHANCE_YOUR_CALM
    assert elapsed < scaled(2) and peak < MEMORY_BOUND


async def test_ping_flood_is_cut_off() -> None:
    ping = frame(PING, 0, 0, b"12345678")
    async with running_server(body_app) as server:
        _, code, elapsed, peak = await attack(server, _frames(lambda _: ping, 1_000_000))
    assert code == ErrorCodes.ENHANCE_YOUR_CALM
    assert elapsed < scaled(2) and peak < MEMORY_BOUND


async def test_empty_data_flood_is_cut_off() -> None:
    def chunks() -> Iterator[bytes]:
        client = _client()
        client.data_to_send()
        client.send_headers(1, [*REQUEST[:3], (b":path", b"/upload")])
        yield client.data_to_send()
        empty = frame(DATA, 0, 1)
        yield from _frames(lambda _: empty, 1_000_000)

    async with running_server(body_app) as server:
        last, code, elapsed, peak = await attack(server, chunks())
    assert code == ErrorCodes.ENHANCE_YOUR_CALM and last == 1
    assert calls == ["/upload"] and elapsed < scaled(2) and peak < MEMORY_BOUND


async def test_window_update_overflow() -> None:
    def chunks() -> Iterator[bytes]:
        yield frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 2**31 - 1))

    async with running_server(body_app) as server:
        _, code, _, _ = await attack(server, chunks())
    assert code == ErrorCodes.FLOW_CONTROL_ERROR


async def test_oversized_header_block() -> None:
    def chunks() -> Iterator[bytes]:
        client = _client()
        client.data_to_send()
        client.send_headers(1, [*REQUEST, (b"x-big", b"a" * 8_000)], end_stream=True)
        yield client.data_to_send()

    async with running_server(body_app, h2_max_header_list_size=4096) as server:
        _, code, _, _ = await attack(server, chunks())
    assert code == ErrorCodes.ENHANCE_YOUR_CALM and calls == []
