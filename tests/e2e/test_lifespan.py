"""ASGI lifespan over a real worker: startup, shutdown, failures, timeouts, state."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import httpx
import pytest

from hypercorn.shared.errors import LifespanFailureError, LifespanTimeoutError
from tests.e2e.conftest import running_server

# Nothing here depends on the transport: asyncio stands for uvloop too.
pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.usefixtures("worker_class"),
    pytest.mark.worker_classes("asyncio", "trio"),
]


def lifespan_app(
    *,
    startup: str = "complete",
    shutdown: str = "complete",
    events: list[str] | None = None,
) -> Any:
    """An app whose lifespan answers each stage with ``complete``, ``failed`` or ``hang``."""
    log = events if events is not None else []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            log.append("request")
            body = repr(sorted(scope["state"].items())).encode()
            await send({"type": "http.response.start", "status": 200})
            await send({"type": "http.response.body", "body": body})
            return
        for stage, answer in (("startup", startup), ("shutdown", shutdown)):
            message = await receive()
            assert message["type"] == f"lifespan.{stage}"
            log.append(stage)
            if answer == "hang":
                await anyio.Event().wait()
            if stage == "startup":
                scope["state"]["resource"] = "open"
            reply: dict[str, Any] = {"type": f"lifespan.{stage}.{answer}"}
            if answer == "failed":
                reply["message"] = f"{stage} went wrong"
            await send(reply)

    return app


async def test_startup_state_reaches_requests_and_shutdown_runs_last() -> None:
    events: list[str] = []
    async with (
        running_server(lifespan_app(events=events)) as server,
        httpx.AsyncClient() as client,
    ):
        response = await client.get(server.url)
        assert response.text == "[('resource', 'open')]"
    assert events == ["startup", "request", "shutdown"]


async def test_startup_failure_raises_and_serves_nothing() -> None:
    with pytest.raises(LifespanFailureError) as caught:
        async with running_server(lifespan_app(startup="failed")):
            pytest.fail("served despite a failed startup")
    assert caught.value.stage == "startup"
    assert "startup went wrong" in str(caught.value)


async def test_startup_timeout() -> None:
    with pytest.raises(LifespanTimeoutError) as caught:
        async with running_server(lifespan_app(startup="hang"), startup_timeout=0.2):
            pytest.fail("served despite a startup that never finished")
    assert caught.value.stage == "startup"


async def test_shutdown_failure_is_raised_after_serving() -> None:
    with pytest.raises(LifespanFailureError) as caught:
        async with (
            running_server(lifespan_app(shutdown="failed")) as server,
            httpx.AsyncClient() as client,
        ):
            assert (await client.get(server.url)).status_code == 200
    assert caught.value.stage == "shutdown"


async def test_shutdown_timeout() -> None:
    with pytest.raises(LifespanTimeoutError) as caught:
        async with running_server(lifespan_app(shutdown="hang"), shutdown_timeout=0.2):
            pass
    assert caught.value.stage == "shutdown"


async def test_app_without_lifespan_support_is_served_and_not_logged_as_error() -> None:
    logger = logging.getLogger("tests.e2e.nolifespan")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"unsupported scope {scope['type']}")
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"fine"})

    async with running_server(app, errorlog=logger) as server, httpx.AsyncClient() as client:
        assert (await client.get(server.url)).text == "fine"
    assert not [r for r in records if r.levelno >= logging.WARNING]
    assert any("lifespan" in r.getMessage() for r in records)


async def test_unexpected_lifespan_message_fails_startup() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.shutdown.complete"})

    with pytest.raises(LifespanFailureError) as caught:
        async with running_server(app):
            pass
    assert "UnexpectedMessageError" in str(caught.value)
