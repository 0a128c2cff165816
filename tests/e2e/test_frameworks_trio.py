"""trio frameworks served by ``hypercorn -k trio``: quart-trio, and Starlette on trio (anyio)."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.cli_server import cli_server
from tests.e2e.conftest import scaled

pytestmark = pytest.mark.slow

QUART_TRIO_APP = """
    import sniffio
    from quart import request, websocket
    from quart_trio import QuartTrio

    app = QuartTrio(__name__)

    @app.post("/echo")
    async def echo():
        body = await request.get_data()
        return b"echo:" + body, 200, {"x-library": sniffio.current_async_library()}

    @app.websocket("/ws")
    async def ws():
        while True:
            message = await websocket.receive()
            await websocket.send(f"{sniffio.current_async_library()}:{message}")
"""

STARLETTE_APP = """
    import sniffio
    from starlette.applications import Starlette
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route, WebSocketRoute

    async def echo(request):
        body = await request.body()
        return Response(b"echo:" + body, headers={"x-library": sniffio.current_async_library()})

    async def stream(request):
        async def parts():
            for n in range(3):
                yield b"part%d;" % n
        return StreamingResponse(parts())

    async def ws(websocket):
        await websocket.accept()
        text = await websocket.receive_text()
        await websocket.send_text(f"{sniffio.current_async_library()}:{text}")
        await websocket.close()

    app = Starlette(routes=[
        Route("/echo", echo, methods=["POST"]),
        Route("/stream", stream),
        WebSocketRoute("/ws", ws),
    ])
"""


def _serve(tmp_path: Path, name: str, source: str) -> str:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    return f"{name}:app"


def _check_echo(url: str) -> None:
    with httpx.Client(timeout=scaled(10)) as client:
        response = client.post(f"{url}/echo", content=b"ping-body")
        http2 = httpx.Client(http1=False, http2=True, timeout=scaled(10))
        with http2:
            over_h2 = http2.post(f"{url}/echo", content=b"h2-body")
    assert (response.status_code, response.content) == (200, b"echo:ping-body")
    assert response.headers["x-library"] == "trio"  # the app runs on trio
    assert (over_h2.http_version, over_h2.content) == ("HTTP/2", b"echo:h2-body")


async def _check_websocket(url: str, path: str) -> None:
    async with connect(url.replace("http", "ws", 1) + path, open_timeout=scaled(10)) as ws:
        await ws.send("hello")
        assert await asyncio.wait_for(ws.recv(), scaled(5)) == "trio:hello"


@pytest.mark.asyncio
async def test_quart_trio_http_and_websocket(tmp_path: Path) -> None:
    app = _serve(tmp_path, "qt", QUART_TRIO_APP)
    with cli_server(app, "-k", "trio", cwd=tmp_path) as server:
        await asyncio.to_thread(_check_echo, server.url)
        await _check_websocket(server.url, "/ws")


@pytest.mark.asyncio
async def test_starlette_on_trio_http_stream_and_websocket(tmp_path: Path) -> None:
    app = _serve(tmp_path, "star", STARLETTE_APP)
    with cli_server(app, "-k", "trio", cwd=tmp_path) as server:
        await asyncio.to_thread(_check_echo, server.url)
        async with httpx.AsyncClient(timeout=scaled(10)) as client:
            streamed = await client.get(f"{server.url}/stream")
        assert streamed.content == b"part0;part1;part2;"
        await _check_websocket(server.url, "/ws")
