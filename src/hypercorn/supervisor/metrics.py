"""The master's Prometheus endpoint (``metrics_bind``): totals over every worker.

Theory of operation
-------------------
Workers count (``shared/metrics.py``) and send their cumulative counters with
each heartbeat; the master keeps the latest vector of each live worker in its
``WorkerHandle``. ``Totals`` adds, when a worker is reaped, that worker's last
counters to the totals of the workers gone, so a counter is the sum over live
workers plus the retired ones: it never goes backwards across a reload, a
recycle or a crash. The open-connections gauge is summed over live workers
only. The master counts itself what only it sees: worker restarts (a worker
that exited without being asked to: a crash, a kill for a heartbeat timeout,
a failed boot) and reloads (each HUP, ``--reload`` change, or control-command
reload that starts a new generation).

Serving stays inside the master's one synchronous loop (see
``docs/discussion/metrics.md``): ``/metrics`` is a route of the tiny server
of ``endpoint.py``. The text is rendered on request from the
totals; it costs the master nothing between scrapes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from hypercorn.shared.metrics import (
    BUCKETS,
    GAUGE_SLOTS,
    SLOTS,
    STATUS_CLASSES,
    buckets,
    latency_sum,
    open_connections,
    statuses,
)
from hypercorn.supervisor.endpoint import Route

__all__ = ["CONTENT_TYPE", "Totals", "routes"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Totals:
    """The master's side of the counters: the workers gone, restarts, reloads."""

    def __init__(self) -> None:
        self.retired = [0] * SLOTS
        self.restarts = 0
        self.reloads = 0

    def worker_gone(self, values: list[int]) -> None:
        """Keep the final counters of a worker that exited (gauges excepted)."""
        for index, value in enumerate(values):
            if index not in GAUGE_SLOTS:
                self.retired[index] += value

    def render(self, live: Iterable[list[int]], workers: int) -> str:
        """The Prometheus text (format 0.0.4) of the totals.

        Args:
            live: the latest counters of each live worker.
            workers: the number of workers serving (READY).
        """
        total = list(self.retired)
        connections = 0
        for values in live:
            connections += open_connections(values)
            for index, value in enumerate(values):
                if index not in GAUGE_SLOTS:
                    total[index] += value
        lines: list[str] = []

        def family(name: str, kind: str, doc: str) -> None:
            lines.append(f"# HELP hypercorn_{name} {doc}")
            lines.append(f"# TYPE hypercorn_{name} {kind}")

        family("requests_total", "counter", "HTTP responses sent, by status class.")
        for klass, count in zip(STATUS_CLASSES, statuses(total), strict=True):
            lines.append(f'hypercorn_requests_total{{status="{klass}"}} {count}')
        name = "request_duration_seconds"
        family(name, "histogram", "Time from a request's head to the end of its response.")
        cumulative = 0
        per_bucket = buckets(total)
        for bound, count in zip((*map(repr, BUCKETS), "+Inf"), per_bucket, strict=True):
            cumulative += count
            lines.append(f'hypercorn_{name}_bucket{{le="{bound}"}} {cumulative}')
        lines.append(f"hypercorn_{name}_sum {latency_sum(total)!r}")
        lines.append(f"hypercorn_{name}_count {cumulative}")
        family("open_connections", "gauge", "Client connections open in the workers.")
        lines.append(f"hypercorn_open_connections {connections}")
        family("workers", "gauge", "Workers serving.")
        lines.append(f"hypercorn_workers {workers}")
        family(
            "worker_restarts_total",
            "counter",
            "Workers replaced after exiting unasked (crash, timeout, failed boot).",
        )
        lines.append(f"hypercorn_worker_restarts_total {self.restarts}")
        family("reloads_total", "counter", "Rolling reloads started (HUP, file changes).")
        lines.append(f"hypercorn_reloads_total {self.reloads}")
        return "\n".join(lines) + "\n"


def routes(render: Callable[[], str]) -> dict[str, Route]:
    """The endpoint's one route: ``/metrics``, the text of ``render()``."""
    return {"/metrics": lambda: (200, CONTENT_TYPE, render())}
