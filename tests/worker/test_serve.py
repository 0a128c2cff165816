"""``serve``, ``serve_sockets`` and ``run_worker``: graceful shutdown, triggers, loops."""

from __future__ import annotations

import asyncio
import multiprocessing
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from hypercorn.asyncio import serve
from hypercorn.worker.serve import WorkerHooks, run_worker, serve_sockets
from tests.e2e.conftest import (
    ServerAddress,
    close_raw,
    make_config,
    open_raw,
    read_response,
    scaled,
    server_thread,
)

gate = asyncio.Event()
events: list[str] = []


async def gated_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Holds each request until ``gate`` opens; records cancellation."""
    if scope["type"] != "http":
        return
    events.append("request")
    try:
        await gate.wait()
    except asyncio.CancelledError:
        events.append("cancelled")
        raise
    await send({"type": "http.response.start", "status": 200})
    await send({"type": "http.response.body", "body": b"done"})


async def loop_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with the class of the running event loop."""
    if scope["type"] != "http":
        return
    name = type(asyncio.get_running_loop()).__module__
    await send({"type": "http.response.start", "status": 200})
    await send({"type": "http.response.body", "body": name.encode()})


class Worker:
    """``serve_sockets`` in the test's loop, stopped by ``stop()``."""

    def __init__(self, **settings: Any) -> None:
        self.config = make_config(**settings)
        self.sockets = self.config.create_sockets()
        self.host, self.port = self.sockets.insecure_sockets[0].getsockname()[:2]
        self.url = f"http://{self.host}:{self.port}"
        self.address = ServerAddress(self.host, self.port)
        self.trigger = asyncio.Event()
        self.task = asyncio.create_task(
            serve_sockets(gated_app, self.config, self.sockets, shutdown_trigger=self.trigger.wait)
        )

    async def finish(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.task, scaled(seconds))
        finally:
            self.sockets.close()


@pytest.fixture(autouse=True)
def _reset() -> None:
    global gate
    gate = asyncio.Event()
    events.clear()


async def _until(condition: Any) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + scaled(5)
    while not condition():
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.mark.asyncio
async def test_in_flight_request_finishes_and_new_connections_are_refused() -> None:
    worker = Worker(graceful_timeout=10)
    async with httpx.AsyncClient() as client:
        request = asyncio.create_task(client.get(worker.url))
        await _until(lambda: events == ["request"])
        worker.trigger.set()
        await _until(lambda: not worker.sockets.insecure_sockets[0].fileno() >= 0)
        with pytest.raises(OSError):
            await asyncio.open_connection(worker.host, worker.port)
        gate.set()
        response = await asyncio.wait_for(request, scaled(5))
    await worker.finish(5)
    assert response.status_code == 200 and response.text == "done"
    assert response.headers["connection"] == "close"


@pytest.mark.asyncio
async def test_idle_keep_alive_connection_closes_at_once() -> None:
    gate.set()
    worker = Worker(graceful_timeout=10, keep_alive_timeout=30)
    reader, writer = await open_raw(worker.address)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await read_response(reader)
    loop = asyncio.get_running_loop()
    started = loop.time()
    worker.trigger.set()
    assert await asyncio.wait_for(reader.read(), scaled(5)) == b""
    await worker.finish(5)
    assert loop.time() - started < 5
    await close_raw(writer)


@pytest.mark.asyncio
async def test_graceful_timeout_cancels_what_is_left() -> None:
    worker = Worker(graceful_timeout=0.2)
    reader, writer = await open_raw(worker.address)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await _until(lambda: events == ["request"])
    worker.trigger.set()
    await worker.finish(5)
    assert events == ["request", "cancelled"]
    assert await asyncio.wait_for(reader.read(), scaled(5)) == b""
    await close_raw(writer)


@pytest.mark.asyncio
async def test_public_serve_on_a_unix_socket_with_a_shutdown_trigger(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    stop = asyncio.Event()
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            seen.append(scope)
            await send({"type": "http.response.start", "status": 200})
            await send({"type": "http.response.body", "body": b"unix"})

    config = make_config(bind=[f"unix:{path}"])
    task = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))
    transport = httpx.AsyncHTTPTransport(uds=str(path))
    async with httpx.AsyncClient(transport=transport) as client:
        end = asyncio.get_running_loop().time() + scaled(5)
        while True:  # the socket exists once serve() has bound it
            try:
                response = await client.get("http://localhost/u")
                break
            except httpx.ConnectError:
                assert asyncio.get_running_loop().time() < end and not task.done()
                await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, scaled(5))
    assert response.text == "unix"
    assert seen[0]["client"] is None and seen[0]["server"] == (str(path), None)


@pytest.mark.asyncio
async def test_cancelling_serve_still_runs_lifespan_shutdown() -> None:
    started = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        started.set()
        await receive()
        events.append("shutdown")
        await send({"type": "lifespan.shutdown.complete"})

    task = asyncio.create_task(serve(app, make_config(), shutdown_trigger=asyncio.Event().wait))
    await asyncio.wait_for(started.wait(), scaled(5))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, scaled(5))
    assert events == ["shutdown"]


def test_uvloop_worker_class_from_a_thread() -> None:
    with server_thread(loop_app, worker_class="uvloop") as server:
        response = httpx.get(server.url, timeout=scaled(5))
    assert response.text.startswith("uvloop")


def test_run_worker_beats_and_stops_when_the_multiprocessing_event_is_set() -> None:
    config = make_config(worker_class="uvloop")
    config.application_path = f"{__name__}:loop_app"
    sockets = config.create_sockets()
    host, port = sockets.insecure_sockets[0].getsockname()[:2]
    shutdown = multiprocessing.get_context("spawn").Event()
    ready = threading.Event()
    result: list[int] = []
    beats: list[int] = []

    def worker() -> None:
        hooks = WorkerHooks(ready=ready.set, heartbeat=beats.append, heartbeat_interval=0.02)
        result.append(run_worker(config, sockets, shutdown, hooks=hooks))

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert ready.wait(scaled(10))
        response = httpx.get(f"http://{host}:{port}/", timeout=scaled(5))
        assert response.text.startswith("uvloop")
        end = time.monotonic() + scaled(5)
        while not (beats and beats[-1] == 1):  # the heartbeat counts the request
            assert time.monotonic() < end, beats
            time.sleep(0.01)
    finally:
        shutdown.set()
        thread.join(scaled(10))
        sockets.close()
    assert result == [0]


def test_failed_startup_exits_non_zero_with_the_message(tmp_path: Path) -> None:
    (tmp_path / "failing.py").write_text(
        textwrap.dedent(
            """
            async def app(scope, receive, send):
                await receive()
                await send({"type": "lifespan.startup.failed", "message": "no database"})
            """
        )
    )
    # No first-boot retries here (tests/supervisor/test_first_boot.py has them).
    args = ["-b", "127.0.0.1:0", "--boot-retry-window", "0", "failing:app"]
    result = subprocess.run(
        [sys.executable, "-m", "hypercorn", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=scaled(30),
    )
    assert result.returncode == 6  # lifespan startup failed
    assert "no database" in result.stderr
