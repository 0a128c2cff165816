"""statsd over real UDP: the lines a request and a failing app send, and a dead collector."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from hypercorn.statsd import StatsdLogger
from tests.e2e.conftest import make_config, running_server, scaled, serving

pytestmark = pytest.mark.asyncio


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/boom":
        raise RuntimeError("boom")
    await send({"type": "http.response.start", "status": 201, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@contextlib.contextmanager
def collector() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    try:
        yield sock
    finally:
        sock.close()


async def receive_until(sock: socket.socket, wanted: set[str]) -> list[str]:
    """Lines received until every wanted metric name was seen (or the deadline)."""
    loop = asyncio.get_running_loop()
    lines: list[str] = []
    deadline = loop.time() + scaled(5)
    while not wanted <= {line.split(":")[0] for line in lines}:
        remaining = deadline - loop.time()
        assert remaining > 0, f"statsd lines missing: {wanted}; got {lines}"
        data = await asyncio.wait_for(loop.sock_recv(sock, 65536), remaining)
        lines.append(data.decode())
    return lines


async def test_a_request_sends_count_status_and_duration() -> None:
    with collector() as sock:
        host = f"127.0.0.1:{sock.getsockname()[1]}"
        settings = {"statsd_host": host, "statsd_prefix": "web", "dogstatsd_tags": "env:test"}
        async with running_server(app, **settings) as server, httpx.AsyncClient() as client:
            response = await client.get(server.url, timeout=scaled(5))
            assert response.status_code == 201
            lines = await receive_until(
                sock, {"web.hypercorn.requests", "web.hypercorn.request.status.201"}
            )
            assert "web.hypercorn.requests:1|c|@1.0|#env:test" in lines
            assert "web.hypercorn.request.status.201:1|c|@1.0|#env:test" in lines
            (duration,) = [line for line in lines if line.startswith("web.hypercorn.request.dur")]
            value, kind, tags = duration.removeprefix("web.hypercorn.request.duration:").split("|")
            assert float(value) >= 0 and kind == "ms" and tags == "#env:test"

            response = await client.get(f"{server.url}/boom", timeout=scaled(5))
            assert response.status_code == 500
            lines = await receive_until(
                sock, {"web.hypercorn.log.exception", "web.hypercorn.request.status.500"}
            )
            assert "web.hypercorn.log.exception:1|c|@1.0|#env:test" in lines


async def test_a_dead_collector_does_not_fail_requests() -> None:
    with collector() as sock:
        host = f"127.0.0.1:{sock.getsockname()[1]}"
    # Nothing listens there now: the kernel refuses the datagrams.
    async with running_server(app, statsd_host=host) as server, httpx.AsyncClient() as client:
        for _ in range(3):
            response = await client.get(server.url, timeout=scaled(5))
            assert response.status_code == 201


async def test_statsd_is_used_only_with_the_default_logger_class() -> None:
    class Custom(StatsdLogger):
        pass

    config = make_config(statsd_host="127.0.0.1:9", logger_class=Custom)
    async with serving(app, config):
        assert type(config.log) is Custom
    config = make_config(statsd_host="127.0.0.1:9")
    async with serving(app, config):
        assert type(config.log) is StatsdLogger
    config.log.close()
