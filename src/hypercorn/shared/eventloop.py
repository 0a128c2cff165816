"""The few event-loop calls the loop-agnostic parts of a worker make.

Theory of operation
-------------------
The sans-IO protocols need no loop at all. Above them, the worker context,
the ASGI streams, lifespan, the HTTP/3 connections and the WSGI hand-off
need a little: the time, a one-shot future to park a task on, a task, a
timer and a call from another thread. ``EventLoop`` is that subset of
``asyncio.AbstractEventLoop``, so an asyncio (or uvloop) loop *is* one, at
no cost on its hot paths; under trio, ``shared.trio_loop.TrioLoop`` gives
the same calls over a nursery. Nothing else in those parts may name
asyncio or trio: a wait with a deadline is a future settled by a timer
(``wait_settled``), and cancellation is whatever ``BaseException`` the
running library raises (never caught as an ``Exception``).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Generator
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

__all__ = [
    "EventLoop", "Future", "Handle", "Task", "current_loop", "eager_starter", "next_turn", "settle",
    "start_task", "task_loop", "wait_settled",
]  # fmt: skip


class Handle(Protocol):
    """A scheduled callback."""

    def cancel(self) -> object:
        """Do not call it (if it has not run yet)."""


class Task(Protocol):
    """A running coroutine."""

    def cancel(self) -> object:
        """Cancel it: the library's cancellation is raised at its next wait."""

    def done(self) -> bool:
        """True once it has ended."""
        ...


class Future(Protocol[T]):
    """A one-shot value a task can wait for."""

    def done(self) -> bool:
        """True once a result is set."""
        ...

    def set_result(self, result: T, /) -> None:
        """Set the result and wake the task awaiting it (once only)."""

    def result(self) -> T:
        """The result (only once done)."""
        ...

    def __await__(self) -> Generator[Any, None, T]: ...


class EventLoop(Protocol):
    """What the loop-agnostic parts of a worker ask of their loop."""

    def time(self) -> float:
        """The loop's clock, in seconds."""
        ...

    def create_future(self) -> Future[Any]:
        """A new unset future."""
        ...

    def create_task(self, coro: Coroutine[Any, Any, Any], /) -> Task:
        """Run ``coro`` as a task of the serving worker."""
        ...

    def call_soon(self, callback: Callable[..., object], /, *args: Any) -> Handle:
        """Call ``callback(*args)`` once the running task yields."""
        ...

    def call_at(self, when: float, callback: Callable[..., object], /, *args: Any) -> Handle:
        """Call ``callback(*args)`` at loop time ``when``."""
        ...

    def call_later(self, delay: float, callback: Callable[..., object], /, *args: Any) -> Handle:
        """Call ``callback(*args)`` in ``delay`` seconds."""
        ...

    def call_soon_threadsafe(self, callback: Callable[..., object], /, *args: Any) -> Handle:
        """From another thread: call ``callback(*args)`` in the loop's thread.

        Raises:
            RuntimeError: the loop has stopped.
        """
        ...

    def is_closed(self) -> bool:
        """True once the loop has stopped for good."""
        ...


def current_loop() -> EventLoop:
    """The running asyncio loop, or the running trio run's ``TrioLoop``.

    Raises:
        RuntimeError: called outside a running loop.
    """
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        pass
    from hypercorn.shared.trio_loop import current_trio_loop

    return current_trio_loop()


@contextlib.asynccontextmanager
async def task_loop() -> AsyncIterator[EventLoop]:
    """A loop to start tasks in, for the block: asyncio's running loop, or under
    trio a ``TrioLoop`` over a nursery the block's end cancels."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        from hypercorn.shared.trio_loop import open_trio_loop

        async with open_trio_loop() as trio_loop:
            yield trio_loop
    else:
        yield loop


TASK_NAME = "hypercorn app"
"""The name of an application task (a request's, a WebSocket's). A task left
unnamed is named ``Task-N`` as it is made: a string formatted per request on
Python 3.11."""


def start_task(
    loop: EventLoop,
    coro: Coroutine[Any, Any, Any],
    /,
    name: str = TASK_NAME,
    *,
    eager: bool = True,
) -> Task:
    """Run ``coro`` as a task called ``name`` whose first step runs now, in the
    caller, where the loop allows it and ``eager`` asks for it (asyncio's eager
    start, Python 3.12+).

    An app that answers without suspending is then done before this returns:
    no loop turn, no scheduling. ``asyncio.current_task()`` is the new task
    during that step, as anyio's cancel scopes need. Python 3.11 has no eager
    start: the task runs from the loop's next turn. The name spares Python
    3.11 formatting a ``Task-N`` one per task. An asyncio loop with a task
    factory of its own (set by the app or a tool) keeps it, and the usual
    start; so does trio, which has no eager start (the task runs in the
    scheduler's next batch).
    """
    if isinstance(loop, asyncio.AbstractEventLoop) and loop.get_task_factory() is None:
        if eager and sys.version_info >= (3, 12):
            return asyncio.Task(coro, loop=loop, name=name, eager_start=True)
        return asyncio.Task(coro, loop=loop, name=name)
    return loop.create_task(coro)


def eager_starter(loop: EventLoop) -> tuple[Any, Any] | None:
    """``(task class, loop)`` where ``start_task`` starts tasks on ``loop`` eagerly
    (asyncio, Python 3.12+), for a caller that makes its tasks itself, per
    request, from compiled code: ``cls(coro, loop=loop, name=..., eager_start=True)``.
    None elsewhere. The caller keeps ``start_task``'s other rule: a loop with a
    task factory of its own (``loop.get_task_factory()``) keeps it.
    """
    if sys.version_info >= (3, 12) and isinstance(loop, asyncio.AbstractEventLoop):
        return asyncio.Task, loop
    return None


def settle(future: Future[Any], value: Any = None) -> None:
    """Set ``future``'s result unless it is set already."""
    if not future.done():
        future.set_result(value)


async def next_turn(loop: EventLoop) -> None:
    """Let one pass of the loop run (its I/O events and ready callbacks)."""
    turn: Future[None] = loop.create_future()
    loop.call_soon(settle, turn)
    await turn


async def wait_settled(loop: EventLoop, future: Future[T], timeout: float, default: T) -> T:
    """``await future``, settling it with ``default`` after ``timeout`` seconds.

    Returns:
        The future's result: ``default`` if the timeout settled it.
    """
    if not future.done():
        timer = loop.call_later(timeout, settle, future, default)
        try:
            await future
        finally:
            timer.cancel()
    return future.result()
