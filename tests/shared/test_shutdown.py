"""Shutdown triggers: an awaitable, and a process-shared event polled every 0.1 s."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time

import pytest

from hypercorn.shared.errors import ShutdownError
from hypercorn.shared.shutdown import (
    SHUTDOWN_POLL_INTERVAL,
    check_multiprocess_shutdown_event,
    raise_shutdown,
)


@pytest.mark.asyncio
async def test_raise_shutdown_raises_once_the_event_fires() -> None:
    event = asyncio.Event()
    task = asyncio.create_task(raise_shutdown(event.wait))
    await asyncio.sleep(0.01)
    assert not task.done()
    event.set()
    with pytest.raises(ShutdownError):
        await asyncio.wait_for(task, 5)


@pytest.mark.asyncio
async def test_raise_shutdown_propagates_the_trigger_error() -> None:
    async def broken() -> None:
        raise RuntimeError("trigger failed")

    with pytest.raises(RuntimeError, match="trigger failed"):
        await raise_shutdown(broken)


@pytest.mark.asyncio
async def test_multiprocess_event_already_set_returns_without_sleeping() -> None:
    event = multiprocessing.get_context("spawn").Event()
    event.set()
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    await asyncio.wait_for(check_multiprocess_shutdown_event(event, sleep), 5)
    assert sleeps == []


@pytest.mark.asyncio
async def test_multiprocess_event_polled_every_tenth_of_a_second() -> None:
    event = threading.Event()
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:
            event.set()

    await asyncio.wait_for(check_multiprocess_shutdown_event(event, sleep), 5)
    assert sleeps == [SHUTDOWN_POLL_INTERVAL] * 3 == [0.1] * 3


@pytest.mark.asyncio
async def test_multiprocess_event_set_from_another_process() -> None:
    context = multiprocessing.get_context("spawn")
    event = context.Event()
    process = context.Process(target=event.set)
    started = time.monotonic()
    process.start()
    try:
        await asyncio.wait_for(check_multiprocess_shutdown_event(event, asyncio.sleep), 30)
    finally:
        process.join(30)
    assert process.exitcode == 0
    assert time.monotonic() - started < 30
