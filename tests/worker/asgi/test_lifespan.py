"""``Lifespan`` driven directly: stages, unsupported apps, failures, timeouts."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hypercorn.config import Config
from hypercorn.shared.errors import LifespanFailureError, LifespanTimeoutError
from hypercorn.worker.asgi.lifespan import Lifespan, LifespanState

pytestmark = pytest.mark.asyncio


def _config(**settings: Any) -> Config:
    return Config.from_mapping({"errorlog": None, **settings})


async def test_complete_cycle_shares_the_state_dict() -> None:
    scopes: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scopes.append(scope)
        assert (await receive())["type"] == "lifespan.startup"
        scope["state"]["pool"] = 1
        await send({"type": "lifespan.startup.complete"})
        assert (await receive())["type"] == "lifespan.shutdown"
        await send({"type": "lifespan.shutdown.complete"})

    state: dict[str, Any] = {}
    lifespan = Lifespan(app, _config(), state)
    await lifespan.startup()
    assert lifespan.state is LifespanState.STARTED and state == {"pool": 1}
    await lifespan.shutdown()
    assert lifespan.state is LifespanState.STOPPED
    assert scopes[0]["asgi"] == {"version": "3.0", "spec_version": "2.0"}


@pytest.mark.parametrize("behaviour", ["raise", "return"])
async def test_an_app_without_lifespan_is_unsupported_not_failed(behaviour: str) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if behaviour == "raise":
            raise TypeError("only http")

    lifespan = Lifespan(app, _config(), {})
    await lifespan.startup()
    assert not lifespan.supported
    await lifespan.shutdown()  # nothing to do


async def test_a_crash_after_sending_is_a_failure() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        raise RuntimeError("cleanup broke")

    lifespan = Lifespan(app, _config(), {})
    await lifespan.startup()
    with pytest.raises(LifespanFailureError) as caught:
        await lifespan.shutdown()
    assert caught.value.stage == "shutdown" and "cleanup broke" in str(caught.value)


async def test_an_app_that_returns_instead_of_answering_shutdown_is_done() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()

    lifespan = Lifespan(app, _config(), {})
    await lifespan.startup()
    await lifespan.shutdown()
    assert lifespan.state is LifespanState.STOPPED


async def test_timeouts_cancel_the_lifespan_task() -> None:
    cancelled = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    lifespan = Lifespan(app, _config(startup_timeout=0.05), {})
    with pytest.raises(LifespanTimeoutError):
        await lifespan.startup()
    assert cancelled.is_set()
