"""HTTP/2 over real sockets: negotiation, ASGI scope and extensions, flow control, limits.

Clients: httpx (h2 over TLS by ALPN, and h2c by prior knowledge) and the h2
library as a raw client over an asyncio stream, which lets the tests hold
windows shut and read frames one by one.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import struct
from collections.abc import AsyncIterator
from typing import Any

import anyio
import h2.config
import h2.connection
import h2.events
import h2.settings
import httpx
import pytest
import pytest_asyncio
import trustme

from tests.e2e.conftest import (
    Flag,
    ServerAddress,
    close_raw,
    open_raw,
    read_response,
    running_server,
    scaled,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("worker_class")]

scopes: list[dict[str, Any]] = []
progress: list[int] = []
# Events a test hands to ``app``: "slow" is set when /slow begins.
signals: dict[str, Flag] = {}
FLOOD_CHUNKS = 2048  # 32 MiB: more than loopback socket buffers hold


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    scopes.append(scope)
    path = scope["path"]
    if path == "/echo":
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
    elif path == "/big":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(64):
            await send({"type": "http.response.body", "body": b"x" * 16384, "more_body": True})
            progress.append(1)
        await send({"type": "http.response.body", "body": b""})
    elif path == "/flood":
        # A send loop that never suspends by itself: only back-pressure stops it.
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(FLOOD_CHUNKS):
            await send({"type": "http.response.body", "body": b"f" * 16384, "more_body": True})
            progress.append(1)
        await send({"type": "http.response.body", "body": b""})
    elif path == "/slow":
        if "slow" in signals:
            signals["slow"].set()
        await anyio.sleep(0.3)  # a slow application, still at work when the server stops
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"slow"})
    elif path == "/extras":
        await send({"type": "http.response.early_hint", "links": [b"</style.css>; rel=preload"]})
        await send({"type": "http.response.push", "path": "/pushed", "headers": []})
        trailers = "http.response.trailers" in scope["extensions"]
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"connection", b"keep-alive"), (b"content-type", b"text/plain")],
                "trailers": trailers,
            }
        )
        await send({"type": "http.response.body", "body": b"main"})
        if trailers:
            await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"42")]})
    else:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": path.encode()})


class RawClient:
    """An h2 client connection over an asyncio stream.

    h2 stops reading a connection once it has received a GOAWAY, which would
    hide the streams a graceful GOAWAY lets finish: GOAWAY frames are taken
    out here and reported as ``ConnectionTerminated`` events.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buffer = b""
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )

    def _split_goaways(self, data: bytes) -> tuple[bytes, list[h2.events.Event]]:
        self.buffer += data
        passed, goaways = [], []
        while len(self.buffer) >= 9:
            size = 9 + int.from_bytes(self.buffer[:3], "big")
            if len(self.buffer) < size:
                break
            frame, self.buffer = self.buffer[:size], self.buffer[size:]
            if frame[3] == 0x7:
                event = h2.events.ConnectionTerminated()
                event.last_stream_id = int.from_bytes(frame[9:13], "big") & 0x7FFFFFFF
                event.error_code = int.from_bytes(frame[13:17], "big")  # type: ignore[assignment]
                goaways.append(event)
            else:
                passed.append(frame)
        return b"".join(passed), goaways

    def flush(self) -> None:
        self.writer.write(self.conn.data_to_send())

    async def events(self) -> list[h2.events.Event]:
        """The events of the next read ([] at EOF)."""
        data = await asyncio.wait_for(self.reader.read(65536), scaled(5))
        if not data:
            return []
        data, goaways = self._split_goaways(data)  # a server sends frames only
        events = self.conn.receive_data(data) if data else []
        self.flush()
        # Not EOF, even if only part of a frame came: never an empty list here.
        return [*events, *goaways] or [h2.events.PingAckReceived(ping_data=bytes(8))]

    async def until(self, kind: type[h2.events.Event]) -> list[h2.events.Event]:
        """Read until an event of ``kind`` (included) or EOF."""
        seen: list[h2.events.Event] = []
        while True:
            events = await self.events()
            seen += events
            if not events or any(isinstance(event, kind) for event in events):
                return seen

    def request(self, path: bytes, *, end: bool = True, extra: Any = ()) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        headers = [
            (b":method", b"GET" if end else b"POST"),
            (b":scheme", b"http"),
            (b":authority", b"example.test:8080"),
            (b":path", path),
            *extra,
        ]
        self.conn.send_headers(stream_id, headers, end_stream=end)
        self.flush()
        return stream_id


@pytest_asyncio.fixture
async def raw_pair() -> AsyncIterator[tuple[ServerAddress, Any]]:
    async def connect(address: ServerAddress, settings: Any = None) -> RawClient:
        client = RawClient(*await open_raw(address))
        client.conn.initiate_connection()
        if settings:
            client.conn.update_settings(settings)
        client.flush()
        opened.append(client)
        return client

    opened: list[RawClient] = []
    yield connect  # type: ignore[misc]
    for client in opened:
        await close_raw(client.writer)


def _body(events: list[h2.events.Event], stream_id: int) -> bytes:
    return b"".join(
        event.data
        for event in events
        if isinstance(event, h2.events.DataReceived) and event.stream_id == stream_id
    )


async def test_prior_knowledge_scope_and_body() -> None:
    scopes.clear()
    async with (
        running_server(app) as server,
        httpx.AsyncClient(http1=False, http2=True) as client,
    ):
        response = await client.get(f"{server.url}/hello?x=1", headers={"x-a": "b"})
        echo = await client.post(f"{server.url}/echo", content=b"y" * 100_000)
    assert response.http_version == "HTTP/2" and response.text == "/hello"
    assert response.headers["server"] == "hypercorn-h2"
    assert echo.content == b"y" * 100_000
    scope = scopes[0]
    assert scope["http_version"] == "2" and scope["scheme"] == "http"
    assert scope["query_string"] == b"x=1"
    headers = dict(scope["headers"])
    assert headers[b"host"] == f"{server.host}:{server.port}".encode()
    assert headers[b"x-a"] == b"b" and not any(name.startswith(b":") for name in headers)
    assert "http.response.push" in scope["extensions"]
    assert "http.response.trailers" not in scope["extensions"]


async def test_alpn_h2_over_tls(ca: trustme.CA, tls_files: dict[str, str]) -> None:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    async with (
        running_server(app, **tls_files) as server,
        httpx.AsyncClient(http2=True, verify=context) as client,
    ):
        responses = await asyncio.gather(*(client.get(f"{server.url}/n{i}") for i in range(20)))
    assert {response.http_version for response in responses} == {"HTTP/2"}
    assert [response.text for response in responses] == [f"/n{i}" for i in range(20)]


async def test_upgrade_h2c_serves_the_request_as_stream_one() -> None:
    scopes.clear()
    client = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding=None)
    )
    settings = client.initiate_upgrade_connection()
    async with running_server(app) as server:
        reader, writer = await open_raw(server)
        writer.write(
            b"GET /up HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: " + settings + b"\r\n\r\n"
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), scaled(5))
        assert head.startswith(b"HTTP/1.1 101 ")
        writer.write(client.data_to_send())
        events: list[h2.events.Event] = []
        while not any(isinstance(event, h2.events.StreamEnded) for event in events):
            data = await asyncio.wait_for(reader.read(65536), scaled(5))
            assert data
            events += client.receive_data(data)
            writer.write(client.data_to_send())
        await close_raw(writer)
    assert _body(events, 1) == b"/up"
    assert scopes[0]["http_version"] == "2"


def _settings(*settings: tuple[int, int]) -> bytes:
    payload = b"".join(struct.pack(">HI", identifier, value) for identifier, value in settings)
    return base64.urlsafe_b64encode(payload).rstrip(b"=")


@pytest.mark.parametrize(
    "field",
    [
        pytest.param(b"HTTP2-Settings: !!!!\r\n", id="not base64url"),
        pytest.param(b"HTTP2-Settings: AAMAAAA\r\n", id="5 bytes"),
        pytest.param(b"HTTP2-Settings: " + _settings((2, 2)) + b"\r\n", id="ENABLE_PUSH=2"),
        pytest.param(
            b"HTTP2-Settings: " + _settings((4, 2**31)) + b"\r\n", id="INITIAL_WINDOW_SIZE=2^31"
        ),
        pytest.param(b"HTTP2-Settings: " + _settings((5, 100)) + b"\r\n", id="MAX_FRAME_SIZE=100"),
        pytest.param(b"", id="absent"),
        pytest.param(b"HTTP2-Settings: \r\nHTTP2-Settings: \r\n", id="repeated"),
    ],
)
async def test_upgrade_h2c_with_bad_settings_is_served_over_http11(field: bytes) -> None:
    async with running_server(app) as server:
        reader, writer = await open_raw(server)
        writer.write(
            b"GET /plain HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\n" + field + b"\r\n"
        )
        head, body = await read_response(reader)
        await close_raw(writer)
    assert head.startswith(b"HTTP/1.1 200 ")
    assert body == b"/plain"


async def test_push_early_hint_and_trailers(raw_pair: Any) -> None:
    async with running_server(app) as server:
        client = await raw_pair(server)
        stream_id = client.request(b"/extras", extra=[(b"te", b"trailers")])
        events: list[h2.events.Event] = []
        while sum(isinstance(e, h2.events.StreamEnded) for e in events) < 2:
            more = await client.events()  # the response and the pushed one, in any reads
            assert more
            events += more
    informational = [e for e in events if isinstance(e, h2.events.InformationalResponseReceived)]
    assert informational and dict(informational[0].headers)[b":status"] == b"103"
    promise = next(e for e in events if isinstance(e, h2.events.PushedStreamReceived))
    assert dict(promise.headers)[b":path"] == b"/pushed"
    assert dict(promise.headers)[b":authority"] == b"example.test:8080"
    response = next(e for e in events if isinstance(e, h2.events.ResponseReceived))
    assert b"connection" not in dict(response.headers)  # connection-specific: stripped
    trailers = next(e for e in events if isinstance(e, h2.events.TrailersReceived))
    assert dict(trailers.headers) == {b"x-checksum": b"42"}
    assert _body(events, stream_id) == b"main"
    assert _body(events, promise.pushed_stream_id) == b"/pushed"


async def test_push_dropped_when_disabled(raw_pair: Any) -> None:
    async with running_server(app) as server:
        client = await raw_pair(server, {h2.settings.SettingCodes.ENABLE_PUSH: 0})
        client.request(b"/extras")
        events = await client.until(h2.events.StreamEnded)
    assert not any(isinstance(e, h2.events.PushedStreamReceived) for e in events)
    assert not any(isinstance(e, h2.events.TrailersReceived) for e in events)  # no te: trailers


async def _round_trip(client: RawClient) -> list[h2.events.Event]:
    """A PING and its ACK: the server has handled all the client sent before it,
    and what it sent in answer has been received first (returned, the ACK last)."""
    client.conn.ping(b"barrier!")
    client.flush()
    return await client.until(h2.events.PingAckReceived)


async def test_response_waits_for_the_window(raw_pair: Any) -> None:
    """The app's send blocks while the client's window is shut, and resumes with it."""
    progress.clear()
    async with running_server(app) as server:
        client = await raw_pair(server, {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 16384})
        stream_id = client.request(b"/big")
        received = 0
        while received < 16384:
            for event in await client.events():
                if isinstance(event, h2.events.DataReceived):
                    received += len(event.data)
        # Everything the server would send by now has come before the PING's ACK.
        more = await _round_trip(client)
        received += sum(len(e.data) for e in more if isinstance(e, h2.events.DataReceived))
        assert received == 16384 and len(progress) <= 2  # blocked on the window
        events: list[h2.events.Event] = []
        client.conn.acknowledge_received_data(received, stream_id)
        client.flush()
        while not any(isinstance(event, h2.events.StreamEnded) for event in events):
            batch = await client.events()
            assert batch
            for event in batch:
                if isinstance(event, h2.events.DataReceived):
                    client.conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
            client.flush()
            events += batch
    assert received + len(_body(events, stream_id)) == 64 * 16384 and len(progress) == 64


async def test_wide_windows_still_back_pressure_a_send_loop(raw_pair: Any) -> None:
    """With flow-control windows wide open, a client that does not read still
    stops an app that sends in a loop: responses of one loop tick share a write,
    but only up to a bound, so the transport's back-pressure reaches the app."""
    progress.clear()
    async with running_server(app) as server:
        wide = 2**31 - 1
        client = await raw_pair(server, {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: wide})
        client.conn.increment_flow_control_window(wide - 65535)
        stream_id = client.request(b"/flood")
        deadline = asyncio.get_running_loop().time() + scaled(5)
        while not progress and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(scaled(0.5))  # unchecked, the whole loop runs in far less
        assert 0 < len(progress) < FLOOD_CHUNKS  # held back by the unread socket
        received = 0
        ended = False
        while not ended:
            batch = await client.events()
            assert batch
            for event in batch:
                if isinstance(event, h2.events.DataReceived) and event.stream_id == stream_id:
                    received += len(event.data)
                ended = ended or isinstance(event, h2.events.StreamEnded)
    assert received == FLOOD_CHUNKS * 16384 and len(progress) == FLOOD_CHUNKS


async def test_request_body_window_follows_the_app(raw_pair: Any) -> None:
    """Body bytes the app has not read keep the client's windows shut."""
    gate = Flag()

    async def lazy(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await gate.app_wait()
        size = 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"%d" % size})

    async with running_server(lazy) as server:
        client = await raw_pair(server)
        stream_id = client.request(b"/upload", end=False)
        await client.events()  # the server's SETTINGS
        total = 200_000
        sent = 0
        window = client.conn.local_flow_control_window(stream_id)
        for _ in range(0, window, 16384):
            client.conn.send_data(stream_id, b"z" * min(16384, window - sent))
            sent = min(sent + 16384, window)
        client.flush()
        await _round_trip(client)  # a WINDOW_UPDATE for the data would come before the ack
        assert client.conn.local_flow_control_window(stream_id) == 0  # nothing given back
        gate.set()
        events: list[h2.events.Event] = []
        while sent < total:
            batch = await client.events()
            assert batch, "the window was never reopened"
            events += batch
            while window := min(
                client.conn.local_flow_control_window(stream_id), total - sent, 16384
            ):
                client.conn.send_data(stream_id, b"z" * window, end_stream=sent + window == total)
                sent += window
            client.flush()
        events += await client.until(h2.events.StreamEnded)
    assert _body(events, stream_id) == b"200000"


async def test_keep_alive_max_requests_sends_goaway(raw_pair: Any) -> None:
    async with running_server(app, keep_alive_max_requests=2) as server:
        client = await raw_pair(server)
        client.request(b"/a")
        second = client.request(b"/b")
        events = await client.until(h2.events.ConnectionTerminated)
        while await client.events():
            pass
        events += await client.events()
    goaway = next(e for e in events if isinstance(e, h2.events.ConnectionTerminated))
    assert goaway.error_code == 0 and goaway.last_stream_id == second


async def test_idle_connection_gets_goaway(raw_pair: Any) -> None:
    async with running_server(app, keep_alive_timeout=0.2) as server:
        client = await raw_pair(server)
        client.request(b"/a")
        events = await client.until(h2.events.ConnectionTerminated)
    assert any(isinstance(e, h2.events.ConnectionTerminated) for e in events)


async def test_graceful_shutdown_finishes_streams(raw_pair: Any) -> None:
    async def read_to_eof(client: RawClient) -> list[h2.events.Event]:
        seen: list[h2.events.Event] = []
        while events := await client.events():
            seen += events
        return seen

    signals["slow"] = started = Flag()
    async with running_server(app) as server:
        client = await raw_pair(server)
        stream_id = client.request(b"/slow")
        await started.wait()  # the stream is in the app
        reading = asyncio.create_task(read_to_eof(client))
    # Leaving the block stops the server: GOAWAY, the stream finishes, then EOF.
    events = await asyncio.wait_for(reading, scaled(5))
    goaway = next(e for e in events if isinstance(e, h2.events.ConnectionTerminated))
    assert goaway.error_code == 0 and goaway.last_stream_id == stream_id
    assert _body(events, stream_id) == b"slow"
