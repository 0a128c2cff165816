"""Eager request starts with real apps and clients: anyio's cancel scopes and
task groups, and Starlette with a middleware that runs the app in a task
group, see the request's own task as ``current_task()`` from its first step,
on asyncio and uvloop. On Python 3.12+ an app's first step runs inside the
connection's ``data_received``; on 3.11 in a task of its own, as before.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import anyio
import httpx
import pytest

from tests.e2e.conftest import server_thread

EAGER = sys.version_info >= (3, 12)


def _inside_data_received() -> bool:
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "data_received" and "worker/io.py" in frame.f_code.co_filename:
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


async def anyio_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Enters cancel scopes and a task group in its first step, leaves them later."""
    if scope["type"] != "http":
        return
    eager = _inside_data_received()
    task = asyncio.current_task()
    with anyio.fail_after(10):  # entered now; left after several suspensions
        async with anyio.create_task_group() as group:
            group.start_soon(anyio.sleep, 0)
        await anyio.to_thread.run_sync(lambda: None)
        with anyio.move_on_after(0.01) as scope_:  # a cancellation aimed at this task
            await anyio.sleep(10)
    same = asyncio.current_task() is task and task is not None
    body = b"eager=%d same=%d cancelled=%d" % (eager, same, scope_.cancelled_caught)
    headers = [(b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    class Tag(BaseHTTPMiddleware):  # runs the app in an anyio task group
        async def dispatch(self, request: Any, call_next: Any) -> Any:
            response = await call_next(request)
            response.headers["x-tagged"] = "yes"
            return response

    async def hello(request: Any) -> JSONResponse:
        return JSONResponse({"hello": request.path_params["name"]})

    return Starlette(routes=[Route("/hello/{name}", hello)], middleware=[Middleware(Tag)])


@pytest.mark.worker_classes("asyncio", "uvloop")  # asyncio.current_task: no trio
def test_anyio_sees_the_requests_own_task(worker_class: str) -> None:
    with server_thread(anyio_app) as server, httpx.Client() as client:
        answers = [client.get(server.url + "/").text for _ in range(3)]
    assert answers == [f"eager={int(EAGER)} same=1 cancelled=1"] * 3


def test_starlette_with_a_task_group_middleware(worker_class: str) -> None:
    app = starlette_app()
    with server_thread(app) as server, httpx.Client() as client:
        responses = [client.get(f"{server.url}/hello/{n}") for n in range(20)]
    assert [r.json() for r in responses] == [{"hello": str(n)} for n in range(20)]
    assert all(r.headers["x-tagged"] == "yes" for r in responses)
