"""One worker on trio: ``serve_sockets`` (``worker/serve.py``) with trio's I/O.

Theory of operation
-------------------
``serve_trio`` opens the worker's nursery, makes the ``TrioLoop`` over it
(``shared/trio_loop.py``) and runs the very ``serve_sockets`` the asyncio
worker runs, handing it ``TrioIO``: trio's listeners, UDP sockets, signals
and shutdown wait (``worker/trio_io.py``). Lifespan, the request limit,
the heartbeat, graceful drain and the final abort are the same code.
Everything the worker started (connections, app tasks, timers) lives in
that nursery; once ``serve_sockets`` returns, it is cancelled, so nothing
outlives the call.

trio delivers cancellation to every wait inside a cancelled scope, not once
as asyncio does. When the caller cancels ``serve_trio``, only
``serve_sockets`` is cancelled (its own scope, ``serving``); the worker's
nursery is shielded, so lifespan and the timers still run, and the cleanup
in ``serve_sockets`` (abort, lifespan shutdown, each bounded by its own
timeout) runs shielded too (``cleanup_scope``), as asyncio's runs after
one cancellation.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import signal
import socket
import ssl
import threading
from typing import TYPE_CHECKING

import trio

from hypercorn.shared.addresses import repr_socket_addr
from hypercorn.shared.errors import ShutdownError
from hypercorn.shared.shutdown import check_multiprocess_shutdown_event
from hypercorn.shared.trio_loop import TrioLoop, using_trio_loop
from hypercorn.worker.serve import NO_HOOKS, ShutdownTrigger, WorkerHooks, serve_sockets
from hypercorn.worker.trio_io import pump_datagrams, trio_listener

if TYPE_CHECKING:
    from collections.abc import Callable
    from multiprocessing.synchronize import Event as MPEvent

    from hypercorn.config import Config
    from hypercorn.shared.eventloop import EventLoop, Future
    from hypercorn.shared.sockets import Sockets
    from hypercorn.typing import ASGIFramework
    from hypercorn.worker.context import WorkerContext
    from hypercorn.worker.io import HTTPConnection
    from hypercorn.worker.listener import Listener
    from hypercorn.worker.udp import QuicServer

__all__ = ["TrioIO", "binds", "run_trio", "serve_trio"]

_SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrioIO:
    """The ``WorkerIO`` of trio (see ``worker/serve.py``)."""

    def __init__(self, loop: TrioLoop, nursery: trio.Nursery) -> None:
        self.loop: EventLoop = loop
        self._nursery = nursery

    @staticmethod
    def listener(
        ctx: WorkerContext,
        sock: socket.socket,
        factory: Callable[[], HTTPConnection],
        *,
        ssl_context: ssl.SSLContext | None,
        batch: int,
    ) -> Listener:
        return trio_listener(ctx, sock, factory, ssl_context=ssl_context, batch=batch)

    async def open_datagram(self, server: QuicServer, sock: socket.socket) -> None:
        self._nursery.start_soon(pump_datagrams, sock, server)

    @staticmethod
    def cleanup_scope() -> contextlib.AbstractContextManager[object]:
        return trio.CancelScope(shield=True)

    async def wait_for_shutdown(
        self, trigger: ShutdownTrigger | None, handle_signals: bool, limit_hit: Future[None]
    ) -> None:
        async with trio.open_nursery() as nursery:

            async def stop_on(waiting: ShutdownTrigger) -> None:
                with contextlib.suppress(ShutdownError):
                    await waiting()
                nursery.cancel_scope.cancel()

            async def hit() -> None:
                await limit_hit

            nursery.start_soon(stop_on, hit)
            if trigger is not None:
                nursery.start_soon(stop_on, trigger)
            if handle_signals and threading.current_thread() is threading.main_thread():
                nursery.start_soon(stop_on, _signalled)


async def _signalled() -> None:
    with trio.open_signal_receiver(*_SHUTDOWN_SIGNALS) as signals:
        async for _ in signals:
            return


def binds(config: Config, sockets: Sockets) -> list[str]:
    """The URLs of the TCP and unix listeners, as ``task_status.started`` reports them."""
    urls = [
        f"https://{repr_socket_addr(s.family, s.getsockname())}" for s in sockets.secure_sockets
    ]
    urls += [
        f"http://{repr_socket_addr(s.family, s.getsockname())}" for s in sockets.insecure_sockets
    ]
    return urls


async def serve_trio(
    app: ASGIFramework,
    config: Config,
    sockets: Sockets,
    *,
    shutdown_trigger: ShutdownTrigger | None = None,
    handle_signals: bool = False,
    hooks: WorkerHooks = NO_HOOKS,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """``serve_sockets`` in the running trio program; see the module doc.

    Args:
        app: the ASGI application (wrapped by ``wrap_app``).
        config: the server's settings.
        sockets: listening sockets; they are closed as the listeners stop.
        shutdown_trigger: an async callable whose return starts shutdown.
        handle_signals: also stop on SIGINT/SIGTERM (main thread only).
        hooks: how the worker reports to the process that runs it.
        task_status: ``started(binds)`` once the app started and the sockets are served.

    Raises:
        LifespanFailureError, LifespanTimeoutError: the app's startup or shutdown failed.
    """
    ready = hooks.ready

    def started() -> None:
        task_status.started(binds(config, sockets))
        if ready is not None:
            ready()

    failure: Exception | None = None
    serving = trio.CancelScope()  # the caller's cancellation, passed on to serve_sockets
    async with trio.open_nursery() as guard:
        guard.start_soon(_pass_cancellation_on, serving)
        # The worker's own tasks (lifespan, timers, connections) do not see the
        # caller's cancellation: the cleanup after it still needs them.
        with trio.CancelScope(shield=True):
            async with trio.open_nursery() as nursery:
                loop = TrioLoop(nursery)
                try:
                    with using_trio_loop(loop), serving:
                        await serve_sockets(
                            app,
                            config,
                            sockets,
                            shutdown_trigger=shutdown_trigger,
                            handle_signals=handle_signals,
                            hooks=dataclasses.replace(hooks, ready=started),
                            io=TrioIO(loop, nursery),
                        )
                except Exception as error:
                    failure = error  # raised as is, not in the nursery's ExceptionGroup
                finally:
                    loop.close()
                    nursery.cancel_scope.cancel()
        guard.cancel_scope.cancel()
    if failure is not None:
        raise failure


async def _pass_cancellation_on(serving: trio.CancelScope) -> None:
    try:
        await trio.sleep_forever()
    finally:
        serving.cancel()


def run_trio(
    app: ASGIFramework,
    config: Config,
    sockets: Sockets,
    shutdown_event: MPEvent | None,
    hooks: WorkerHooks,
    shutdown_fd: int | None = None,
) -> None:
    """Serve in a new trio run until ``shutdown_event`` is set, ``shutdown_fd``
    becomes readable (the master's channel), SIGINT or SIGTERM."""
    trigger: ShutdownTrigger | None = None
    if shutdown_event is not None:
        trigger = functools.partial(check_multiprocess_shutdown_event, shutdown_event, trio.sleep)
    elif shutdown_fd is not None:
        trigger = functools.partial(trio.lowlevel.wait_readable, shutdown_fd)
    trio.run(
        functools.partial(
            serve_trio, app, config, sockets,
            shutdown_trigger=trigger, handle_signals=True, hooks=hooks,
        )
    )  # fmt: skip
