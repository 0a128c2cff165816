"""The PID file's rules, on real processes: stale, live, not ours, removal."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from hypercorn.shared.cli import AlreadyRunningError
from hypercorn.supervisor.pidfile import (
    check_pid_file,
    is_hypercorn,
    not_ours,
    read_pid_file,
    remove_pid_file,
    write_pid_file,
)
from tests.supervisor.harness import wait_for


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        yield process
    finally:
        process.kill()
        process.wait()


@pytest.fixture
def fake_hypercorn(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    script = tmp_path / "hypercorn"
    script.write_text("import time\ntime.sleep(600)\n")
    process = subprocess.Popen([sys.executable, str(script)])
    try:
        # Popen returns once exec began: the new command line shows a moment later.
        wait_for(lambda: str(script) in psutil.Process(process.pid).cmdline(), 10, "exec")
        yield process
    finally:
        process.kill()
        process.wait()


def test_missing_or_garbage_file_is_not_running(tmp_path: Path) -> None:
    path = tmp_path / "hc.pid"
    check_pid_file(str(path))
    path.write_text("not a pid\n")
    assert read_pid_file(str(path)) is None
    check_pid_file(str(path), warn=False)


def test_a_live_process_that_is_not_hypercorn_is_stale(
    tmp_path: Path, sleeper: subprocess.Popen[bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "hc.pid"
    path.write_text(f"{sleeper.pid}\n")
    assert not is_hypercorn(sleeper.pid)
    check_pid_file(str(path))
    assert (
        f"replacing stale PID file {path} (pid {sleeper.pid} is not a hypercorn master "
        f"({sys.executable} -c import time"
    ) in capsys.readouterr().err
    sleeper.kill()
    sleeper.wait()
    check_pid_file(str(path))
    assert f"(pid {sleeper.pid} is not running)" in capsys.readouterr().err


def test_a_worker_is_not_a_master(tmp_path: Path) -> None:
    title = "hypercorn: worker [app:app]"
    code = f"import setproctitle, time; setproctitle.setproctitle({title!r}); time.sleep(600)"
    worker = subprocess.Popen([sys.executable, "-c", code])
    try:
        wait_for(lambda: psutil.Process(worker.pid).cmdline()[:1] == [title], 10, "the title")
        assert not is_hypercorn(worker.pid)
        assert not_ours(worker.pid) == f"pid {worker.pid} is not a hypercorn master ({title})"
    finally:
        worker.kill()
        worker.wait()


def test_a_live_hypercorn_owns_the_file(
    tmp_path: Path, fake_hypercorn: subprocess.Popen[bytes]
) -> None:
    path = tmp_path / "hc.pid"
    path.write_text(f"{fake_hypercorn.pid}\n")
    assert is_hypercorn(fake_hypercorn.pid)
    with pytest.raises(AlreadyRunningError) as caught:
        check_pid_file(str(path))
    assert caught.value.pid == fake_hypercorn.pid
    assert str(caught.value) == f"already running (pid {fake_hypercorn.pid}, PID file {path})"


def test_removed_only_while_it_names_us(tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
    path = tmp_path / "hc.pid"
    write_pid_file(path)
    assert read_pid_file(str(path)) == os.getpid()
    path.write_text(f"{sleeper.pid}\n")  # a successor took it over
    assert not remove_pid_file(str(path))
    assert path.exists()
    assert remove_pid_file(str(path), sleeper.pid)
    assert not path.exists()
    assert not remove_pid_file(str(path))
