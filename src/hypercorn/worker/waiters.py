"""Futures that tasks await until a connection can take more output.

A stream's ``send`` waits while the transport is paused or its flow-control
window is shut; the connection wakes every waiter when either may have
opened, and each waiter checks its own condition again.
"""

from __future__ import annotations

from typing import Any

from hypercorn.shared.eventloop import EventLoop, Future


class Waiters:
    """A set of tasks waiting for the same wake-up."""

    __slots__ = ("_loop", "futures")

    def __init__(self, loop: EventLoop) -> None:
        self._loop = loop
        self.futures: list[Future[Any]] = []
        """The waiting tasks' futures (empty: nobody waits; tested without a call)."""

    def __bool__(self) -> bool:
        return bool(self.futures)

    async def wait(self) -> None:
        """Return at the next ``wake`` (or raise if the awaiting task is cancelled)."""
        future = self._loop.create_future()
        self.futures.append(future)
        try:
            await future
        finally:
            if future in self.futures:
                self.futures.remove(future)

    def wake(self) -> None:
        """Wake every task waiting now."""
        for future in self.futures:
            if not future.done():
                future.set_result(None)
        self.futures.clear()
