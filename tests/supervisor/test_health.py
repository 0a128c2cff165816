"""Replacement policies: crashes, boot failures, hung workers."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from tests.supervisor.harness import Load, master, request, scaled, wait_for


def test_killed_worker_is_replaced_within_a_second_under_load(tmp_path: Path) -> None:
    with master(tmp_path, workers=3) as server:
        with Load(server.port, rate=200, max_seconds=30) as load:
            load.wait_sent(200)
            victim = min(server.workers())
            killed_at = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            replacement = wait_for(
                lambda: (
                    server.ready_workers() - {victim}
                    if len(server.ready_workers() - {victim}) == 3
                    else None
                ),
                5,
                "a replacement READY",
            )
            assert time.monotonic() - killed_at < scaled(1)
            load.wait_sent(load.result.sent + 200)
            result = load.stop()
        # Only the killed worker's in-flight requests may fail (none are slow here).
        assert len(result.failures) <= 5, result.failures
        assert victim not in replacement
        assert "exited unexpectedly" in server.log()


def test_hung_worker_is_killed_after_worker_timeout(tmp_path: Path) -> None:
    with master(tmp_path, "--worker-timeout", "2", workers=2) as server:
        before = server.workers()
        blocked_at = time.monotonic()
        with contextlib.suppress(OSError):  # the worker serving it is killed
            request(server.port, "/block?30", timeout=10)
        log = wait_for(
            lambda: "Worker timeout (pid" in server.log() and server.log(), 10, "timeout"
        )
        assert time.monotonic() - blocked_at < scaled(6)
        hung = next(pid for pid in before if f"Worker timeout (pid {pid})" in log)
        after = server.wait_ready(2)
        assert hung not in after
