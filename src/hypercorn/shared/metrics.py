"""What a worker counts for the master's Prometheus endpoint, and its layout on the pipe.

Theory of operation
-------------------
A worker keeps ``WorkerCounters``: responses by status class (1xx..5xx), a
latency histogram with fixed bucket bounds (``BUCKETS``, plus one bucket past
the last bound), the sum of latencies in microseconds, and the number of open
connections. Every field but the last only grows, so a master that holds the
latest ``values()`` of each worker, plus the final values of the workers gone,
has totals that never go backwards across reloads and restarts.

``values()`` is a flat vector of integers in a fixed order (``SLOTS``); the
heartbeat carries it as one ``METRIC`` record per slot (``key`` = the index),
all in the same write as the heartbeat, so the master never sees half a
vector. The bucket counts are per bucket, not cumulative: cumulative sums are
the renderer's business.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "BUCKETS",
    "GAUGE_SLOTS",
    "SLOTS",
    "STATUS_CLASSES",
    "WorkerCounters",
    "buckets",
    "latency_sum",
    "open_connections",
    "statuses",
]

# Seconds; the bounds Prometheus client libraries use by default.
BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STATUS_CLASSES: tuple[str, ...] = ("1xx", "2xx", "3xx", "4xx", "5xx")

# The layout's offsets are literals (``Final``: the compiled core inlines them
# instead of looking up a module global per response); the check below keeps
# them in step with the tuples above.
_STATUS: Final = 0
_BUCKET: Final = 5  # _STATUS + len(STATUS_CLASSES)
_SUM_US: Final = 17  # _BUCKET + len(BUCKETS) + 1
_OPEN: Final = 18  # _SUM_US + 1
SLOTS: Final = 19  # _OPEN + 1
if (
    _STATUS + len(STATUS_CLASSES),
    _BUCKET + len(BUCKETS) + 1,
    _SUM_US + 1,
    _OPEN + 1,
) != (_BUCKET, _SUM_US, _OPEN, SLOTS):
    raise ImportError("hypercorn.shared.metrics: the slot offsets do not match BUCKETS")
GAUGE_SLOTS = frozenset({_OPEN})  # current values: summed over live workers only


class WorkerCounters:
    """One worker's cumulative counters (only the event loop's thread touches them)."""

    __slots__ = ("_values",)

    def __init__(self) -> None:
        self._values = [0] * SLOTS

    def observe(self, status: int, seconds: float) -> None:
        """Count one response of ``status`` that took ``seconds`` from request to end."""
        values = self._values
        if 200 <= status < 300:
            values[_STATUS + 1] += 1  # the common case, without the clamping below
        else:
            values[_STATUS + min(max(status // 100, 1), 5) - 1] += 1
        bucket = _BUCKET  # the first bound at or above ``seconds`` (a fast answer is the first)
        for bound in BUCKETS:
            if seconds <= bound:
                break
            bucket += 1
        values[bucket] += 1
        if seconds > 0:
            values[_SUM_US] += int(seconds * 1_000_000 + 0.5)

    def values(self, open_connections: int) -> list[int]:
        """The vector the heartbeat carries, with the current open connections."""
        values = list(self._values)
        values[_OPEN] = open_connections
        return values


def statuses(values: list[int]) -> list[int]:
    """Responses by status class, in the order of ``STATUS_CLASSES``."""
    return values[_STATUS:_BUCKET]


def buckets(values: list[int]) -> list[int]:
    """Responses per latency bucket (not cumulative); the last one is past ``BUCKETS``."""
    return values[_BUCKET:_SUM_US]


def latency_sum(values: list[int]) -> float:
    """The sum of latencies, in seconds."""
    return values[_SUM_US] / 1_000_000


def open_connections(values: list[int]) -> int:
    return values[_OPEN]
