"""Real frameworks served unchanged: Starlette, FastAPI, Quart, Flask, Django."""

from __future__ import annotations

import asyncio
import socket
import textwrap
from pathlib import Path

import httpx
import pytest

from tests.cli_server import cli_server

pytestmark = pytest.mark.slow


def _check_echo(url: str) -> None:
    response = httpx.post(f"{url}/echo?name=x", content=b"ping-body", timeout=10)
    assert response.status_code == 200
    assert response.content == b"echo:ping-body"
    assert response.headers["x-framework"]
    assert response.headers["server"].startswith("hypercorn")


def _write(path: Path, source: str) -> None:
    path.write_text(textwrap.dedent(source))


def test_starlette(tmp_path: Path) -> None:
    _write(
        tmp_path / "star.py",
        """
        from starlette.applications import Starlette
        from starlette.responses import Response
        from starlette.routing import Route

        async def echo(request):
            body = await request.body()
            return Response(b"echo:" + body, headers={"x-framework": "starlette"})

        app = Starlette(routes=[Route("/echo", echo, methods=["POST"])])
        """,
    )
    with cli_server("star:app", cwd=tmp_path) as server:
        _check_echo(server.url)


def test_fastapi(tmp_path: Path) -> None:
    _write(
        tmp_path / "fast.py",
        """
        from fastapi import FastAPI, Request, Response

        app = FastAPI()

        @app.post("/echo")
        async def echo(request: Request) -> Response:
            body = await request.body()
            return Response(b"echo:" + body, headers={"x-framework": "fastapi"})
        """,
    )
    with cli_server("fast:app", cwd=tmp_path) as server:
        _check_echo(server.url)


def test_flask_wsgi(tmp_path: Path) -> None:
    _write(
        tmp_path / "flaskapp.py",
        """
        from flask import Flask, request

        app = Flask(__name__)

        @app.post("/echo")
        def echo():
            return b"echo:" + request.get_data(), 200, {"x-framework": "flask"}
        """,
    )
    with cli_server("flaskapp:app", cwd=tmp_path) as server:
        _check_echo(server.url)


DJANGO_PROJECT = """
    import os
    from django.conf import settings
    from django.http import HttpResponse
    from django.urls import path
    from django.views.decorators.csrf import csrf_exempt

    settings.configure(
        DEBUG=False,
        SECRET_KEY="test-only",
        ROOT_URLCONF=__name__,
        ALLOWED_HOSTS=["*"],
        MIDDLEWARE=[],
    )

    @csrf_exempt
    def echo(request):
        response = HttpResponse(b"echo:" + request.body)
        response["x-framework"] = "django"
        return response

    urlpatterns = [path("echo", echo)]
    """


@pytest.mark.parametrize("interface", ["asgi", "wsgi"])
def test_django(tmp_path: Path, interface: str) -> None:
    _write(
        tmp_path / "djproject.py",
        DJANGO_PROJECT
        + f"""
    from django.core.{interface} import get_{interface}_application
    application = get_{interface}_application()
    """,
    )
    with cli_server("djproject:application", cwd=tmp_path) as server:
        _check_echo(server.url)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.asyncio
async def test_quart_run_task() -> None:
    from quart import Quart, request

    app = Quart(__name__)

    @app.post("/echo")
    async def echo() -> tuple[bytes, int, dict[str, str]]:
        return b"echo:" + await request.get_data(), 200, {"x-framework": "quart"}

    stop = asyncio.Event()
    port = _free_port()
    task = asyncio.create_task(app.run_task("127.0.0.1", port, shutdown_trigger=stop.wait))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            loop = asyncio.get_running_loop()
            end = loop.time() + 20
            while True:
                try:
                    response = await client.post("/echo?name=x", content=b"ping-body")
                    break
                except httpx.ConnectError:
                    if loop.time() > end or task.done():
                        raise
                    await asyncio.sleep(0.05)
        assert response.status_code == 200
        assert response.content == b"echo:ping-body"
        assert response.headers["x-framework"] == "quart"
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
