"""``Waiters``: tasks waiting for a connection to take more output."""

from __future__ import annotations

import asyncio

import pytest

from hypercorn.worker.waiters import Waiters


@pytest.mark.asyncio
async def test_wake_releases_every_waiter_once() -> None:
    waiters = Waiters(asyncio.get_running_loop())
    assert not waiters
    tasks = [asyncio.create_task(waiters.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert waiters
    waiters.wake()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert not waiters
    waiters.wake()  # nobody waiting: nothing to do


@pytest.mark.asyncio
async def test_a_cancelled_waiter_leaves_the_set() -> None:
    waiters = Waiters(asyncio.get_running_loop())
    task = asyncio.create_task(waiters.wait())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not waiters
