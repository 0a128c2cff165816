"""Replacement policies: crashes, boot failures, hung workers."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hypercorn.shared.cli import ExitCode
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


def _hypercorn(tmp_path: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hypercorn", "-b", "127.0.0.1:0", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=scaled(timeout),
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )


def test_app_failing_at_import_stops_the_master_with_boot_failure(tmp_path: Path) -> None:
    (tmp_path / "crashy.py").write_text("raise RuntimeError('database unreachable')\n")
    started = time.monotonic()
    result = _hypercorn(tmp_path, "-w", "2", "--max-worker-boot-failures", "4", "crashy:app")
    assert time.monotonic() - started < scaled(20)
    assert result.returncode == ExitCode.BOOT_FAILURE, result.stderr
    assert "RuntimeError: database unreachable" in result.stderr
    assert 1 <= len(re.findall(r"Worker \d+ failed to boot", result.stderr)) <= 4
    assert result.stderr.strip().splitlines()[-1].startswith("hypercorn: error: 4 worker(s)")


@pytest.mark.parametrize("workers", ["1", "3"])
def test_app_not_found_stops_at_once_with_its_code(tmp_path: Path, workers: str) -> None:
    result = _hypercorn(tmp_path, "-w", workers, "nowhere:app")
    assert result.returncode == ExitCode.APP_LOAD, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("hypercorn: error: ")
    assert "Traceback" not in result.stderr
