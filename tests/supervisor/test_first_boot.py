"""The first boot: retried over ``boot_retry_window``, or stopped at once when no
retry can help; what the master says and when it says it is serving."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hypercorn.shared.cli import ExitCode
from tests.supervisor.harness import APP, master, scaled, wait_for

# Raises at import until the file ``database-up`` exists (a database not up yet).
WAITS_FOR_DATABASE = (
    "import os\n"
    "if not os.path.exists('database-up'):\n"
    "    raise RuntimeError('database unreachable')\n" + APP
)

LIFESPAN_FAILS = APP.replace(
    '            await send({"type": message["type"] + ".complete"})',
    '            await send({"type": message["type"] + ".failed", "message": "no database"})',
)


def _hypercorn(tmp_path: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hypercorn", "-b", "127.0.0.1:0", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=scaled(timeout),
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )


def test_an_import_that_raises_is_retried_over_the_window_then_exits_4(tmp_path: Path) -> None:
    (tmp_path / "crashy.py").write_text("raise RuntimeError('database unreachable')\n")
    window = f"{scaled(2):g}"  # room for a few imports on a loaded machine
    started = time.monotonic()
    result = _hypercorn(tmp_path, "-w", "4", "--boot-retry-window", window, "crashy:app")
    elapsed = time.monotonic() - started
    assert result.returncode == ExitCode.APP_LOAD, result.stderr
    assert float(window) <= elapsed < scaled(12)
    retries = re.findall(
        r"Boot failed \(attempt \d+: cannot import application .*; retrying in ([\d.]+) s",
        result.stderr,
    )
    # One import per attempt (not one per worker), retried with doubling backoff.
    assert len(retries) >= 2, result.stderr
    backoff = ["0.0"] + [f"{min(0.1 * 2**n, 5.0):.1f}" for n in range(len(retries))]
    assert retries == backoff[: len(retries)], retries  # 0.0, 0.1, 0.2, ... at most 5.0
    assert result.stderr.count("Traceback") == 1  # once, at the end
    # One line per retry, and at the end the traceback's last line and the error.
    assert result.stderr.count("RuntimeError: database unreachable") == len(retries) + 2
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        "hypercorn: error: cannot import application 'crashy:app': "
        f"RuntimeError: database unreachable (still failing after {window} s of retries)"
    )
    assert "serving" not in result.stderr


def test_an_import_that_succeeds_within_the_window_serves(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(WAITS_FOR_DATABASE)
    with master(tmp_path, "--boot-retry-window", "60", workers=2, wait=False) as server:
        wait_for(lambda: server.log().count("Boot failed") >= 2, 20, "two failed attempts")
        assert server.process.poll() is None
        (tmp_path / "database-up").touch()
        server.wait_ready(2)
        assert server.get()[0] == 200


@pytest.mark.parametrize(
    ("source", "path", "traceback"),
    [
        (APP.replace('VERSION = "v1"', "VERSION = = 'v1'"), "app:app", True),
        ("import no_such_dependency\n" + APP, "app:app", True),
        (APP, "nowhere:app", False),
        (APP, "app:nothing", False),
    ],
    ids=["syntax error", "missing dependency", "missing module", "missing attribute"],
)
def test_an_import_that_can_never_succeed_stops_at_once_with_exit_4(
    tmp_path: Path, source: str, path: str, traceback: bool
) -> None:
    (tmp_path / "app.py").write_text(source)
    started = time.monotonic()
    result = _hypercorn(tmp_path, "-w", "4", "--boot-retry-window", "60", path)
    assert result.returncode == ExitCode.APP_LOAD, result.stderr
    assert time.monotonic() - started < scaled(10)  # well within the window
    assert result.stderr.count("Traceback") == (1 if traceback else 0), result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("hypercorn: error: ")
    assert "Boot failed" not in result.stderr and "serving" not in result.stderr


@pytest.mark.parametrize("workers", ["1", "3"])
def test_app_not_found_stops_at_once_with_its_code(tmp_path: Path, workers: str) -> None:
    result = _hypercorn(tmp_path, "-w", workers, "nowhere:app")
    assert result.returncode == ExitCode.APP_LOAD, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("hypercorn: error: ")
    assert "Traceback" not in result.stderr


def test_a_failing_lifespan_startup_is_retried_then_exits_6(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(LIFESPAN_FAILS)
    window = f"{scaled(2):g}"
    started = time.monotonic()
    result = _hypercorn(tmp_path, "-w", "2", "--boot-retry-window", window, "app:app")
    assert result.returncode == ExitCode.LIFESPAN, result.stderr
    assert time.monotonic() - started >= float(window)
    attempts = re.findall(r"Boot failed \(attempt \d+: lifespan startup failed", result.stderr)
    assert len(attempts) >= 2
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        f"hypercorn: error: lifespan startup failed (still failing after {window} s of retries); "
        "see the errors above"
    )


def test_serving_is_said_once_the_workers_are_ready(tmp_path: Path) -> None:
    with master(tmp_path, workers=3) as server:
        wait_for(lambda: "serving" in server.log(), 10, "the serving line")
        log = server.log()
    lines = log.splitlines()
    serving = next(i for i, line in enumerate(lines) if "serving app:app with" in line)
    ready = [i for i, line in enumerate(lines) if re.search(r"Worker \d+ ready", line)]
    assert len(ready) == 3 and max(ready) < serving
    assert "with 3 worker(s)" in lines[serving]
