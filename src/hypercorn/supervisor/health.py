"""The master's health: ``/livez``, ``/readyz`` and the drain before a stop.

Theory of operation
-------------------
A load balancer or Kubernetes asks two questions of a host, and the master is
the only process that can answer both:

- *live* (``GET /livez``): the master's loop turns and at least one worker
  process exists (or is being made: the application importing for it). The
  endpoint is served by that very loop (``endpoint.py``), so a master stuck
  anywhere answers nothing, which is the failure a liveness probe exists to
  see.
- *ready* (``GET /readyz``): send traffic here. 200 only while the configured
  number of workers of the serving code are READY and nothing below holds;
  503 otherwise, with one line saying why. The reasons, first match wins:
  ``stopping``; ``draining`` (TERM with ``drain_delay``, or ``hypercorn ctl
  drain``); ``degraded`` (a deploy was refused: the workers serve the last
  good code, not the code on disk); ``starting`` (fewer workers READY than
  configured: first boot, or a worker being replaced).

``readiness`` and ``liveness`` are pure functions of a ``Snapshot`` the master
takes each time it is asked, so the rules are table-tested without a process.

Drain. ``Drain`` holds when the master stopped asking for traffic and when it
will stop. TERM starts a drain (unless one runs) and schedules the graceful
stop ``drain_delay`` seconds after the drain began: a host drained earlier
with ``ctl drain`` stops as soon as its delay has passed. A second TERM during
the delay stops at once. Until the stop the master supervises as usual (a
crashed worker is replaced) and the workers serve every request that still
arrives. A drain without a stop ends when a reload completes (``drain`` then
HUP with new code, the host is back in rotation once the new workers serve).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from hypercorn.supervisor.endpoint import TEXT, Reply, Route

__all__ = ["Drain", "Readiness", "Snapshot", "liveness", "readiness", "routes"]


class Readiness(enum.Enum):
    READY = "ready"
    STARTING = "starting"
    DEGRADED = "degraded"
    DRAINING = "draining"
    STOPPING = "stopping"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the master knows when asked.

    Attributes:
        alive: worker processes that exist (booting, serving or retiring), and
            processes importing the application to make them.
        ready: READY workers of the generation that serves (not retiring).
        target: the configured number of workers.
        draining: a drain has begun (readiness withdrawn, still serving).
        stopping: the graceful stop has begun.
        degraded: why the workers serve older code than asked for, or None.
    """

    alive: int
    ready: int
    target: int
    draining: bool = False
    stopping: bool = False
    degraded: str | None = None


def readiness(state: Snapshot) -> tuple[Readiness, str]:
    """The host's readiness and one line that says why."""
    serving = f"{state.ready} of {state.target} worker(s) serving"
    if state.stopping:
        return Readiness.STOPPING, f"stopping; {serving}"
    if state.draining:
        return Readiness.DRAINING, f"draining: out of rotation before a stop or deploy; {serving}"
    if state.degraded is not None:
        return Readiness.DEGRADED, f"degraded: {state.degraded}; {serving} the last good code"
    if state.ready < state.target:
        return Readiness.STARTING, f"starting: {state.ready} of {state.target} worker(s) ready"
    return Readiness.READY, f"ready: {serving}"


def liveness(state: Snapshot) -> tuple[bool, str]:
    """Whether the master is alive (it answers at all) with a worker process."""
    if state.alive == 0:
        return False, "no worker process alive"
    return True, f"alive: {state.alive} worker process(es)"


def routes(snapshot: Callable[[], Snapshot]) -> dict[str, Route]:
    """The endpoint's routes: ``/livez`` and ``/readyz`` rendered from ``snapshot()``."""

    def livez() -> Reply:
        ok, why = liveness(snapshot())
        return (200 if ok else 503), TEXT, why + "\n"

    def readyz() -> Reply:
        state, why = readiness(snapshot())
        return (200 if state is Readiness.READY else 503), TEXT, why + "\n"

    return {"/livez": livez, "/readyz": readyz}


class Drain:
    """When the master withdrew its readiness, and when it stops; see the module docstring."""

    def __init__(self) -> None:
        self.since: float | None = None
        self.stop_at: float | None = None

    @property
    def draining(self) -> bool:
        return self.since is not None

    def begin(self, now: float) -> bool:
        """Withdraw readiness (``ctl drain``); False if a drain already runs."""
        if self.since is not None:
            return False
        self.since = now
        return True

    def terminate(self, now: float, delay: float) -> float:
        """TERM: drain, and stop ``delay`` seconds after the drain began (at once if
        this is the second TERM). Returns when the stop is due."""
        if self.stop_at is not None:
            self.stop_at = now
            return now
        self.begin(now)
        assert self.since is not None
        self.stop_at = max(now, self.since + delay)
        return self.stop_at

    def drained(self, now: float, delay: float) -> bool:
        """Whether the drain has lasted ``delay`` (a balancer had its time)."""
        return self.since is not None and now >= self.since + delay

    def stop_due(self, now: float) -> bool:
        return self.stop_at is not None and now >= self.stop_at

    def end(self) -> None:
        """Back in rotation (a reload completed), unless a stop is scheduled."""
        if self.stop_at is None:
            self.since = None
