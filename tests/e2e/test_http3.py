"""HTTP/3 over QUIC against a real server, with aioquic's client as a library.

One worker in the test's loop, ``quic_bind`` on 127.0.0.1:0 with trustme
certificates. Covers the ASGI scope, bodies both ways, streaming, trailers,
early hints, push, WebSockets over HTTP/3 (RFC 9220), the keep-alive timeout,
graceful shutdown with GOAWAY, the stream limit, Retry, and Alt-Svc on the
TCP side.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
import pytest_asyncio
import trustme
import wsproto.events

from hypercorn.worker.serve import WorkerHooks, serve_sockets
from tests.e2e.conftest import make_config, scaled, serving
from tests.e2e.h3client import h3_connect

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("worker_class")]


scopes: list[dict[str, Any]] = []


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        return
    if scope["type"] == "websocket":
        scopes.append(scope)
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": message.get("text"), "bytes": None})
    scopes.append(scope)
    path = scope["path"]
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    headers = [(b"content-type", b"text/plain")]
    if path == "/echo":
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for n in range(5):
            await send({"type": "http.response.body", "body": b"part%d;" % n, "more_body": True})
            await anyio.sleep(0.01)
        await send({"type": "http.response.body", "body": b""})
    elif path == "/big":
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for _ in range(16):
            await send({"type": "http.response.body", "body": b"x" * 65536, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/trailers":
        await send(
            {"type": "http.response.start", "status": 200, "headers": headers, "trailers": True}
        )
        await send({"type": "http.response.body", "body": b"body"})
        await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")]})
    elif path == "/hints":
        await send({"type": "http.response.early_hint", "links": [b"</style.css>; rel=preload"]})
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"hinted"})
    elif path == "/push":
        await send({"type": "http.response.push", "path": "/pushed", "headers": []})
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"pusher"})
    elif path == "/slow":
        await anyio.sleep(0.5)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"slow done"})
    else:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"hello " + path.encode()})


@pytest_asyncio.fixture
async def server(tls_files: dict[str, str]) -> AsyncIterator[tuple[int, int]]:
    """(tcp port, quic port) of a server with HTTP/3."""
    scopes.clear()
    config = make_config(quic_bind=["127.0.0.1:0"], graceful_timeout=5, **tls_files)
    async with serving(app, config) as address:
        yield address.port, config._quic_addresses[0][1]


async def test_get_and_scope(server: tuple[int, int]) -> None:
    async with h3_connect(server[1]) as client:
        response = await client.request("GET", "/hello?x=1", headers=[(b"x-test", b"yes")])
    assert response.status == 200
    assert response.body == b"hello /hello"
    assert response.header(b"server") == b"hypercorn-h3"
    assert response.header(b"content-length") == b"12"
    scope = scopes[0]
    assert scope["http_version"] == "3"
    assert scope["scheme"] == "https"
    assert scope["query_string"] == b"x=1"
    assert (b"host", b"localhost") in scope["headers"]
    assert (b"x-test", b"yes") in scope["headers"]
    assert scope["client"][0] == "127.0.0.1"
    assert scope["server"] == ("127.0.0.1", server[1])


async def test_post_body_echoed(server: tuple[int, int]) -> None:
    payload = bytes(range(256)) * 1024  # 256 KiB, more than one flow-control window
    async with h3_connect(server[1]) as client:
        stream_id = client.open("POST", "/echo", end=False)
        for start in range(0, len(payload), 50000):
            client.send_body(stream_id, payload[start : start + 50000], False)
        client.send_body(stream_id, b"", True)
        response = await client.response(stream_id)
    assert response.status == 200
    assert response.body == payload


async def test_streaming_and_large_response(server: tuple[int, int]) -> None:
    async with h3_connect(server[1]) as client:
        streamed, big = await asyncio.gather(
            client.request("GET", "/stream"), client.request("GET", "/big")
        )
    assert streamed.body == b"part0;part1;part2;part3;part4;"
    assert len(streamed.chunks) >= 2
    assert streamed.header(b"content-length") is None
    assert big.body == b"x" * 65536 * 16


async def test_trailers_hints_push_head(server: tuple[int, int]) -> None:
    async with h3_connect(server[1]) as client:
        trailers = await client.request("GET", "/trailers", headers=[(b"te", b"trailers")])
        hints = await client.request("GET", "/hints")
        pushed = await client.request("GET", "/push")
        head = await client.request("HEAD", "/hello")
    assert trailers.body == b"body" and trailers.trailers == [(b"x-checksum", b"abc")]
    assert hints.interim == [[(b":status", b"103"), (b"link", b"</style.css>; rel=preload")]]
    assert hints.body == b"hinted"
    assert pushed.body == b"pusher"
    assert [dict(h)[b":path"] for h in pushed.pushes] == [b"/pushed"]
    assert head.status == 200 and head.body == b""


async def test_websocket_over_http3(server: tuple[int, int]) -> None:
    async with h3_connect(server[1]) as client:
        stream_id, response = await client.websocket("/ws")
        assert response.status == 200
        for n in range(2):
            client.ws_send(stream_id, wsproto.events.TextMessage(f"Hello {n}"))
            event = await client.ws_receive(stream_id)
            assert isinstance(event, wsproto.events.TextMessage) and event.data == f"Hello {n}"
        client.ws_send(stream_id, wsproto.events.CloseConnection(1000))
        event = await client.ws_receive(stream_id)
        assert isinstance(event, wsproto.events.CloseConnection) and event.code == 1000
    assert scopes[-1]["type"] == "websocket"
    assert scopes[-1]["http_version"] == "3"
    assert scopes[-1]["scheme"] == "wss"


async def test_alt_svc_on_tcp(server: tuple[int, int], ca: trustme.CA) -> None:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    for http2, version in ((False, "HTTP/1.1"), (True, "HTTP/2")):
        async with httpx.AsyncClient(verify=context, http2=http2) as client:
            response = await client.get(f"https://127.0.0.1:{server[0]}/")
        assert response.http_version == version
        assert response.headers["alt-svc"] == f'h3=":{server[1]}"; ma=3600'


async def test_idle_timeout_closes(tls_files: dict[str, str]) -> None:
    config = make_config(quic_bind=["127.0.0.1:0"], keep_alive_timeout=0.3, **tls_files)
    async with serving(app, config), h3_connect(config._quic_addresses[0][1]) as client:
        assert (await client.request("GET", "/")).status == 200
        event = await asyncio.wait_for(client.terminated, scaled(5))
        assert event.error_code == 0x100  # H3_NO_ERROR


@pytest.mark.worker_classes("asyncio")  # drives serve_sockets in the test's loop
async def test_graceful_shutdown_goaway(tls_files: dict[str, str]) -> None:
    config = make_config(quic_bind=["127.0.0.1:0"], graceful_timeout=5, **tls_files)
    sockets = config.create_sockets()
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        serve_sockets(
            app, config, sockets, shutdown_trigger=stop.wait, hooks=WorkerHooks(ready=ready.set)
        )
    )
    try:
        await asyncio.wait_for(ready.wait(), scaled(10))
        async with h3_connect(config._quic_addresses[0][1]) as client:
            stream_id = client.open("GET", "/slow")
            await wait_for(lambda: any(s["path"] == "/slow" for s in scopes))
            stop.set()
            await wait_for(lambda: client.goaway_ids != [])
            assert client.goaway_ids == [4]  # stream 0 is served, 4 on is not
            response = await client.response(stream_id)
            assert response.body == b"slow done"
            event = await asyncio.wait_for(client.terminated, scaled(5))
            assert event.error_code == 0x100  # H3_NO_ERROR
        await asyncio.wait_for(task, scaled(10))
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), scaled(10))
        sockets.close()


async def test_stream_limit(tls_files: dict[str, str]) -> None:
    config = make_config(quic_bind=["127.0.0.1:0"], h2_max_concurrent_streams=3, **tls_files)
    async with serving(app, config), h3_connect(config._quic_addresses[0][1]) as client:
        assert client._quic._remote_max_streams_bidi == 3
        responses = await asyncio.gather(*(client.request("GET", "/stream") for _ in range(9)))
    assert all(r.body == b"part0;part1;part2;part3;part4;" for r in responses)


async def test_retry(tls_files: dict[str, str]) -> None:
    config = make_config(quic_bind=["127.0.0.1:0"], quic_retry=True, **tls_files)
    async with serving(app, config), h3_connect(config._quic_addresses[0][1]) as client:
        assert (await client.request("GET", "/")).status == 200
        assert client._quic._retry_source_connection_id is not None  # a Retry came


async def wait_for(condition: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(scaled(timeout)):
        while not condition():
            await asyncio.sleep(0.01)
