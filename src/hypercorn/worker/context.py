"""What every connection of one worker shares: the app, the config, the loop,
the lifespan state, and the registry that graceful shutdown drains.

Theory of operation
-------------------
A ``WorkerContext`` is created per ``serve`` call. Connections register
themselves in ``connections`` when the transport is made and leave when it is
lost (an accepted socket is ``arriving`` until then); every application
task is started through ``spawn`` and leaves ``tasks`` when it finishes.
Shutdown sets ``draining`` (new responses then say ``connection: close``,
busy connections close when their response ends) and waits, up to
``graceful_timeout``, for the three collections to empty; ``abort`` then ends
what is left. The ``_idle`` event is set exactly when draining and all three
are empty, so the wait needs no polling.

On asyncio (and uvloop) from Python 3.12 an application task starts eagerly
(``shared.eventloop.start_task``): its first step runs inside ``spawn``, so a
request whose app answers without suspending is served within the
``data_received`` that brought it, and its task is never tracked. The
connection's step takes that re-entry into account (``worker/io.py``).
Connections hold what they send for the end of the loop's pass (from a read
or from a task alike): ``hold_output`` lists the connections holding some,
and one callback per pass has each write it.
trio has no eager start: its task runs in the scheduler's next batch.

An idle keep-alive connection is not closed the instant draining starts: a
client may be sending its next request at that very moment, and would see the
connection close with nothing received. It stays open for ``drain_grace``
seconds; a request that arrives is served with ``connection: close``.

A request limit (``max_requests`` plus jitter, drawn by the master) is kept
exactly for HTTP/1.1: every connection that is arriving (accepted, not yet
made: see ``worker/listener.py``) or new, or that its client has reused and
that is idle or kept alive by the response under way, or that has part of a
request in, is expected to bring one more request (draining answers it with
``connection: close``), so the worker stops accepting (``on_limit``) as soon
as the requests started plus those connections reach the limit. A connection
that carried one request is taken for a one-shot client and not counted; when
the limit stops the worker it drains like every other (see above), so a
request that its client sends after all is served, over the limit, rather
than met with a closed connection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from time import time as wall_time
from typing import TYPE_CHECKING, Any, Protocol

from hypercorn.shared.eventloop import (
    TASK_NAME,
    EventLoop,
    Future,
    Task,
    eager_starter,
    settle,
    start_task,
    wait_settled,
)
from hypercorn.shared.logging import Logger
from hypercorn.shared.metrics import WorkerCounters
from hypercorn.shared.wrappers import ASGIWrapper

if TYPE_CHECKING:
    from hypercorn.config import Config
    from hypercorn.typing import ASGIFramework
    from hypercorn.worker.protocol.events import Headers

MAX_DRAIN_GRACE = 1.0  # seconds an idle keep-alive connection stays open once draining


class Drainable(Protocol):
    """A connection as seen by shutdown."""

    @property
    def reusable(self) -> bool:
        """The connection may still bring a request: it is idle, or its
        response under way (already started) keeps it open."""

    def shutdown(self) -> None:
        """Close now if idle, else once the current response ends."""

    def abort(self) -> None:
        """Close at once, dropping whatever is unsent."""


class HoldsOutput(Protocol):
    """A connection holding output for the end of the loop's pass."""

    def release_held(self) -> None:
        """Write what it holds (nothing, if it was since lost or written)."""


class WorkerContext:
    """State shared by the connections of one serving worker.

    Args:
        app: the ASGI application (already wrapped).
        config: the server's config.
        loop: the running loop (asyncio's, or a ``TrioLoop``).
        state: the lifespan state; each request gets a shallow copy.
    """

    def __init__(
        self,
        app: ASGIFramework,
        config: Config,
        loop: EventLoop,
        state: dict[str, Any],
    ) -> None:
        # An ASGI app wrapped as is is called directly: one frame less per request.
        self.app = app.app if type(app) is ASGIWrapper else app
        self.config = config
        self.server_names = config.server_names  # read per request: a native attribute
        # protocol name -> (second, default response headers, their names)
        self._default_headers: dict[str, tuple[int, Headers, frozenset[bytes]]] = {}
        self.loop = loop
        # Where tasks start eagerly, ``spawn`` makes them itself (``start_task``'s
        # rule, decided here once: ``spawn`` runs per request and is compiled).
        starter = eager_starter(loop)
        self._task_class: Any = None if starter is None else starter[0]
        self._eager_loop: Any = None if starter is None else starter[1]
        self.state = state
        self.log: Logger = config.log
        # Cheap per-response test: only a configured access log, or a logger
        # class that overrides ``access`` (e.g. to count metrics), is called.
        self.access_log_enabled = (
            self.log.access_logger is not None or type(self.log).access is not Logger.access
        )
        self.connections: set[Drainable] = set()
        # Application tasks, by the coroutine each one runs.
        self.tasks: dict[Coroutine[Any, Any, None], Task] = {}
        # Accepted sockets whose protocol is not connected yet (TLS handshake).
        self.arriving: dict[Drainable, Task] = {}
        self.draining = False
        self.requests_served = 0
        self._held_output: list[HoldsOutput] = []  # see ``hold_output``
        self.counters = WorkerCounters()  # responses by status class and latency
        self.drain_grace = min(config.keep_alive_timeout, config.graceful_timeout, MAX_DRAIN_GRACE)
        self.request_limit: int | None = None
        self._on_limit: Callable[[], None] | None = None
        self._idle: Future[bool] = loop.create_future()  # True: drained
        self._tasks_ended: Future[None] | None = None  # made by abort()

    def hold_output(self, connection: HoldsOutput) -> None:
        """Have ``connection`` write what it holds at the end of this pass of the
        loop (one callback for every connection that holds some)."""
        held = self._held_output
        if not held:
            self.loop.call_soon(self._release_output)
        held.append(connection)

    def _release_output(self) -> None:
        held = self._held_output
        self._held_output = []
        for connection in held:
            connection.release_held()

    def default_headers(self, protocol: str) -> tuple[Headers, frozenset[bytes]]:
        """``Config.response_headers(protocol)`` and their names, made once a second."""
        now = int(wall_time())  # no module attribute lookup per response
        cached = self._default_headers.get(protocol)
        if cached is None or cached[0] != now:
            headers = tuple(self.config.response_headers(protocol))
            cached = (now, headers, frozenset(name for name, _ in headers))
            self._default_headers[protocol] = cached
        return cached[1], cached[2]

    def limit_requests(self, limit: int, on_limit: Callable[[], None]) -> None:
        """Call ``on_limit`` once, when ``limit`` requests are started or reserved."""
        self.request_limit = limit
        self._on_limit = on_limit

    def request_started(self) -> None:
        """Count a request (or WebSocket) handed to the application."""
        self.requests_served += 1
        self.check_limit()

    def check_limit(self) -> None:
        """Stop at the request limit, counting what the open connections may still bring.

        Called as a request starts, a connection opens and a response starts
        (one kept alive reserves the connection's next request).
        """
        if self._on_limit is None or self.draining:
            return
        assert self.request_limit is not None
        reserved = len(self.arriving)
        reserved += sum(1 for connection in self.connections if connection.reusable)
        if self.requests_served + reserved >= self.request_limit:
            on_limit, self._on_limit = self._on_limit, None
            on_limit()

    def start(self, coroutine: Coroutine[Any, Any, None], name: str = TASK_NAME) -> Task:
        """``start_task(self.loop, coroutine, name)``, made here where the loop
        starts tasks eagerly: a call from compiled code to compiled code, not
        to the interpreted ``start_task``, for every request and connection."""
        loop = self._eager_loop
        if loop is not None and loop.get_task_factory() is None:
            task: Task = self._task_class(coroutine, loop=loop, name=name, eager_start=True)
            return task
        return start_task(self.loop, coroutine, name)

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> Task:
        """Run an application coroutine as a tracked task (untracked as it ends).

        Where the loop allows it (``start_task``) the coroutine's first step
        runs now, inside the caller: a task that finished in it is not tracked.
        """
        task = self.start(self._tracked(coroutine))
        if not task.done():
            self.tasks[coroutine] = task
        return task

    async def _tracked(self, coroutine: Coroutine[Any, Any, None]) -> None:
        # Untracking in the task itself, not in a done callback, saves the
        # callback's own turn of the loop per request. A task cancelled
        # before its first step never gets here: ``abort`` forgets those.
        try:
            await coroutine
        except Exception:
            # Streams catch the app's errors themselves; this is a bug of ours.
            self.log.error_logger.exception("worker task failed")
        finally:
            self.tasks.pop(coroutine, None)
            self._check_idle()
            if self._tasks_ended is not None and not self.tasks:
                settle(self._tasks_ended)

    def arrive(self, connection: Drainable, task: Task) -> None:
        """Track an accepted socket that ``task`` connects, until ``add_connection``
        (its protocol is connected) or ``arrived`` (the task ended)."""
        self.arriving[connection] = task

    def arrived(self, connection: Drainable) -> None:
        """The task connecting ``connection`` ended (connected, failed or cancelled)."""
        if self.arriving.pop(connection, None) is not None:
            self._check_idle()

    def add_connection(self, connection: Drainable) -> None:
        self.arriving.pop(connection, None)
        self.connections.add(connection)
        self.check_limit()

    def remove_connection(self, connection: Drainable) -> None:
        self.connections.discard(connection)
        self._check_idle()

    def _check_idle(self) -> None:
        if self.draining and not self.connections and not self.tasks and not self.arriving:
            settle(self._idle, True)

    def begin_drain(self) -> None:
        """Stop reusing connections: each closes after its current or next response
        (an idle one after ``drain_grace`` if no request comes)."""
        if self.draining:
            return
        self.draining = True
        for connection in list(self.connections):
            connection.shutdown()
        self._check_idle()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every connection and task to end.

        Returns:
            True if everything ended in time.
        """
        return await wait_settled(self.loop, self._idle, timeout, False)

    async def abort(self, timeout: float = 1.0) -> None:
        """Close every connection and cancel every task, waiting up to ``timeout`` for them."""
        for connection in list(self.connections):
            connection.abort()
        for arriving in list(self.arriving.values()):
            arriving.cancel()
        for task in list(self.tasks.values()):
            task.cancel()
        if self.tasks:
            self._tasks_ended = self.loop.create_future()
            # A task cancelled before its first step never runs ``_tracked``:
            # it is done a loop turn later, and forgotten then.
            self.loop.call_soon(self._forget_done_tasks)
            await wait_settled(self.loop, self._tasks_ended, timeout, None)
            self._forget_done_tasks()
            if self.tasks:
                self.log.error_logger.log(
                    logging.WARNING, "%d application task(s) ignored cancellation", len(self.tasks)
                )

    def _forget_done_tasks(self) -> None:
        for coroutine in [c for c, task in self.tasks.items() if task.done()]:
            del self.tasks[coroutine]
        if self._tasks_ended is not None and not self.tasks:
            settle(self._tasks_ended)
