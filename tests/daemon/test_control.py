"""``hypercorn ctl`` beyond the happy path: an aborted reload, a stop that must KILL,
a bad command line."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

from tests.daemon.helpers import APP, Daemons, alive, launch, run_hypercorn, wait_for
from tests.supervisor.harness import request


def test_reload_reports_abort_and_stop_kills_after_timeout(
    tmp_path: Path, daemons: Daemons
) -> None:
    (tmp_path / "app.py").write_text(APP)
    started, port = launch("--graceful-timeout", "30", cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    master = daemons.track(tmp_path / "hc.pid")
    (tmp_path / "app.py").write_text("raise RuntimeError('broken deploy')\n")
    reload = run_hypercorn("ctl", "reload", "-p", "hc.pid", "--timeout", "30", cwd=tmp_path)
    assert reload.returncode == 1, reload.stdout
    assert "reload failed" in reload.stdout
    (tmp_path / "app.py").write_text(APP)
    assert request(port)[0] == 200  # the old worker kept serving

    # A request the worker must finish holds the graceful stop past --timeout.
    slow = threading.Thread(target=_quietly, args=(port,), daemon=True)
    slow.start()
    wait_for((tmp_path / "slow-started").exists, 10, "the slow request")
    stop = run_hypercorn("ctl", "stop", "-p", "hc.pid", "--timeout", "0.5", cwd=tmp_path)
    assert stop.returncode == 0, stop.stdout
    assert "killed" in stop.stdout
    assert not alive(master) and not (tmp_path / "hc.pid").exists()
    assert run_hypercorn("ctl", "status", "-p", "hc.pid", cwd=tmp_path).returncode == 3


def _quietly(port: int) -> None:
    with contextlib.suppress(OSError):  # killed with the server
        request(port, "/slow?30", 40)


def test_usage_errors(tmp_path: Path) -> None:
    assert run_hypercorn("ctl", "status", cwd=tmp_path).returncode == 2  # no --pid
    assert run_hypercorn("ctl", "frobnicate", "-p", "x", cwd=tmp_path).returncode == 2
    start = run_hypercorn("ctl", "start", "-p", "x.pid", cwd=tmp_path)
    assert start.returncode == 2 and "-- module:app" in start.stdout
    daemon_no_master = run_hypercorn("-D", "-w", "0", "app:app", cwd=tmp_path)
    assert daemon_no_master.returncode == 2
