"""``contrib/init.d/hypercorn`` driven for real through Debian's start-stop-daemon
(issue test 5), with its settings file pointing at a test app and PID file."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.daemon.helpers import APP, Daemons, alive, pid_in, scaled
from tests.supervisor.harness import request

SCRIPT = Path(__file__).resolve().parents[2] / "contrib" / "init.d" / "hypercorn"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("start-stop-daemon") is None, reason="needs dpkg's start-stop-daemon"
    ),
]


def test_init_script_actions(tmp_path: Path, daemons: Daemons) -> None:
    (tmp_path / "app.py").write_text(APP)
    pid_file = tmp_path / "hc.pid"
    launcher = tmp_path / "hypercorn"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m hypercorn "$@"\n')
    launcher.chmod(0o755)
    port = free_port()
    (tmp_path / "default").write_text(
        f"HYPERCORN={launcher}\nAPP=app:app\nDIRECTORY={tmp_path}\nPIDFILE={pid_file}\n"
        f'HYPERCORN_OPTS="--bind 127.0.0.1:{port} --workers 2 --graceful-timeout 5 '
        f'--error-logfile {tmp_path}/error.log"\nSTOP_TIMEOUT=15\nRELOAD_TIMEOUT=30\n'
    )
    env = {**os.environ, "HYPERCORN_DEFAULTS": str(tmp_path / "default")}
    transcript: list[str] = []

    def action(name: str) -> int:
        done = subprocess.run([str(SCRIPT), name], env=env, capture_output=True, text=True,
                              timeout=scaled(60), check=False)  # fmt: skip
        output = done.stdout + done.stderr
        transcript.append(f"$ init.d/hypercorn {name}\n{output}[exit {done.returncode}]")
        if pid_in(pid_file) is not None:
            daemons.track(pid_file)
        return done.returncode

    try:
        assert action("start") == 0
        first = pid_in(pid_file)
        assert first is not None and request(port)[0] == 200
        assert action("start") == 0
        assert pid_in(pid_file) == first
        assert action("status") == 0
        assert action("reload") == 0
        assert pid_in(pid_file) == first and request(port)[0] == 200
        assert action("restart") == 0
        second = pid_in(pid_file)
        assert second not in (None, first) and not alive(first)
        assert request(port)[0] == 200
        assert action("rotate") == 0
        assert action("stop") == 0
        assert not alive(second) and not pid_file.exists()
        assert action("stop") == 0
        assert action("status") == 3
        assert action("reload") == 7
        assert action("bogus") == 2
    finally:
        print("\n".join(transcript))  # for the record (pytest -s)


def free_port() -> int:
    """A free loopback port: the script binds by address, as deployments do."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
