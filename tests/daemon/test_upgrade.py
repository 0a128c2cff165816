"""USR2 binary upgrade under a constant load (issue test 4): a new master on the
same listeners, zero failed requests, the PID file handed over, the old master
gone."""

from __future__ import annotations

import signal
from pathlib import Path

import psutil
import pytest

from tests.daemon.helpers import Daemons, alive, pid_in, run_hypercorn, wait_for
from tests.supervisor.harness import Load, master


@pytest.mark.slow
def test_usr2_upgrade_under_load_fails_no_request(tmp_path: Path, daemons: Daemons) -> None:
    pid_file = tmp_path / "hc.pid"
    with master(tmp_path, "-p", "hc.pid", workers=2) as server:
        old = server.pid
        old_workers = server.workers()
        with Load(server.port, rate=200, keep_alive=2, fresh=2, max_seconds=60) as load:
            load.wait_sent(100)
            seen_second: list[int | None] = []

            def taken_over() -> bool:
                seen_second.append(pid_in(tmp_path / "hc.pid.2"))
                new = pid_in(pid_file)
                return new is not None and new != old

            server.kill(signal.SIGUSR2)
            wait_for(taken_over, 30, "the new master to take the PID file")
            new = daemons.track(pid_file)
            assert new in seen_second  # it held <pidfile>.2 while booting
            assert server.process.wait(30) == 0  # the old master drained and left
            wait_for(lambda: not (tmp_path / "hc.pid.2").exists(), 10, "<pidfile>.2 removed")
            sent = load.result.sent
            load.wait_sent(sent + 100)
        result = load.stop()
        assert not any(alive(pid) for pid in old_workers)
        new_workers = {child.pid for child in psutil.Process(new).children()}
        assert len(new_workers) == 2
        assert result.failures == [], result.failures[:5]
        assert set(result.pids) & new_workers, "the new workers served"
        assert f"USR2: started new master {new}" in server.log()
        status = run_hypercorn("ctl", "status", "--pid", "hc.pid", cwd=tmp_path)
        assert status.returncode == 0 and f"pid {new}" in status.stdout
        assert run_hypercorn("ctl", "stop", "--pid", "hc.pid", cwd=tmp_path).returncode == 0
        assert not pid_file.exists()
