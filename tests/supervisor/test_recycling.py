"""Recycling: max_requests with jitter, and the memory ceiling."""

from __future__ import annotations

import re
from pathlib import Path

import psutil
import pytest

from tests.supervisor.harness import Load, master, request, wait_for


@pytest.mark.slow
@pytest.mark.parametrize("worker_class", ["asyncio", "trio"])
def test_max_requests_with_jitter(tmp_path: Path, worker_class: str) -> None:
    args = ("--max-requests", "100", "--max-requests-jitter", "20", "-k", worker_class)
    with master(tmp_path, *args, workers=2) as server:
        with Load(server.port, rate=250, keep_alive=2, fresh=2, max_requests=2400) as load:
            load.wait_sent(2000, seconds=60)
            # Workers gone while the clients still send: each got every request
            # its limit counted on (a worker retired as the load ends may not).
            seen = load.responders()
            alive = server.workers()
            result = load.stop()
        log = server.log()
    assert result.sent >= 2000 and result.failures == [], result.failures[:10]
    finished = {pid: result.pids[pid] for pid in seen if pid not in alive}
    # Each worker stopped at its own limit (max_requests + its jitter): a
    # worker stops accepting once the requests it served plus those its open
    # connections are expected to bring reach the limit. A keep-alive
    # connection that carried one request is not counted (most such clients
    # are done), but it drains as on a reload: if its client sends one more
    # request after all, that request is served, over the limit, rather than
    # lost. So a worker serves at most one over per keep-alive client (2).
    keep_alive = 2
    assert len(finished) >= 14, result.pids
    assert all(100 <= n <= 120 + keep_alive for n in finished.values()), finished
    assert all(n <= 120 + keep_alive for n in result.pids.values()), result.pids
    limits = {
        int(pid): int(limit)
        for pid, limit in re.findall(r"Worker (\d+) served \d+ requests \(limit (\d+)\)", log)
    }
    assert finished.keys() <= limits.keys(), (finished, limits)
    over = {pid: (n, limits[pid]) for pid, n in finished.items() if n > limits[pid] + keep_alive}
    assert not over, over
    short = {pid: limits[pid] - n for pid, n in finished.items() if n < limits[pid]}
    print(
        f"\nmax_requests 100+20 ({worker_class}): "
        f"served per retired worker {sorted(finished.values())}; "
        f"{len(finished) - len(short)} exactly at their limit, short by {sorted(short.values())}; "
        f"keep-alive retries {result.stale_retries}"
    )


@pytest.mark.slow
@pytest.mark.parametrize("worker_class", ["asyncio", "trio"])
def test_recycling_under_paced_keep_alive_loses_no_request(
    tmp_path: Path, worker_class: str
) -> None:
    # Clients that idle 50-150 ms on their connection between requests: a worker
    # that stops at its limit meets many idle connections that carried one
    # request. It drains them as a reload does: each lingers, and a request that
    # arrives is served with ``connection: close``.
    args = ("--max-requests", "40", "--max-requests-jitter", "10", "-k", worker_class)
    with master(tmp_path, *args, workers=2) as server:
        load = Load(server.port, keep_alive=24, fresh=0, idle=(0.05, 0.15),
                    max_requests=3000, max_seconds=90)  # fmt: skip
        with load:
            load.wait_sent(3000, seconds=90)
            result = load.stop()
        recycled = len(re.findall(r"Worker \d+ served \d+ requests", server.log()))
    print(f"\npaced keep-alive through max_requests ({worker_class}): sent {result.sent}, failed "
          f"{len(result.failures)}, retried {result.stale_retries}, "
          f"{recycled} workers recycled")  # fmt: skip
    assert result.sent >= 3000
    assert recycled >= 30
    assert result.failures == [], (len(result.failures), result.failures[:5])
    assert result.stale_retries == 0


def test_worker_over_the_memory_ceiling_is_replaced(tmp_path: Path) -> None:
    args = ("--max-worker-memory", "150M", "--memory-check-interval", "0.2")
    with master(tmp_path, *args, workers=2) as server:
        with Load(server.port, rate=100, keep_alive=1, fresh=1) as load:
            load.wait_sent(50)
            status, body = request(server.port, "/leak?200000000")
            assert status == 200
            leaky = int(body.split()[1])
            wait_for(lambda: not psutil.pid_exists(leaky), 20, "the leaky worker replaced")
            server.wait_ready(2)
            load.wait_sent(load.result.sent + 50)
            result = load.stop()
        assert result.failures == [], result.failures
        assert f"Worker {leaky} uses" in server.log()
