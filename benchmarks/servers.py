"""Start, probe and stop the servers under test, pinned to the server CPU.

A ``Running`` server is one process group (``start_new_session``), so that
stopping it ends its workers too. Readiness is a real request answered 200.
Worker processes are found through ``/proc`` (the descendants of the
process started), which is also where peak RSS and worker PIDs come from.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

from peers import Peer, Serve

HERE = Path(__file__).resolve().parent
SERVER_CPU = "1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get_ok(port: int, tls: bool = False, timeout: float = 1.0) -> bool:
    """One ``GET /`` with ``Connection: close``; True when answered 200."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
            sock: socket.socket = raw
            if tls:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                context.set_alpn_protocols(["http/1.1"])
                sock = context.wrap_socket(raw, server_hostname="localhost")
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def response_header(port: int, path: str, name: str, timeout: float = 5.0) -> str:
    """The value of header ``name`` in the answer to ``GET path`` ("?" if none)."""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(request.encode())
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                data = sock.recv(65536)
                if not data:
                    break
                head += data
    except OSError:
        return "?"
    for line in head.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name.encode():
            return value.strip().decode("latin-1")
    return "?"


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] == "Z":
            continue
        tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def descendants(pid: int) -> list[int]:
    tree = _children()
    found: list[int] = []
    stack = list(tree.get(pid, []))
    while stack:
        child = stack.pop()
        found.append(child)
        stack.extend(tree.get(child, []))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _status_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Running:
    """One server process group, started pinned to ``SERVER_CPU``."""

    def __init__(self, peer: Peer, serve: Serve) -> None:
        self.peer = peer
        self.serve = serve
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, *peer.argv(serve)],
            cwd=HERE,
            env={**os.environ, "PYTHONPATH": str(HERE), "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, seconds: float = 30.0, interval: float = 0.005) -> float:
        """Wait for a first 200; return seconds since start (raises on failure)."""
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            if get_ok(self.serve.port, self.serve.tls is not None):
                return time.perf_counter() - self.started
            if self.process.poll() is not None:
                self.log.seek(0)
                err = self.log.read().decode(errors="replace")
                raise RuntimeError(f"{self.peer.name} exited: {err[-500:]}")
            time.sleep(interval)
        raise TimeoutError(f"{self.peer.name} did not answer on port {self.serve.port}")

    def workers(self) -> list[int]:
        """The serving processes: descendants, or the process itself when none."""
        return descendants(self.pid) or [self.pid]

    def worker_peak_rss_mib(self) -> float:
        """Peak RSS (VmHWM) of the largest serving process, in MiB."""
        return max(_status_kib(pid, "VmHWM") for pid in self.workers()) / 1024

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        self.log.close()


def make_cert(directory: Path) -> tuple[str, str]:
    """A self-signed certificate and PKCS#8 key for ``localhost``."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return str(cert), str(key)
