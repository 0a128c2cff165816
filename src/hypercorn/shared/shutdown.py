"""Shutdown triggers: turn an awaitable or a process-shared event into a return."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from hypercorn.shared.errors import ShutdownError

__all__ = ["SHUTDOWN_POLL_INTERVAL", "check_multiprocess_shutdown_event", "raise_shutdown"]

SHUTDOWN_POLL_INTERVAL = 0.1
"""Seconds between two looks at a process-shared shutdown event."""


class EventLike(Protocol):
    """A ``multiprocessing.Event`` or ``threading.Event``: anything with ``is_set``."""

    def is_set(self) -> bool: ...


async def raise_shutdown(shutdown_event: Callable[..., Awaitable[Any]]) -> None:
    """Wait for the shutdown trigger, then raise to unwind the server.

    Args:
        shutdown_event: an async callable (e.g. ``asyncio.Event().wait``) that
            returns when shutdown should start.

    Raises:
        ShutdownError: always, once ``shutdown_event()`` has returned.
    """
    await shutdown_event()
    raise ShutdownError()


async def check_multiprocess_shutdown_event(
    shutdown_event: EventLike, sleep: Callable[[float], Awaitable[Any]]
) -> None:
    """Return once a process-shared event is set, looking every 0.1 seconds.

    A ``multiprocessing.Event`` cannot be awaited, so the worker polls it; the
    interval bounds how long a worker takes to notice the master's request.

    Args:
        shutdown_event: the event the master sets to ask the worker to stop.
        sleep: the event loop's sleep (``asyncio.sleep``, ``trio.sleep``).

    Returns:
        None, once ``shutdown_event.is_set()``.
    """
    while not shutdown_event.is_set():
        await sleep(SHUTDOWN_POLL_INTERVAL)
