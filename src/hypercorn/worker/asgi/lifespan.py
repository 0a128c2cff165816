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

import asyncio
import contextlib
import enum
from typing import TYPE_CHECKING, Any

from hypercorn.shared.errors import (
    LifespanFailureError,
    LifespanTimeoutError,
    UnexpectedMessageError,
)

if TYPE_CHECKING:
    from hypercorn.config import Config
    from hypercorn.typing import ASGIFramework, ASGIReceiveEvent, ASGISendEvent, LifespanScope


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
    """

    def __init__(self, app: ASGIFramework, config: Config, state: dict[str, Any]) -> None:
        self.app = app
        self.config = config
        self.state_dict = state
        self.state = LifespanState.IDLE
        self._inbox: asyncio.Queue[ASGIReceiveEvent] = asyncio.Queue()
        self._outcome: asyncio.Future[str | None] | None = None
        self._task: asyncio.Task[None] | None = None
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
        loop = asyncio.get_running_loop()
        scope: LifespanScope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state_dict,
        }
        self.state = LifespanState.STARTING
        self._outcome = loop.create_future()
        self._task = loop.create_task(self._run(scope))
        await self._inbox.put({"type": "lifespan.startup"})
        await self._wait("startup", self.config.startup_timeout)
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
        self.state = LifespanState.STOPPING
        self._outcome = asyncio.get_running_loop().create_future()
        await self._inbox.put({"type": "lifespan.shutdown"})
        try:
            await self._wait("shutdown", self.config.shutdown_timeout)
            self.state = LifespanState.STOPPED
        finally:
            await self.close()

    async def close(self) -> None:
        """End the lifespan task if it still runs (it may wait on ``receive`` forever)."""
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _wait(self, stage: str, timeout: float) -> None:
        assert self._outcome is not None
        try:
            failure = await asyncio.wait_for(asyncio.shield(self._outcome), timeout)
        except TimeoutError:
            await self.close()
            raise LifespanTimeoutError(stage) from None
        if failure is not None:
            await self.close()
            raise LifespanFailureError(stage, failure)

    def _resolve(self, failure: str | None) -> None:
        if self._outcome is not None and not self._outcome.done():
            self._outcome.set_result(failure)

    async def _run(self, scope: LifespanScope) -> None:
        log = self.config.log
        try:
            await self.app(scope, self.receive, self.send)
        except asyncio.CancelledError:
            raise
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
        return await self._inbox.get()

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
