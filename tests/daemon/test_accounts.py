"""Workers drop to --user/--group (issue: user and group), and socket activation
leaves systemd's socket file alone (issue test 7's stop half)."""

from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.daemon.helpers import APP, scaled
from tests.supervisor.harness import master


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory an unprivileged worker can read (pytest's tmp_path is 0700)."""
    with tempfile.TemporaryDirectory() as name:
        os.chmod(name, 0o755)
        yield Path(name)


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_workers_run_as_user_and_group(open_dir: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    sock_path = open_dir / "s.sock"
    # The interpreter may live where nobody can read (/root/.pyenv): everything a
    # worker imports is imported by the master first (--preload), as root.
    (open_dir / "app.py").write_text(
        "import hypercorn.worker.serve, h11, asyncio.unix_events\n" + APP
    )
    args = ("--preload", "-u", "nobody", "-b", f"unix:{sock_path}")
    with master(open_dir, *args, workers=2) as server:
        assert psutil.Process(server.pid).uids().real == 0  # the master keeps root
        for pid in server.workers():
            process = psutil.Process(pid)
            assert process.uids() == (nobody.pw_uid,) * 3
            assert process.gids() == (nobody.pw_gid,) * 3
        assert sock_path.stat().st_uid == nobody.pw_uid  # unix socket ownership follows
        assert server.get()[0] == 200
        server.kill(signal.SIGTERM)  # the workers (unprivileged) still drain and exit
        assert server.process.wait(scaled(15)) == 0


def test_socket_activated_unix_socket_survives_stop(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    path = tmp_path / "activated.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(64)
    fd = listener.fileno()
    script = (  # as systemd does: the listener at descriptor 3, LISTEN_PID naming the server
        f'exec 3<&{fd}; LISTEN_FDS=1 LISTEN_PID=$$ exec "{sys.executable}" -m hypercorn '
        f"-w 1 -b unix:{path} app:app"
    )
    process = subprocess.Popen(
        ["bash", "-c", script], cwd=tmp_path, pass_fds=[fd],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    listener.close()
    try:
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(scaled(20))
            client.connect(str(path))
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert client.recv(100).startswith(b"HTTP/1.1 200")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(scaled(15)) == 0
    assert path.exists(), "the socket file belongs to systemd"
