"""TTIN/TTOU change the worker count by one; USR1 reopens the log files."""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from pathlib import Path

from tests.supervisor.harness import master, wait_for


def test_ttin_and_ttou_add_and_remove_one_worker(tmp_path: Path) -> None:
    with master(tmp_path, workers=2) as server:
        server.kill(signal.SIGTTIN)
        server.wait_ready(3)
        server.kill(signal.SIGTTOU)
        server.wait_ready(2)
        server.kill(signal.SIGTTOU)
        server.wait_ready(1)
        server.kill(signal.SIGTTOU)  # never below one
        # The kernel delivers pending signals by number, not by sending order:
        # each signal is sent once the previous one was handled.
        wait_for(lambda: server.log().count("TTOU: 1 worker(s)") == 2, 5, "the last TTOU")
        server.kill(signal.SIGTTIN)
        server.wait_ready(2)
        assert server.get()[0] == 200


def test_usr1_reopens_a_moved_access_log(tmp_path: Path) -> None:
    with master(tmp_path, "--access-logfile", "access.log", workers=2) as server:
        server.get("/before")
        wait_for(lambda: "/before" in (tmp_path / "access.log").read_text(), 5, "a log line")
        (tmp_path / "access.log").rename(tmp_path / "access.log.1")
        server.kill(signal.SIGUSR1)

        rounds = itertools.count()

        def every_worker_reopened() -> bool:
            marker = f"/round-{next(rounds)}"
            for _ in range(10):
                server.get(marker)
            new, old = tmp_path / "access.log", tmp_path / "access.log.1"

            def written() -> int:
                return old.read_text().count(marker) + (
                    new.exists() and new.read_text().count(marker)
                )

            wait_for(lambda: written() == 10, 5, "the lines written")
            return new.exists() and new.read_text().count(marker) == 10

        wait_for(every_worker_reopened, 10, "every worker logging to the new file")


def test_a_signal_to_a_child_being_forked_is_not_run_by_the_master_handler(
    tmp_path: Path,
) -> None:
    # Signals to the whole process group (as a terminal or a service manager
    # sends them) while the master forks children again and again: a child
    # must never run the master's handler against the master's wake-up pipe,
    # which it has closed ("Exception ignored ... Bad file descriptor").
    with master(tmp_path, workers=2, new_session=True) as server:
        group = os.getpgid(server.pid)
        stop = threading.Event()

        def storm() -> None:
            while not stop.is_set():
                os.killpg(group, signal.SIGUSR1)
                time.sleep(0.0002)

        thread = threading.Thread(target=storm)
        thread.start()
        try:
            for _ in range(30):
                server.kill(signal.SIGHUP)  # a new generation: new children forked
                time.sleep(0.05)
        finally:
            stop.set()
            thread.join()
        server.wait_ready(2, seconds=30)
        log = server.log()
    assert "Bad file descriptor" not in log and "Exception ignored" not in log, log[-3000:]
