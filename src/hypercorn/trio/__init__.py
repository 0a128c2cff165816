"""Serve an application inside the caller's trio program.

``serve`` is what trio frameworks call to run a server in a run they own
(quart-trio's ``app.run_task``)::

    import trio
    from hypercorn.config import Config
    from hypercorn.trio import serve

    trio.run(serve, app, Config())

In a nursery, ``await nursery.start(serve, app, config)`` returns the URLs
served once the app has started and the listeners accept.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

import trio

from hypercorn.config import Config
from hypercorn.shared.apploading import wrap_app
from hypercorn.typing import Framework
from hypercorn.worker.trio_serve import serve_trio

__all__ = ["serve"]


async def serve(
    app: Framework,
    config: Config,
    *,
    shutdown_trigger: Callable[..., Awaitable[Any]] | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
    mode: Literal["asgi", "wsgi"] | None = None,
) -> None:
    """Serve ``app`` in the running trio program until shutdown.

    Binds ``config``'s listeners, runs the app's lifespan, calls
    ``task_status.started(binds)`` (the served URLs) and serves until
    ``shutdown_trigger()`` returns (or raises ``ShutdownError``); without a
    trigger, until SIGINT or SIGTERM when called in the main thread, else until
    cancelled. Then shuts down gracefully.

    Args:
        app: an ASGI or WSGI application.
        config: the server's settings.
        shutdown_trigger: an async callable whose return starts shutdown.
        task_status: trio's, for ``nursery.start``.
        mode: ``"asgi"`` or ``"wsgi"`` to force how ``app`` is called.

    Raises:
        BindError: a listener cannot be created.
        LifespanFailureError, LifespanTimeoutError: the app's startup failed.
    """
    wrapped = wrap_app(app, config.wsgi_max_body_size, mode)
    sockets = config.create_sockets()
    try:
        await serve_trio(
            wrapped,
            config,
            sockets,
            shutdown_trigger=shutdown_trigger,
            handle_signals=shutdown_trigger is None,
            task_status=task_status,
        )
    finally:
        sockets.close()
