"""The asyncio I/O layer, deterministic: a transport in memory, a virtual clock.

Every test runs a real ``HTTPConnection`` with real ASGI streams and apps on
``VirtualClockLoop``; time moves only when the test sleeps, and only as far
as it asks, so timers, linger, half-close, drain and switching are checked
at exact instants, with no socket and no real waiting.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import h2.config
import h2.connection
import h2.events
from wsproto.connection import Connection as WSPeer
from wsproto.connection import ConnectionType
from wsproto.events import TextMessage

from hypercorn.config import Config
from hypercorn.worker.context import WorkerContext
from hypercorn.worker.io import HTTPConnection
from tests.worker.fakes import FakeTransport, VirtualClockLoop

GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": message["text"]})
        return
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    body = scope["path"].encode()
    headers = [(b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def run(test: Callable[[], Awaitable[None]]) -> None:
    with asyncio.Runner(loop_factory=VirtualClockLoop) as runner:
        runner.run(test())  # type: ignore[arg-type]


class Client:
    """One connection of the server under test, and its fake transport."""

    def __init__(self, app: Any = hello, **settings: Any) -> None:
        config = Config()
        for name, value in settings.items():
            setattr(config, name, value)
        self.loop = asyncio.get_running_loop()
        self.ctx = WorkerContext(app, config, self.loop, {})
        self.connection = HTTPConnection(self.ctx, secure=False)
        self.transport = FakeTransport()
        self.transport.protocol = self.connection
        self.connection.connection_made(self.transport)  # type: ignore[arg-type]

    def send(self, data: bytes) -> None:
        self.connection.data_received(data)

    def eof(self) -> None:
        """The client's FIN; as asyncio does, the transport closes unless kept open."""
        if not self.connection.eof_received():
            self.transport.close()

    async def settle(self) -> None:
        """Let the apps run until nothing is ready (the clock does not move)."""
        for _ in range(50):
            await asyncio.sleep(0)

    async def response(self) -> bytes:
        await self.settle()
        return self.transport.take()


class TestTimers:
    def test_an_idle_connection_closes_at_the_keep_alive_deadline(self) -> None:
        async def test() -> None:
            client = Client(keep_alive_timeout=5.0)
            await asyncio.sleep(4.999)
            assert not client.transport.closed
            await asyncio.sleep(0.002)
            assert client.transport.closed
            assert client.transport.take() == b""  # quietly: no 408 for an idle connection

        run(test)

    def test_each_request_pushes_the_deadline_back(self) -> None:
        async def test() -> None:
            client = Client(keep_alive_timeout=5.0)
            for _ in range(3):
                await asyncio.sleep(4.0)
                client.send(GET)
                assert (await client.response()).startswith(b"HTTP/1.1 200 ")
            await asyncio.sleep(4.9)
            assert not client.transport.closed
            await asyncio.sleep(0.2)
            assert client.transport.closed

        run(test)

    def test_a_stalled_body_is_answered_408_at_the_body_timeout(self) -> None:
        async def test() -> None:
            client = Client(body_timeout=2.0)
            client.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\nabc")
            await asyncio.sleep(1.5)
            client.send(b"d")  # a byte restarts the wait
            await asyncio.sleep(1.9)
            assert client.transport.take() == b""
            await asyncio.sleep(0.2)
            assert client.transport.take().startswith(b"HTTP/1.1 408 ")
            assert client.transport.closed

        run(test)


class TestDrain:
    def test_an_idle_connection_lingers_then_closes_gently(self) -> None:
        async def test() -> None:
            client = Client()
            grace = client.ctx.drain_grace
            client.ctx.begin_drain()
            await asyncio.sleep(grace * 0.99)
            assert not client.transport.eof_written
            await asyncio.sleep(grace * 0.02)
            assert client.transport.eof_written  # FIN first: the client may be sending
            assert not client.transport.closed
            client.send(GET)  # arrives after our FIN: dropped
            client.eof()
            await client.settle()
            assert client.transport.closed
            assert client.transport.take() == b""

        run(test)

    def test_a_request_that_arrives_while_lingering_is_served_with_close(self) -> None:
        async def test() -> None:
            client = Client()
            client.ctx.begin_drain()
            await asyncio.sleep(client.ctx.drain_grace / 2)
            client.send(GET)
            response = await client.response()
            assert response.startswith(b"HTTP/1.1 200 ")
            assert b"connection: close\r\n" in response
            assert client.transport.closed

        run(test)

    def test_a_half_closed_connection_closes_after_the_grace(self) -> None:
        async def test() -> None:
            client = Client()
            grace = client.ctx.drain_grace
            client.ctx.begin_drain()
            await asyncio.sleep(grace * 1.01)
            assert client.transport.eof_written and not client.transport.closed
            await asyncio.sleep(grace)  # the client never closes
            assert client.transport.closed

        run(test)

    def test_a_one_shot_connection_drained_at_the_request_limit_serves_its_reuse(self) -> None:
        async def test() -> None:
            client = Client()
            client.send(GET)
            await client.response()
            client.ctx.begin_drain()  # as the limit does, as a reload does
            await client.settle()
            assert not client.transport.eof_written
            client.send(GET)
            assert b"connection: close\r\n" in await client.response()

        run(test)

    def test_a_busy_connection_answers_with_close(self) -> None:
        release = asyncio.Event()

        async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                await release.wait()
                await hello(scope, receive, send)

        async def test() -> None:
            client = Client(slow)
            client.send(GET)
            await client.settle()
            client.ctx.begin_drain()
            release.set()
            response = await client.response()
            assert b"connection: close\r\n" in response
            assert client.transport.closed

        run(test)


class TestSwitching:
    def test_prior_knowledge_with_the_preface_split_anywhere(self) -> None:
        for split in range(1, len(PREFACE)):

            async def test(split: int = split) -> None:
                client = Client()
                peer = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
                peer.initiate_connection()
                peer.send_headers(1, h2_get("/h2"), end_stream=True)
                data = peer.data_to_send()
                assert data.startswith(PREFACE)
                client.send(data[:split])
                assert client.transport.take() == b""  # HTTP/1.1 would have answered 400
                client.send(data[split:])
                assert h2_body(peer, await client.response(), 1) == b"/h2"

            run(test)

    def test_h2c_upgrade_with_frames_behind_it_in_the_same_read(self) -> None:
        async def test() -> None:
            client = Client()
            peer = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
            settings = peer.initiate_upgrade_connection()
            peer.send_headers(3, h2_get("/second"), end_stream=True)
            client.send(
                b"GET /first HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                b"Upgrade: h2c\r\nHTTP2-Settings: " + settings + b"\r\n\r\n" + peer.data_to_send()
            )
            response = await client.response()
            head, frames = response.split(b"\r\n\r\n", 1)
            assert head.startswith(b"HTTP/1.1 101 ")
            events = peer.receive_data(frames)
            bodies = {e.stream_id: e.data for e in events if isinstance(e, h2.events.DataReceived)}
            assert bodies == {1: b"/first", 3: b"/second"}

        run(test)

    def test_websocket_frames_in_the_same_read_as_the_upgrade(self) -> None:
        async def test() -> None:
            client = Client()
            peer = WSPeer(ConnectionType.CLIENT)
            key = base64.b64encode(os.urandom(16))
            client.send(
                b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "
                + key
                + b"\r\n\r\n"
                + peer.send(TextMessage("one"))
                + peer.send(TextMessage("two"))
            )
            head, frames = (await client.response()).split(b"\r\n\r\n", 1)
            assert head.startswith(b"HTTP/1.1 101 ")
            peer.receive_data(frames)
            assert [e.data for e in peer.events() if isinstance(e, TextMessage)] == ["one", "two"]

        run(test)

    def test_a_failed_websocket_half_closes_and_drops_what_follows(self) -> None:
        async def test() -> None:
            client = Client()
            key = base64.b64encode(os.urandom(16))
            client.send(
                b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n"
            )
            await client.response()
            client.send(b"\x81\x02hi")  # unmasked: 1002
            await client.settle()
            close = client.transport.take()
            assert close[0] == 0x88 and close[2:4] == struct.pack(">H", 1002)
            assert client.transport.eof_written and not client.transport.closed
            client.send(b"\x88\x80\x00\x00\x00\x00")  # the client's close: dropped
            client.eof()
            await client.settle()
            assert client.transport.closed

        run(test)


class TestFlowControl:
    def test_http2_stops_reading_while_the_client_does_not_read(self) -> None:
        async def test() -> None:
            client = Client()
            peer = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
            peer.initiate_connection()
            client.send(peer.data_to_send())
            await client.settle()
            client.connection.pause_writing()
            assert not client.transport.reading
            client.connection.resume_writing()
            assert client.transport.reading

        run(test)

    def test_http11_keeps_reading_while_the_client_does_not_read(self) -> None:
        async def test() -> None:
            client = Client()
            client.connection.pause_writing()
            assert client.transport.reading  # its EOF must still be seen
            client.connection.resume_writing()

        run(test)


def h2_get(path: str) -> list[tuple[str, str]]:
    return [(":method", "GET"), (":path", path), (":scheme", "http"), (":authority", "a")]


def h2_body(peer: h2.connection.H2Connection, data: bytes, stream_id: int) -> bytes:
    return b"".join(
        event.data
        for event in peer.receive_data(data)
        if isinstance(event, h2.events.DataReceived) and event.stream_id == stream_id
    )
