"""The worker's counters, their records on the pipe, and the master's rendering."""

from __future__ import annotations

import os

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hypercorn.shared.messages import Message, MessageKind, MessageReader, send_many
from hypercorn.shared.metrics import (
    BUCKETS,
    SLOTS,
    WorkerCounters,
    buckets,
    latency_sum,
    open_connections,
    statuses,
)
from hypercorn.supervisor.metrics import Totals


class TestWorkerCounters:
    def test_status_classes_and_bucket_bounds(self) -> None:
        counters = WorkerCounters()
        for status, seconds in [(101, 0.0), (200, 0.005), (204, 0.0051), (404, 11.0), (503, 1.0)]:
            counters.observe(status, seconds)
        values = counters.values(open_connections=3)
        assert statuses(values) == [1, 2, 0, 1, 1]
        per_bucket = buckets(values)
        assert len(per_bucket) == len(BUCKETS) + 1
        assert per_bucket[0] == 2  # le="0.005" includes its bound
        assert per_bucket[1] == 1
        assert per_bucket[BUCKETS.index(1.0)] == 1
        assert per_bucket[-1] == 1  # past the last bound
        assert latency_sum(values) == pytest.approx(12.0101)
        assert open_connections(values) == 3


class TestPipeRecords:
    def test_a_heartbeat_with_counters_round_trips_in_one_write(self) -> None:
        read_fd, write_fd = os.pipe()
        try:
            os.set_blocking(write_fd, False)
            values = list(range(100, 100 + SLOTS))
            batch = [Message(MessageKind.METRIC, v, k) for k, v in enumerate(values)]
            assert send_many(write_fd, [*batch, Message(MessageKind.HEARTBEAT, 7)])
            data = os.read(read_fd, 65536)
        finally:
            os.close(read_fd)
            os.close(write_fd)
        reader = MessageReader()
        received = [m for chunk in (data[:5], data[5:]) for m in reader.feed(chunk)]
        assert received == [*batch, Message(MessageKind.HEARTBEAT, 7)]

    def test_a_batch_over_pipe_buf_is_refused(self) -> None:
        with pytest.raises(ValueError, match="PIPE_BUF"):
            send_many(-1, [Message(MessageKind.HEARTBEAT)] * 1000)


class TestTotals:
    def test_retired_workers_count_and_gauges_do_not_accumulate(self) -> None:
        gone, live = WorkerCounters(), WorkerCounters()
        gone.observe(200, 0.2)
        live.observe(500, 0.02)
        totals = Totals()
        totals.worker_gone(gone.values(open_connections=5))
        totals.restarts, totals.reloads = 1, 2
        text = totals.render([live.values(open_connections=2)], workers=1)
        families = {f.name: f for f in text_string_to_metric_families(text)}
        samples = {(s.name, tuple(s.labels.items())): s.value for f in families.values()
                   for s in f.samples}  # fmt: skip
        assert samples[("hypercorn_requests_total", (("status", "2xx"),))] == 1
        assert samples[("hypercorn_requests_total", (("status", "5xx"),))] == 1
        assert samples[("hypercorn_request_duration_seconds_bucket", (("le", "0.025"),))] == 1
        assert samples[("hypercorn_request_duration_seconds_bucket", (("le", "+Inf"),))] == 2
        assert samples[("hypercorn_request_duration_seconds_count", ())] == 2
        assert samples[("hypercorn_request_duration_seconds_sum", ())] == pytest.approx(0.22)
        assert samples[("hypercorn_open_connections", ())] == 2
        assert samples[("hypercorn_worker_restarts_total", ())] == 1
        assert samples[("hypercorn_reloads_total", ())] == 2
        assert families["hypercorn_request_duration_seconds"].type == "histogram"
