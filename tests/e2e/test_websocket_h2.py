"""WebSockets over HTTP/2 (RFC 8441) on a real socket: the h2 library as the client."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import pytest
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage

from tests.e2e.conftest import close_raw, open_raw, running_server, scaled
from tests.e2e.test_websocket import echo_app

# Nothing here depends on the transport: asyncio stands for uvloop too.
pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.usefixtures("worker_class"),
    pytest.mark.worker_classes("asyncio", "trio"),
]


class H2Client:
    """A prior-knowledge HTTP/2 client that opens WebSockets by extended CONNECT."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self.events: list[Any] = []

    async def start(self) -> None:
        self.conn.initiate_connection()
        self.flush()
        await self.until(lambda e: isinstance(e, h2.events.RemoteSettingsChanged))

    def flush(self) -> None:
        self.writer.write(self.conn.data_to_send())

    async def until(self, predicate: Any) -> Any:
        while True:
            for event in self.events:
                if predicate(event):
                    self.events.remove(event)
                    return event
            data = await asyncio.wait_for(self.reader.read(65536), scaled(5))
            assert data, "connection closed"
            for event in self.conn.receive_data(data):
                if isinstance(event, h2.events.DataReceived):
                    self.conn.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                self.events.append(event)
            self.flush()

    def connect(
        self, path: bytes = b"/chat", extra: list[tuple[bytes, bytes]] | None = None
    ) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        self.conn.send_headers(
            stream_id,
            [
                (b":method", b"CONNECT"),
                (b":protocol", b"websocket"),
                (b":scheme", b"http"),
                (b":path", path),
                (b":authority", b"localhost"),
                (b"sec-websocket-version", b"13"),
                *(extra or []),
            ],
        )
        self.flush()
        return stream_id

    async def response(self, stream_id: int) -> dict[bytes, bytes]:
        event = await self.until(
            lambda e: isinstance(e, h2.events.ResponseReceived) and e.stream_id == stream_id
        )
        return dict(event.headers)

    async def frames(self, stream_id: int, ws: Connection) -> list[Any]:
        event = await self.until(
            lambda e: isinstance(e, h2.events.DataReceived) and e.stream_id == stream_id
        )
        ws.receive_data(event.data)
        return list(ws.events())


async def test_settings_enable_connect_protocol() -> None:
    async with running_server(echo_app) as address:
        reader, writer = await open_raw(address)
        client = H2Client(reader, writer)
        await client.start()
        assert client.conn.remote_settings.enable_connect_protocol == 1
        await close_raw(writer)


async def test_echo_over_a_stream() -> None:
    async with running_server(echo_app) as address:
        reader, writer = await open_raw(address)
        client = H2Client(reader, writer)
        await client.start()
        stream_id = client.connect()
        headers = await client.response(stream_id)
        assert headers[b":status"] == b"200"
        assert b"sec-websocket-accept" not in headers
        ws = Connection(ConnectionType.CLIENT)
        client.conn.send_data(stream_id, ws.send(TextMessage("over h2")))
        client.flush()
        events = await client.frames(stream_id, ws)
        assert [(type(e), e.data) for e in events] == [(TextMessage, "over h2")]
        frame = ws.send(BytesMessage(b"\x01" * 40000))
        for start in range(0, len(frame), 16384):
            client.conn.send_data(stream_id, frame[start : start + 16384])
        client.flush()
        got = b""
        while len(got) < 40000:
            got += b"".join(e.data for e in await client.frames(stream_id, ws))
        assert got == b"\x01" * 40000
        # Close: the server echoes the close and ends the stream.
        client.conn.send_data(stream_id, ws.send(CloseConnection(1000, "bye")))
        client.flush()
        [close] = await client.frames(stream_id, ws)
        assert isinstance(close, CloseConnection)
        assert close.code == 1000
        await client.until(
            lambda e: (
                isinstance(e, h2.events.StreamEnded | h2.events.StreamReset)
                and e.stream_id == stream_id
            )
        )
        await close_raw(writer)


async def test_scope_and_subprotocol() -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        seen.append(scope)
        await receive()
        await send({"type": "websocket.accept", "subprotocol": "chat"})
        await send({"type": "websocket.close", "code": 4000})

    async with running_server(app) as address:
        reader, writer = await open_raw(address)
        client = H2Client(reader, writer)
        await client.start()
        stream_id = client.connect(b"/p?q=1", [(b"sec-websocket-protocol", b"chat, x")])
        headers = await client.response(stream_id)
        assert headers[b"sec-websocket-protocol"] == b"chat"
        ws = Connection(ConnectionType.CLIENT)
        [close] = await client.frames(stream_id, ws)
        assert close.code == 4000
        await close_raw(writer)
    [scope] = seen
    assert scope["http_version"] == "2"
    assert (scope["path"], scope["query_string"]) == ("/p", b"q=1")
    assert scope["subprotocols"] == ["chat", "x"]
    assert scope["scheme"] == "ws"


async def test_close_before_accept_is_403() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.close"})

    async with running_server(app) as address:
        reader, writer = await open_raw(address)
        client = H2Client(reader, writer)
        await client.start()
        stream_id = client.connect()
        headers = await client.response(stream_id)
        assert headers[b":status"] == b"403"
        await close_raw(writer)


async def test_plain_connect_is_still_refused() -> None:
    async with running_server(echo_app) as address:
        reader, writer = await open_raw(address)
        client = H2Client(reader, writer)
        await client.start()
        stream_id = client.conn.get_next_available_stream_id()
        client.conn.send_headers(
            stream_id, [(b":method", b"CONNECT"), (b":authority", b"example.com:443")]
        )
        client.flush()
        headers = await client.response(stream_id)
        assert headers[b":status"] == b"405"
        await close_raw(writer)


async def test_ping_interval_over_a_stream() -> None:
    async with running_server(echo_app, websocket_ping_interval=0.05) as address:
        reader, writer = await open_raw(address)
        client = H2Client(reader, writer)
        await client.start()
        stream_id = client.connect()
        await client.response(stream_id)
        ws = Connection(ConnectionType.CLIENT)
        pings = 0
        while pings < 2:
            pings += sum(isinstance(e, Ping) for e in await client.frames(stream_id, ws))
        await close_raw(writer)


async def test_server_shutdown_is_1001() -> None:
    async with running_server(echo_app, graceful_timeout=scaled(1)) as address:
        reader, writer = await open_raw(address)
        client = H2Client(reader, writer)
        await client.start()
        stream_id = client.connect()
        await client.response(stream_id)
        ws = Connection(ConnectionType.CLIENT)

        async def answer_close() -> int:
            while True:
                for event in await client.frames(stream_id, ws):
                    if isinstance(event, CloseConnection):
                        # The h2 client refuses to send once it has seen GOAWAY.
                        with contextlib.suppress(h2.exceptions.ProtocolError):
                            client.conn.send_data(stream_id, ws.send(event.response()))
                            client.flush()
                        return int(event.code)

        task = asyncio.create_task(answer_close())
    # Leaving the block drained the server: the WebSocket was closed with 1001.
    assert await asyncio.wait_for(task, scaled(5)) == 1001
    await close_raw(writer)
