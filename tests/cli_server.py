"""Run the ``hypercorn`` command as a real process on a socket the test owns.

The test creates the listening socket and passes it as ``fd://N``: no port race,
and connections made before the server is ready wait in the accept queue.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

TIMEOUT_SCALE = float(os.environ.get("HYPERCORN_TEST_TIMEOUT_SCALE", "1"))


def deadline(seconds: float) -> float:
    return time.monotonic() + seconds * TIMEOUT_SCALE


@dataclass
class CLIServer:
    process: subprocess.Popen[str]
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def wait_ready(self, seconds: float = 20) -> None:
        """Wait until the server answers an HTTP request (bounded)."""
        end = deadline(seconds)
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), timeout=1) as sock,
            ):
                sock.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if sock.recv(1024).startswith(b"HTTP/1.1 "):
                    return
            time.sleep(0.05)
        raise TimeoutError("server did not become ready")


def stop(process: subprocess.Popen[str]) -> int:
    """TERM a process (if it still runs), KILL it after 15 s (scaled); its exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15 * TIMEOUT_SCALE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@contextlib.contextmanager
def cli_server(
    app: str, *args: str, cwd: Path, env: dict[str, str] | None = None
) -> Iterator[CLIServer]:
    """Start ``python -m hypercorn -b fd://N [args] app`` and stop it with SIGTERM."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    host, port = listener.getsockname()
    process = subprocess.Popen(
        [sys.executable, "-m", "hypercorn", "-b", f"fd://{listener.fileno()}", *args, app],
        cwd=cwd,
        pass_fds=[listener.fileno()],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    listener.close()
    server = CLIServer(process, host, port)
    try:
        server.wait_ready()
        yield server
    finally:
        stop(process)
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        process.stderr.close()
