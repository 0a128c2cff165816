"""The ASGI lifespan protocol: the app's startup and shutdown hooks.

Theory of operation
-------------------
``Lifespan`` runs the app once with a ``lifespan`` scope, in its own task,
for the life of the worker. ``startup()`` queues ``lifespan.startup`` and
waits, up to ``startup_timeout``, for one of three outcomes:

* ``lifespan.startup.complete``: serving begins;
* ``lifespan.startup.failed``: ``LifespanFailureError("startup", message)``,
  and the worker does not serve;
* the app's task ends (raises or returns) before it sent anything: the app
  does not speak lifespan (many WSGI-era or minimal apps raise on an unknown
  scope type). That is not an error: it is logged at INFO and the worker
  serves without lifespan, and ``shutdown()`` will do nothing.

``shutdown()`` queues ``lifespan.shutdown`` and waits, up to
``shutdown_timeout``, for ``complete`` or ``failed`` likewise, then ends the
task. The scope's ``state`` dict is the one requests copy (shallowly) into
their own scopes. A message out of order or of unknown type raises
``UnexpectedMessageError`` inside the app's ``send``.
"""

from __future__ import annotations

import collections
import enum
from typing import TYPE_CHECKING, Any

from hypercorn.shared.errors import (
    LifespanFailureError,
    LifespanTimeoutError,
    UnexpectedMessageError,
)
from hypercorn.shared.eventloop import EventLoop, Future, Task, current_loop, settle, wait_settled

if TYPE_CHECKING:
    from hypercorn.config import Config
    from hypercorn.typing import ASGIFramework, ASGIReceiveEvent, ASGISendEvent, LifespanScope

_TIMED_OUT = "\0timed out"  # the outcome a timeout settles; no app sends it


class LifespanState(enum.Enum):
    IDLE = "not started"
    STARTING = "lifespan.startup sent"
    STARTED = "startup complete"
    STOPPING = "lifespan.shutdown sent"
    STOPPED = "shutdown complete"
    UNSUPPORTED = "the app does not speak lifespan"


class Lifespan:
    """Drives one app's lifespan scope.

    Args:
        app: the ASGI application.
        config: supplies ``startup_timeout``, ``shutdown_timeout`` and the logger.
        state: the lifespan state dict shared with requests.
        loop: the running loop (by default ``current_loop()`` at startup).
    """

    def __init__(
        self,
        app: ASGIFramework,
        config: Config,
        state: dict[str, Any],
        loop: EventLoop | None = None,
    ) -> None:
        self.app = app
        self.config = config
        self.state_dict = state
        self.state = LifespanState.IDLE
        self._loop = loop
        self._inbox: collections.deque[ASGIReceiveEvent] = collections.deque()
        self._inbox_waiter: Future[None] | None = None
        self._outcome: Future[str | None] | None = None
        self._task: Task | None = None
        self._ended: Future[None] | None = None  # set as the app's task ends
        self._sent_anything = False

    @property
    def supported(self) -> bool:
        return self.state is not LifespanState.UNSUPPORTED

    async def startup(self) -> None:
        """Run the app's startup.

        Raises:
            LifespanTimeoutError: no answer within ``startup_timeout``.
            LifespanFailureError: the app sent ``lifespan.startup.failed``.
        """
        if self._loop is None:
            self._loop = current_loop()
        loop = self._loop
        scope: LifespanScope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state_dict,
        }
        self.state = LifespanState.STARTING
        self._outcome = loop.create_future()
        self._ended = loop.create_future()
        self._task = loop.create_task(self._run(scope, self._ended))
        self._put({"type": "lifespan.startup"})
        try:
            await self._wait("startup", self.config.startup_timeout)
        except BaseException:
            # Cancelled as the app reported success (asyncio's cancellation can
            # land after the outcome is set, as on 3.12+): it started, and is
            # owed its shutdown.
            outcome = self._outcome
            if self.state is LifespanState.STARTING and outcome.done() and outcome.result() is None:
                self.state = LifespanState.STARTED
            raise
        if self.state is LifespanState.STARTING:
            self.state = LifespanState.STARTED

    async def shutdown(self) -> None:
        """Run the app's shutdown, then end its lifespan task.

        Raises:
            LifespanTimeoutError: no answer within ``shutdown_timeout``.
            LifespanFailureError: the app sent ``lifespan.shutdown.failed``.
        """
        if self.state is not LifespanState.STARTED:
            await self.close()
            return
        assert self._loop is not None
        self.state = LifespanState.STOPPING
        self._outcome = self._loop.create_future()
        self._put({"type": "lifespan.shutdown"})
        try:
            await self._wait("shutdown", self.config.shutdown_timeout)
            self.state = LifespanState.STOPPED
        finally:
            await self.close()

    async def close(self) -> None:
        """End the lifespan task if it still runs (it may wait on ``receive`` forever)."""
        task, ended = self._task, self._ended
        if task is not None and ended is not None and not ended.done():
            task.cancel()
            await ended

    async def _wait(self, stage: str, timeout: float) -> None:
        assert self._outcome is not None and self._loop is not None
        failure = await wait_settled(self._loop, self._outcome, timeout, _TIMED_OUT)
        if failure is _TIMED_OUT:
            await self.close()
            raise LifespanTimeoutError(stage) from None
        if failure is not None:
            await self.close()
            raise LifespanFailureError(stage, failure)

    def _resolve(self, failure: str | None) -> None:
        if self._outcome is not None:
            settle(self._outcome, failure)

    def _put(self, message: ASGIReceiveEvent) -> None:
        self._inbox.append(message)
        if self._inbox_waiter is not None:
            settle(self._inbox_waiter)

    async def _run(self, scope: LifespanScope, ended: Future[None]) -> None:
        try:
            await self._call(scope)
        finally:
            settle(ended)

    async def _call(self, scope: LifespanScope) -> None:
        log = self.config.log
        try:
            await self.app(scope, self.receive, self.send)
        except Exception as error:
            if not self._sent_anything:
                self.state = LifespanState.UNSUPPORTED
                await log.info(
                    "ASGI lifespan not supported by the application (%s: %s); serving without it",
                    type(error).__name__,
                    error,
                )
                self._resolve(None)
            else:
                await log.exception("Error in the ASGI application's lifespan")
                self._resolve(f"{type(error).__name__}: {error}")
        else:
            if not self._sent_anything:
                self.state = LifespanState.UNSUPPORTED
                await log.debug("the ASGI application returned from lifespan; serving without it")
            # An app that returns instead of answering ``lifespan.shutdown`` is done too.
            self._resolve(None)

    async def receive(self) -> ASGIReceiveEvent:
        """ASGI ``receive`` of the lifespan scope."""
        while not self._inbox:
            assert self._loop is not None
            waiter = self._inbox_waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                self._inbox_waiter = None
        return self._inbox.popleft()

    async def send(self, message: ASGISendEvent) -> None:
        """ASGI ``send`` of the lifespan scope.

        Raises:
            UnexpectedMessageError: the message does not answer the pending stage.
        """
        kind = message.get("type")
        state = self.state
        self._sent_anything = True
        if state is LifespanState.STARTING and kind == "lifespan.startup.complete":
            self._resolve(None)
        elif state is LifespanState.STARTING and kind == "lifespan.startup.failed":
            self._resolve(str(message.get("message", "")))
        elif state is LifespanState.STOPPING and kind == "lifespan.shutdown.complete":
            self._resolve(None)
        elif state is LifespanState.STOPPING and kind == "lifespan.shutdown.failed":
            self._resolve(str(message.get("message", "")))
        else:
            raise UnexpectedMessageError(state, str(kind))
