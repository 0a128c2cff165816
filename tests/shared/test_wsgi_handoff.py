"""How WSGI calls reach their threads and come back: few wake-ups, no call held back.

``WSGIThreadPool`` wakes a thread only when no awake one is free to take the
job, yet never leaves a queued job behind one that blocks; ``Inbox`` wakes the
loop once for the posts that arrive together; ``loop_inbox`` keeps the running
loop per thread without mistaking a finished loop for the current one.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Callable
from typing import Any

import pytest

from hypercorn.shared.wrappers import WSGIThreadPool, WSGIWrapper
from hypercorn.shared.wsgi import Exchange, Inbox
from tests.shared.test_wrappers import TIMEOUT, Channel, call, hello


def _pool_threads(prefix: str) -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith(prefix)}


def _blocker(release: threading.Event) -> Callable[[], None]:
    def job() -> None:
        release.wait(TIMEOUT)

    return job


def test_a_burst_of_quick_jobs_all_run_within_the_pool() -> None:
    pool = WSGIThreadPool(10, "burst-test")
    done: list[int] = []
    finished = threading.Event()
    jobs = 200

    def job(index: int) -> None:
        done.append(index)
        if len(done) == jobs:
            finished.set()

    try:
        for index in range(jobs):
            pool.submit(functools.partial(job, index))
        assert finished.wait(TIMEOUT)
        # Submitted without the lock while a thread may be spare: none is lost,
        # and the pool never grows past its size.
        assert sorted(done) == list(range(jobs))
        assert len(_pool_threads("burst-test")) <= 10
    finally:
        pool.shutdown()


def test_a_blocked_job_does_not_hold_back_the_jobs_behind_it() -> None:
    pool = WSGIThreadPool(3, "block-test")
    release = threading.Event()
    second, third = threading.Event(), threading.Event()
    try:
        # Submitted together: the first thread takes the first job and blocks in it.
        pool.submit(_blocker(release))
        pool.submit(second.set)
        pool.submit(_blocker(release))
        pool.submit(third.set)
        assert second.wait(TIMEOUT) and third.wait(TIMEOUT)
        assert not release.is_set()
    finally:
        release.set()
        pool.shutdown()


def test_a_pool_of_one_runs_queued_jobs_in_order_after_a_slow_one() -> None:
    pool = WSGIThreadPool(1, "one-test")
    release = threading.Event()
    order: list[int] = []
    try:
        pool.submit(_blocker(release))
        for index in range(5):
            pool.submit(functools.partial(order.append, index))
        release.set()
    finally:
        pool.shutdown(wait=True)
    assert order == [0, 1, 2, 3, 4]


class CountingLoop(asyncio.SelectorEventLoop):
    """An asyncio loop that counts the calls made to it from other threads."""

    threadsafe = 0

    def call_soon_threadsafe(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        self.threadsafe += 1
        return super().call_soon_threadsafe(*args, **kwargs)


def test_calls_finished_together_wake_the_loop_once() -> None:
    loop = CountingLoop()

    async def main() -> list[list[dict[str, Any]]]:
        inbox = Inbox(loop)
        exchanges = [Exchange(inbox) for _ in range(5)]

        def finish_all() -> None:
            for index, exchange in enumerate(exchanges):
                body: Any = {"type": "http.response.body", "body": b"%d" % index}
                exchange.finish([body], None)

        thread = threading.Thread(target=finish_all)
        thread.start()
        thread.join(TIMEOUT)  # the loop does not turn meanwhile
        channels = [Channel() for _ in exchanges]
        for exchange, channel in zip(exchanges, channels, strict=True):
            await asyncio.wait_for(exchange.relay(channel.send), TIMEOUT)  # type: ignore[arg-type]
        return [channel.sent for channel in channels]

    try:
        sent = loop.run_until_complete(main())
    finally:
        loop.close()
    assert [messages[0]["body"] for messages in sent] == [b"0", b"1", b"2", b"3", b"4"]
    assert loop.threadsafe == 1


def test_one_wrapper_serves_one_loop_after_another_in_a_thread() -> None:
    wrapper = WSGIWrapper(hello, 1024)
    try:
        for _ in range(3):  # each run's loop is new; the last one is closed
            channel = Channel()
            asyncio.run(call(wrapper, channel))
            assert channel.status == 200 and channel.body == b"got:"
    finally:
        wrapper.close()


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="SCHED_BATCH is Linux's")
def test_the_pools_threads_do_not_preempt_the_loop_on_wake_up() -> None:
    """A job runs in a thread under ``SCHED_BATCH``: woken, it waits for the
    loop's thread to block instead of preempting it. The caller's own thread
    keeps its policy."""
    pool = WSGIThreadPool(2, "batch-test")
    seen: list[int] = []
    done = threading.Event()

    def job() -> None:
        seen.append(os.sched_getscheduler(0))
        done.set()

    try:
        pool.submit(job)
        assert done.wait(TIMEOUT)
    finally:
        pool.shutdown()
    assert seen == [os.SCHED_BATCH]
    assert os.sched_getscheduler(0) == os.SCHED_OTHER
