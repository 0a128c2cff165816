"""The trio worker inside a trio program: ``hypercorn.trio.serve``, quart-trio's
``run_task``, and the connection's timers on trio's virtual clock."""

from __future__ import annotations

import functools
import socket
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from hypercorn.config import Config
from hypercorn.shared.trio_loop import TrioLoop, using_trio_loop
from hypercorn.trio import serve
from hypercorn.worker.context import WorkerContext
from hypercorn.worker.io import HTTPConnection
from hypercorn.worker.trio_io import TrioTransport
from tests.e2e.conftest import scaled

pytestmark = pytest.mark.trio


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello " + scope["path"].encode()})


def _config(**settings: Any) -> Config:
    return Config.from_mapping({"bind": ["127.0.0.1:0"], "errorlog": None, **settings})


async def test_serve_reports_its_binds_and_stops_on_the_trigger() -> None:
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        with trio.fail_after(scaled(10)):
            binds = await nursery.start(
                functools.partial(serve, hello, _config(), shutdown_trigger=stop.wait)
            )
        assert len(binds) == 1 and binds[0].startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(timeout=scaled(5)) as client:
            response = await client.get(f"{binds[0]}/x")
        assert response.text == "hello /x"
        stop.set()  # serve returns, and the nursery with it


async def test_cancelling_serve_still_shuts_down_the_lifespan() -> None:
    events: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        for stage in ("startup", "shutdown"):
            await receive()
            events.append(stage)
            await send({"type": f"lifespan.{stage}.complete"})

    with trio.fail_after(scaled(10)):
        async with trio.open_nursery() as nursery:
            await nursery.start(functools.partial(serve, app, _config()))
            nursery.cancel_scope.cancel()
    assert events == ["startup", "shutdown"]


async def test_quart_trio_run_task() -> None:
    from quart import request
    from quart_trio import QuartTrio

    app = QuartTrio(__name__)

    @app.post("/echo")
    async def echo() -> bytes:
        return b"echo:" + await request.get_data()

    port = _free_port()
    async with trio.open_nursery() as nursery:
        stop = trio.Event()
        nursery.start_soon(
            functools.partial(app.run_task, "127.0.0.1", port, shutdown_trigger=stop.wait)
        )
        async with httpx.AsyncClient(timeout=scaled(5)) as client:
            with trio.fail_after(scaled(20)):
                while True:
                    try:
                        response = await client.post(f"http://127.0.0.1:{port}/echo", content=b"x")
                        break
                    except httpx.ConnectError:
                        await trio.sleep(0.05)
        assert response.content == b"echo:x"
        stop.set()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_keep_alive_timer_fires_at_the_exact_virtual_instant(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An idle keep-alive connection closes keep_alive_timeout seconds after its
    response, on trio's virtual clock: the trio transport, TrioLoop's timers and
    the real HTTPConnection over an in-memory stream, no socket, no sleep."""
    config = _config(keep_alive_timeout=7)
    client, server_stream = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        loop = TrioLoop(nursery)
        with using_trio_loop(loop):
            ctx = WorkerContext(hello, config, loop, {})
            connection = HTTPConnection(ctx, secure=False)
            nursery.start_soon(TrioTransport(server_stream, None, connection).run)
            await client.send_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
            answered = b""
            while not answered.endswith(b"hello /a"):
                answered += await client.receive_some()
            started = trio.current_time()
            assert await client.receive_some() == b""  # the server closed: EOF
            assert trio.current_time() - started == pytest.approx(7.0, abs=0.01)
            await trio.testing.wait_all_tasks_blocked()
            assert not ctx.connections  # the connection is gone from the worker too
        nursery.cancel_scope.cancel()


class _Finished:
    """A coroutine as a compiled one behaves: its ``close()`` after it returned
    raises (mypyc's coroutines drop their state as they end)."""

    def __init__(self) -> None:
        self.closed_after_end = False
        self._ended = False

    def __await__(self) -> Any:
        return self

    def __iter__(self) -> Any:
        return self

    def __next__(self) -> None:
        return self.send(None)

    def send(self, value: object) -> None:
        self._ended = True
        raise StopIteration(None)

    def throw(self, *args: Any) -> None:
        raise args[0] if isinstance(args[0], BaseException) else args[0](*args[1:2])

    def close(self) -> None:
        if self._ended:
            self.closed_after_end = True
            raise AttributeError("state of a finished coroutine")


async def test_a_task_that_ran_is_not_closed_again_as_it_ends() -> None:
    """``TrioLoop`` closes a task's coroutine only if it never ran it: closing
    a compiled coroutine that has returned raises, and that would end the
    worker's nursery (every connection, the lifespan) with it."""
    finished = _Finished()
    async with trio.open_nursery() as nursery:
        loop = TrioLoop(nursery)
        task = loop.create_task(finished)  # type: ignore[arg-type]  # duck-typed
        with trio.fail_after(scaled(5)):
            while not task.done():
                await trio.sleep(0)
        loop.close()
        nursery.cancel_scope.cancel()
    assert finished._ended and not finished.closed_after_end
