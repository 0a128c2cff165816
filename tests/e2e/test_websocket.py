"""WebSockets over HTTP/1.1 on a real socket, with the websockets client (and raw frames)."""

from __future__ import annotations

import asyncio
import base64
import os
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from wsproto.connection import Connection, ConnectionType
from wsproto.events import CloseConnection, Ping, TextMessage

from hypercorn.shared.errors import UnexpectedMessageError
from hypercorn.worker.asgi.websocket import WebSocketState
from hypercorn.worker.protocol.ws import CLOSE_TIMEOUT
from tests.e2e.conftest import Flag, ServerAddress, close_raw, open_raw, running_server, scaled

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("worker_class")]


def ws_url(address: ServerAddress, path: str = "/") -> str:
    return f"ws://{address.host}:{address.port}{path}"


async def open_ws(address: ServerAddress, path: str = "/", **options: Any) -> ClientConnection:
    options.setdefault("open_timeout", scaled(5))
    options.setdefault("close_timeout", scaled(5))
    return await connect(ws_url(address, path), **options)


async def echo_app(scope: Any, receive: Any, send: Any) -> None:
    assert scope["type"] == "websocket"
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "bytes": message["bytes"], "text": message["text"]})


class Recorder:
    """An app that runs ``body`` and keeps what it saw, for the test to check."""

    def __init__(self, body: Any) -> None:
        self.body = body
        self.seen: list[Any] = []
        self.done = Flag()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        try:
            await self.body(scope, receive, send, self.seen)
        finally:
            self.done.set()

    async def finished(self) -> None:
        await self.done.wait()


async def recv_closed(ws: ClientConnection) -> ConnectionClosed:
    """Read until the server closes; return the close."""
    with pytest.raises(ConnectionClosed) as info:
        while True:
            await asyncio.wait_for(ws.recv(), scaled(5))
    return info.value


class TestEcho:
    async def test_text_and_bytes(self) -> None:
        async with running_server(echo_app) as address, await open_ws(address) as ws:
            await ws.send("héllo")
            assert await asyncio.wait_for(ws.recv(), scaled(5)) == "héllo"
            await ws.send(b"\x00\xff" * 40000)
            assert await asyncio.wait_for(ws.recv(), scaled(5)) == b"\x00\xff" * 40000

    async def test_many_messages_in_order(self) -> None:
        async with running_server(echo_app) as address, await open_ws(address) as ws:
            for index in range(200):
                await ws.send(str(index))
            got = [await asyncio.wait_for(ws.recv(), scaled(5)) for _ in range(200)]
            assert got == [str(index) for index in range(200)]

    async def test_scope(self) -> None:
        async def body(scope: Any, receive: Any, send: Any, seen: list[Any]) -> None:
            seen.append(scope)
            await receive()
            await send({"type": "websocket.close"})

        app = Recorder(body)
        async with running_server(app) as address:
            with pytest.raises(InvalidStatus):
                await open_ws(address, "/a%20b?x=1", subprotocols=["one", "two"])
            await app.finished()
        [scope] = app.seen
        assert scope["type"] == "websocket"
        assert scope["scheme"] == "ws"
        assert scope["http_version"] == "1.1"
        assert (scope["path"], scope["raw_path"], scope["query_string"]) == (
            "/a b",
            b"/a%20b",
            b"x=1",
        )
        assert scope["subprotocols"] == ["one", "two"]
        assert "websocket.http.response" in scope["extensions"]
        assert scope["client"][0] == "127.0.0.1"
        assert (b"upgrade", b"websocket") in [(n, v.lower()) for n, v in scope["headers"]]

    async def test_permessage_deflate(self) -> None:
        async with (
            running_server(echo_app) as address,
            await open_ws(address, compression="deflate") as ws,
        ):
            extensions = ws.protocol.extensions
            assert [extension.name for extension in extensions] == ["permessage-deflate"]
            text = "compressible " * 5000
            await ws.send(text)
            assert await asyncio.wait_for(ws.recv(), scaled(5)) == text

    async def test_http_requests_still_served_on_the_same_server(self) -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"plain"})
            else:
                await echo_app(scope, receive, send)

        async with running_server(app) as address:
            reader, writer = await open_raw(address)
            writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), scaled(5))
            assert head.startswith(b"HTTP/1.1 200")
            await close_raw(writer)
            async with await open_ws(address) as ws:
                await ws.send("x")
                assert await asyncio.wait_for(ws.recv(), scaled(5)) == "x"


class TestHandshake:
    async def test_subprotocol_and_headers(self) -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "websocket":
                return
            await receive()
            await send(
                {
                    "type": "websocket.accept",
                    "subprotocol": "two",
                    "headers": [(b"x-extra", b"yes")],
                }
            )
            await receive()

        async with (
            running_server(app) as address,
            await open_ws(address, subprotocols=["one", "two"]) as ws,
        ):
            assert ws.subprotocol == "two"
            assert ws.response is not None
            assert ws.response.headers["x-extra"] == "yes"
            assert ws.response.headers["server"] == "hypercorn-wsproto"

    async def test_close_before_accept_is_403(self) -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "websocket":
                await receive()
                await send({"type": "websocket.close", "code": 1000})

        async with running_server(app) as address:
            with pytest.raises(InvalidStatus) as info:
                await open_ws(address)
        assert info.value.response.status_code == 403

    async def test_denial_response(self) -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "websocket":
                return
            await receive()
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": 401,
                    "headers": [(b"content-type", b"text/plain")],
                }
            )
            await send({"type": "websocket.http.response.body", "body": b"go ", "more_body": True})
            await send({"type": "websocket.http.response.body", "body": b"away"})

        async with running_server(app) as address:
            with pytest.raises(InvalidStatus) as info:
                await open_ws(address)
        response = info.value.response
        assert response.status_code == 401
        assert response.body == b"go away"

    async def test_app_returning_without_answer_is_500(self) -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "websocket":
                await receive()

        async with running_server(app) as address:
            with pytest.raises(InvalidStatus) as info:
                await open_ws(address)
        assert info.value.response.status_code == 500

    async def test_app_crash_before_accept_is_500(self) -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "websocket":
                raise RuntimeError("boom")

        async with running_server(app) as address:
            with pytest.raises(InvalidStatus) as info:
                await open_ws(address)
        assert info.value.response.status_code == 500

    @pytest.mark.parametrize(
        ("fields", "status"),
        [
            (b"Sec-WebSocket-Version: 13\r\n", 400),
            (b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 7\r\n", 426),
        ],
    )
    async def test_bad_handshake_answered_without_the_app(self, fields: bytes, status: int) -> None:
        calls: list[Any] = []

        async def app(scope: Any, receive: Any, send: Any) -> None:
            calls.append(scope)

        async with running_server(app) as address:
            reader, writer = await open_raw(address)
            writer.write(
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                + fields
                + b"\r\n"
            )
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), scaled(5))
            await close_raw(writer)
        assert head.startswith(b"HTTP/1.1 %d " % status)
        assert [scope["type"] for scope in calls] == ["lifespan"] or calls == []


class TestClosing:
    async def test_app_closes_with_code_and_reason(self) -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "websocket":
                return
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": 4321, "reason": "done here"})

        async with running_server(app) as address:
            ws = await open_ws(address)
            closed = await recv_closed(ws)
        assert closed.rcvd is not None
        assert (closed.rcvd.code, closed.rcvd.reason) == (4321, "done here")

    async def test_client_close_reaches_the_app(self) -> None:
        async def body(scope: Any, receive: Any, send: Any, seen: list[Any]) -> None:
            await receive()
            await send({"type": "websocket.accept"})
            seen.append(await receive())
            seen.append(await receive())
            seen.append(await receive())  # disconnect is repeated

        app = Recorder(body)
        async with running_server(app) as address:
            ws = await open_ws(address)
            await ws.send("last words")
            await ws.close(4001, "bye")
            await app.finished()
        assert app.seen[0] == {"type": "websocket.receive", "bytes": None, "text": "last words"}
        assert (
            app.seen[1]
            == app.seen[2]
            == {
                "type": "websocket.disconnect",
                "code": 4001,
                "reason": "bye",
            }
        )

    async def test_lost_connection_is_1006(self) -> None:
        async def body(scope: Any, receive: Any, send: Any, seen: list[Any]) -> None:
            await receive()
            await send({"type": "websocket.accept"})
            seen.append(await receive())

        app = Recorder(body)
        async with running_server(app) as address:
            ws = await open_ws(address)
            ws.transport.abort()
            await app.finished()
        assert app.seen == [{"type": "websocket.disconnect", "code": 1006, "reason": ""}]

    async def test_app_crash_is_1011(self) -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "websocket":
                return
            await receive()
            await send({"type": "websocket.accept"})
            raise RuntimeError("boom")

        async with running_server(app) as address:
            ws = await open_ws(address)
            closed = await recv_closed(ws)
        assert closed.rcvd is not None
        assert closed.rcvd.code == 1011

    async def test_app_return_is_1000(self) -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "websocket":
                await receive()
                await send({"type": "websocket.accept"})

        async with running_server(app) as address:
            ws = await open_ws(address)
            closed = await recv_closed(ws)
        assert closed.rcvd is not None
        assert closed.rcvd.code == 1000

    async def test_messages_after_close_are_ignored(self) -> None:
        async def body(scope: Any, receive: Any, send: Any, seen: list[Any]) -> None:
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": 1000})
            await send({"type": "websocket.send", "text": "ignored"})
            await send({"type": "websocket.close", "code": 1000})
            seen.append(await receive())
            await send({"type": "websocket.send", "text": "ignored too"})
            seen.append("finished")

        app = Recorder(body)
        async with running_server(app) as address:
            ws = await open_ws(address)
            closed = await recv_closed(ws)
            await app.finished()
        assert closed.rcvd is not None
        assert closed.rcvd.code == 1000
        assert app.seen[0]["type"] == "websocket.disconnect"
        assert app.seen[1] == "finished"

    async def test_server_shutdown_is_1001(self) -> None:
        async def body(scope: Any, receive: Any, send: Any, seen: list[Any]) -> None:
            await receive()
            await send({"type": "websocket.accept"})
            seen.append(await receive())

        app = Recorder(body)
        async with running_server(app, graceful_timeout=scaled(5)) as address:
            ws = await open_ws(address)
        # Leaving the block drained the server: the WebSocket was closed with 1001.
        await asyncio.wait_for(ws.wait_closed(), scaled(5))
        assert ws.close_code == 1001
        assert app.seen == [{"type": "websocket.disconnect", "code": 1001, "reason": ""}]


class TestLimits:
    async def test_message_too_big_is_1009(self) -> None:
        async def body(scope: Any, receive: Any, send: Any, seen: list[Any]) -> None:
            await receive()
            await send({"type": "websocket.accept"})
            while (message := await receive())["type"] != "websocket.disconnect":
                seen.append(len(message["bytes"]))
            seen.append(message)

        app = Recorder(body)
        async with running_server(app, websocket_max_message_size=1000) as address:
            ws = await open_ws(address, compression=None)
            await ws.send(b"x" * 1000)
            await ws.send(b"x" * 1001)
            closed = await recv_closed(ws)
            await app.finished()
        assert closed.rcvd is not None
        assert closed.rcvd.code == 1009
        assert app.seen[0] == 1000
        assert app.seen[1]["code"] == 1009

    async def test_ping_interval(self) -> None:
        async with running_server(echo_app, websocket_ping_interval=0.05) as address:
            peer, reader, writer = await raw_websocket(address)
            events: list[Any] = []
            while len([e for e in events if isinstance(e, Ping)]) < 2:
                data = await asyncio.wait_for(reader.read(65536), scaled(5))
                assert data
                peer.receive_data(data)
                events += list(peer.events())
            await close_raw(writer)

    async def test_invalid_utf8_is_1007(self) -> None:
        async def body(scope: Any, receive: Any, send: Any, seen: list[Any]) -> None:
            await receive()
            await send({"type": "websocket.accept"})
            seen.append(await receive())
            seen.append(await receive())

        app = Recorder(body)
        async with running_server(app) as address:
            peer, reader, writer = await raw_websocket(address)
            # A masked text frame whose payload is not UTF-8.
            writer.write(bytes([0x81, 0x82, 1, 2, 3, 4, 0xC3 ^ 1, 0x28 ^ 2]))
            events: list[Any] = []
            while not events:
                data = await asyncio.wait_for(reader.read(65536), scaled(5))
                assert data
                peer.receive_data(data)
                events += list(peer.events())
            await close_raw(writer)
            await app.finished()
        assert isinstance(events[0], CloseConnection)
        assert events[0].code == 1007
        assert app.seen[0]["text"] == "hello"
        assert app.seen[1]["code"] == 1007


class TestFailing:
    """RFC 6455 sections 7.1.1 and 7.1.7: a failed connection closes at once."""

    @pytest.mark.parametrize(
        ("frame", "code"),
        [
            pytest.param(bytes([0x81, 0x02]) + b"hi", 1002, id="unmasked"),
            pytest.param(bytes([0xC1, 0x80, 0, 0, 0, 0]), 1002, id="rsv-bits"),
            pytest.param(bytes([0x88, 0x82, 0, 0, 0, 0, 0x03, 0xEC]), 1002, id="close-1004"),
            pytest.param(bytes([0x81, 0x82, 0, 0, 0, 0, 0xC3, 0x28]), 1007, id="utf8"),
        ],
    )
    async def test_server_closes_tcp_without_waiting(self, frame: bytes, code: int) -> None:
        async with running_server(echo_app) as address:
            peer, reader, writer = await raw_websocket(address)
            writer.write(frame)
            events: list[Any] = []
            data = b"-"
            while not any(isinstance(event, CloseConnection) for event in events):
                data = await asyncio.wait_for(reader.read(65536), scaled(5))
                assert data
                peer.receive_data(data)
                events += list(peer.events())
            close = next(event for event in events if isinstance(event, CloseConnection))
            assert close.code == code
            writer.write(peer.send(close.response()))  # the client answers, as Autobahn does
            loop = asyncio.get_running_loop()
            started = loop.time()
            while data:  # the server's EOF, not CLOSE_TIMEOUT (5 s) later
                data = await asyncio.wait_for(reader.read(65536), CLOSE_TIMEOUT / 2)
            assert loop.time() - started < CLOSE_TIMEOUT / 2
            await close_raw(writer)


class TestMessageOrder:
    """``UnexpectedMessageError(state, type)`` for messages out of order."""

    @pytest.mark.parametrize(
        ("accept_first", "message", "state"),
        [
            (False, {"type": "websocket.send", "text": "x"}, WebSocketState.HANDSHAKE),
            (False, {"type": "websocket.http.response.body"}, WebSocketState.HANDSHAKE),
            (True, {"type": "websocket.accept"}, WebSocketState.CONNECTED),
            (
                True,
                {"type": "websocket.http.response.start", "status": 200},
                WebSocketState.CONNECTED,
            ),
            (True, {"type": "http.response.start", "status": 200}, WebSocketState.CONNECTED),
        ],
    )
    async def test_out_of_order(
        self, accept_first: bool, message: dict[str, Any], state: WebSocketState
    ) -> None:
        async def body(scope: Any, receive: Any, send: Any, seen: list[Any]) -> None:
            await receive()
            if accept_first:
                await send({"type": "websocket.accept"})
            try:
                await send(message)
            except UnexpectedMessageError as error:
                seen.append(error)
            await send({"type": "websocket.close", "code": 1000})

        app = Recorder(body)
        async with running_server(app) as address:
            if accept_first:
                ws = await open_ws(address)
                await recv_closed(ws)
            else:
                with pytest.raises(InvalidStatus):
                    await open_ws(address)
            await app.finished()
        [error] = app.seen
        assert error.state is state
        assert error.message_type == message["type"]


async def raw_websocket(
    address: ServerAddress,
) -> tuple[Connection, asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a WebSocket by hand: the test then speaks frames through wsproto."""
    reader, writer = await open_raw(address)
    key = base64.b64encode(os.urandom(16))
    writer.write(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n"
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), scaled(5))
    assert head.startswith(b"HTTP/1.1 101 ")
    peer = Connection(ConnectionType.CLIENT)
    writer.write(peer.send(TextMessage("hello")))
    return peer, reader, writer
