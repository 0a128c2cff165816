"""``TrioLoop``: the ``EventLoop`` calls (``shared/eventloop.py``) inside a trio run.

Theory of operation
-------------------
A trio program has no loop object; a ``TrioLoop`` gives the worker's
loop-agnostic parts the few calls they make, over trio's own primitives:

* a future is a ``trio.Event`` with a value;
* a task runs in the worker's nursery inside its own cancel scope, which
  ``cancel`` cancels (what trio raises then, ``trio.Cancelled``, ends the
  task quietly); anything else a task lets escape is logged, so that one
  broken callback never tears the worker's nursery down;
* ``call_at`` and ``call_later`` are a task sleeping until the deadline;
* ``call_soon`` queues the callback for one pump task, which runs each
  callback queued in a batch once every task ready has yielded (asyncio's
  "next loop turn": what the streams of a connection sent in one turn goes
  out in one write);
* ``call_soon_threadsafe`` is trio's ``run_sync_soon``: the callback runs
  outside any task, so it may only do what needs no task (set a future).

A ``TrioLoop`` without a nursery (``current_trio_loop`` outside a serving
worker, e.g. a WSGI middleware under another trio server) offers futures,
the clock and calls from threads; starting tasks or timers raises.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Iterator
from typing import Any, Generic, TypeVar

import trio

T = TypeVar("T")

__all__ = ["TrioLoop", "current_trio_loop", "open_trio_loop", "run_in_thread", "using_trio_loop"]

_log = logging.getLogger("hypercorn.error")
_CURRENT: trio.lowlevel.RunVar[TrioLoop] = trio.lowlevel.RunVar("hypercorn_trio_loop")
_UNSET = object()


class TrioFuture(Generic[T]):
    """A one-shot value over a ``trio.Event``."""

    __slots__ = ("_event", "_value")

    def __init__(self) -> None:
        self._event = trio.Event()
        self._value: Any = _UNSET

    def done(self) -> bool:
        return self._event.is_set()

    def set_result(self, result: T, /) -> None:
        if self._event.is_set():
            raise RuntimeError("the future's result is already set")
        self._value = result
        self._event.set()

    def result(self) -> T:
        if self._value is _UNSET:
            raise RuntimeError("the future's result is not set")
        value: T = self._value
        return value

    def __await__(self) -> Generator[Any, None, T]:
        yield from self._event.wait().__await__()
        return self.result()


class TrioTask:
    """A task (or a timer) in the worker's nursery, cancelled through its scope."""

    __slots__ = ("_done", "_scope")

    def __init__(self) -> None:
        self._scope = trio.CancelScope()
        self._done = False

    def cancel(self) -> bool:
        self._scope.cancel()
        return not self._done

    def done(self) -> bool:
        return self._done


class _Soon:
    """A callback queued by ``call_soon``; ``cancel`` skips it."""

    __slots__ = ("args", "callback", "cancelled")

    def __init__(self, callback: Callable[..., object], args: tuple[Any, ...]) -> None:
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class TrioLoop:
    """The ``EventLoop`` calls over a trio run (see the module doc).

    Args:
        nursery: where tasks and timers run; None for futures and threads only.
    """

    def __init__(self, nursery: trio.Nursery | None = None) -> None:
        self._nursery = nursery
        self._token = trio.lowlevel.current_trio_token()
        self._soon: collections.deque[_Soon] = collections.deque()
        self._soon_ready = trio.Event()
        self._closed = False
        if nursery is not None:
            nursery.start_soon(self._pump)

    @staticmethod
    def time() -> float:
        return trio.current_time()

    @staticmethod
    def create_future() -> TrioFuture[Any]:
        return TrioFuture()

    def create_task(self, coro: Coroutine[Any, Any, Any], /) -> TrioTask:
        task = TrioTask()
        self._spawn(self._run, task, coro)
        return task

    def call_soon(self, callback: Callable[..., object], /, *args: Any) -> _Soon:
        soon = _Soon(callback, args)
        self._soon.append(soon)
        self._soon_ready.set()
        return soon

    def call_at(self, when: float, callback: Callable[..., object], /, *args: Any) -> TrioTask:
        timer = TrioTask()
        self._spawn(self._timer, timer, when, callback, args)
        return timer

    def call_later(self, delay: float, callback: Callable[..., object], /, *args: Any) -> TrioTask:
        return self.call_at(trio.current_time() + delay, callback, *args)

    def call_soon_threadsafe(self, callback: Callable[..., object], /, *args: Any) -> _Soon:
        if self._closed:
            raise RuntimeError("the trio run has ended")
        self._token.run_sync_soon(callback, *args)  # RunFinishedError is a RuntimeError
        return _Soon(callback, args)

    def is_closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """The serving worker has stopped: calls from threads now raise."""
        self._closed = True

    # -- inside the run -----------------------------------------------------------

    def _spawn(self, function: Callable[..., Coroutine[Any, Any, None]], *args: Any) -> None:
        if self._nursery is None:
            raise RuntimeError("this TrioLoop has no nursery to run tasks in")
        self._nursery.start_soon(function, *args)

    @staticmethod
    async def _run(task: TrioTask, coro: Coroutine[Any, Any, Any]) -> None:
        awaited = False
        try:
            with task._scope:
                awaited = True  # from here the coroutine runs, and ends by itself
                await coro
        except Exception:
            _log.exception("worker task failed")
        finally:
            task._done = True
            if not awaited:
                coro.close()  # never started: no "never awaited" warning

    @staticmethod
    async def _timer(
        timer: TrioTask, when: float, callback: Callable[..., object], args: tuple[Any, ...]
    ) -> None:
        try:
            with timer._scope:
                await trio.sleep_until(when)
                timer._done = True
                callback(*args)
        except Exception:
            _log.exception("timer callback failed")
        finally:
            timer._done = True

    async def _pump(self) -> None:
        while True:
            await self._soon_ready.wait()
            self._soon_ready = trio.Event()
            # Let every task made ready by the same turn run first.
            await trio.lowlevel.cancel_shielded_checkpoint()
            batch, self._soon = self._soon, collections.deque()
            for soon in batch:
                if not soon.cancelled:
                    try:
                        soon.callback(*soon.args)
                    except Exception:
                        _log.exception("callback failed")


def current_trio_loop() -> TrioLoop:
    """The ``TrioLoop`` of the serving worker in this trio run, else one without a nursery.

    Raises:
        RuntimeError: called outside a trio run.
    """
    try:
        return _CURRENT.get()
    except LookupError:
        loop = TrioLoop()
        _CURRENT.set(loop)
        return loop


@contextlib.asynccontextmanager
async def open_trio_loop() -> AsyncIterator[TrioLoop]:
    """A ``TrioLoop`` over a new nursery, whose tasks the block's end cancels."""
    async with trio.open_nursery() as nursery:
        loop = TrioLoop(nursery)
        try:
            yield loop
        finally:
            loop.close()
            nursery.cancel_scope.cancel()


@contextlib.contextmanager
def using_trio_loop(loop: TrioLoop) -> Iterator[None]:
    """Make ``loop`` what ``current_trio_loop`` returns inside the block."""
    token = _CURRENT.set(loop)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def run_in_thread(job: Callable[[], None]) -> None:
    """Run ``job`` (a callable that never raises) in one of trio's worker threads.

    The thread is abandoned, not waited for, if the run ends first.
    """
    trio.lowlevel.spawn_system_task(
        functools.partial(trio.to_thread.run_sync, job, abandon_on_cancel=True)
    )
