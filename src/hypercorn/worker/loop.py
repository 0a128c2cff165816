"""The worker's event loop: asyncio's own, or uvloop's, chosen by ``worker_class``.

There is one asyncio code path for both. uvloop is only a loop factory handed
to ``asyncio.Runner``; nothing else in the worker knows which loop it runs on.
A trio worker (``worker_class = "trio"``) runs with ``trio.run`` instead
(``worker/trio_serve.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from hypercorn.shared.validators import ConfigError

T = TypeVar("T")

WORKER_CLASSES = ("asyncio", "uvloop")


def loop_factory(worker_class: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The function that creates an event loop for ``worker_class``.

    Args:
        worker_class: ``"asyncio"`` or ``"uvloop"``.

    Returns:
        A callable with no arguments that returns a new event loop.

    Raises:
        ConfigError: the worker class is unknown, or uvloop is not installed.
    """
    if worker_class == "asyncio":
        return asyncio.new_event_loop
    if worker_class == "uvloop":
        try:
            import uvloop
        except ImportError:
            raise ConfigError(
                "worker_class 'uvloop' needs uvloop: pip install 'hypercorn[uvloop]'"
            ) from None
        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
        return factory
    raise ConfigError(
        f"invalid value for 'worker_class': {worker_class!r} "
        f"(expected one of {', '.join(WORKER_CLASSES)})"
    )


def run(main: Coroutine[Any, Any, T], worker_class: str, *, debug: bool = False) -> T:
    """Run ``main`` to completion on a new loop of ``worker_class``, then close the loop.

    Args:
        main: the coroutine to run.
        worker_class: ``"asyncio"`` or ``"uvloop"``.
        debug: run the loop in asyncio's debug mode.

    Returns:
        What ``main`` returns.

    Raises:
        ConfigError: the worker class cannot be used (``main`` is closed unrun).
    """
    try:
        factory = loop_factory(worker_class)
    except ConfigError:
        main.close()
        raise
    with asyncio.Runner(debug=debug, loop_factory=factory) as runner:
        return runner.run(main)
