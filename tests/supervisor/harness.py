"""A real ``hypercorn`` master under test: processes, signals, load.

``master(tmp_path, ...)`` starts ``python -m hypercorn -w N`` on a listener
the test owns (``fd://N``: no port race) with the error log in a file the
test reads while the server runs. Every wait is ``wait_for(condition)`` with
a deadline scaled by ``HYPERCORN_TEST_TIMEOUT_SCALE``. ``Load`` sends a
bounded, paced stream of requests from threads, over keep-alive and over
new connections, and records every failure with its reason.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import psutil

from tests.cli_server import TIMEOUT_SCALE, deadline

T = TypeVar("T")

# The start of a test app: the lifespan protocol answered, then the app's own paths.
APP_HEAD = """
import asyncio, os, time

VERSION = "v1"
leak = []

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
"""

APP = (
    APP_HEAD
    + """    path = scope["path"]
    if path == "/slow":
        open("slow-started", "w").close()  # the test waits for it
        await asyncio.sleep(float(scope["query_string"] or 3))
    elif path == "/block":
        time.sleep(float(scope["query_string"] or 60))
    elif path == "/leak":
        leak.append(bytearray(int(scope["query_string"])) + b"x")
    body = f"{VERSION} {os.getpid()}".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
"""
)


def scaled(seconds: float) -> float:
    return seconds * TIMEOUT_SCALE


def wait_for(condition: Callable[[], T], seconds: float, what: str) -> T:
    """Poll ``condition`` until it returns a true value; fail after ``seconds`` (scaled)."""
    end = deadline(seconds)
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {scaled(seconds):.1f} s waiting for {what}")
        time.sleep(0.02)


@dataclass
class Master:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def workers(self) -> set[int]:
        """Live (not zombie) children of the master titled as workers."""
        return self.children("worker")

    def templates(self) -> set[int]:
        """Live children of the master titled as templates (one per generation)."""
        return self.children("template")

    def children(self, role: str) -> set[int]:
        return {pid for pid, title in _children(self.pid).items() if title.startswith(
            f"hypercorn: {role} ")}  # fmt: skip

    def ready_workers(self) -> set[int]:
        """Live children that reported READY (per the master's log)."""
        ready = {int(pid) for pid in re.findall(r"Worker (\d+) ready", self.log())}
        return ready & self.workers()

    def wait_ready(self, count: int, seconds: float = 20, exactly: bool = True) -> set[int]:
        def check() -> set[int] | None:
            if self.process.poll() is not None:
                raise AssertionError(f"master exited {self.process.returncode}:\n{self.log()}")
            ready = self.ready_workers()
            workers = self.workers()
            if len(ready) >= count and (not exactly or len(workers) == count):
                return ready
            return None

        return wait_for(check, seconds, f"{count} ready workers")

    def kill(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def get(self, path: str = "/", timeout: float = 10) -> tuple[int, str]:
        return request(self.port, path, timeout)


def request(port: int, path: str = "/", timeout: float = 10) -> tuple[int, str]:
    """One GET on a new connection; returns (status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=scaled(timeout)) as sock:
        client = _Client(sock)
        return client.get(path)


class _Client:
    """A minimal HTTP/1.1 client on one socket (content-length responses)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.closing = False

    def get(self, path: str) -> tuple[int, str]:
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        while b"\r\n\r\n" not in self.buffer:
            self._recv()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = dict(line.lower().split(": ", 1) for line in lines[1:])
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self._recv()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        self.closing = headers.get("connection") == "close"
        return status, body.decode()

    def _recv(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed before a whole response" + (
                " (nothing received)" if not self.buffer else ""))  # fmt: skip
        self.buffer += data


@dataclass
class LoadResult:
    sent: int = 0
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    failed_at: list[float] = field(default_factory=list)  # monotonic, one per failure
    # Requests retried once because the server closed an idle keep-alive
    # connection as they were sent (nothing received): what every HTTP client
    # does for an idempotent request (RFC 9110 §9.2.2); the retry must succeed.
    stale_retries: int = 0
    bodies: Counter[str] = field(default_factory=Counter)  # by the app's version
    pids: Counter[int] = field(default_factory=Counter)  # by the worker that answered
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


class Load:
    """Paced GET requests from threads until stopped or a bound is reached.

    Args:
        port: the server's port.
        rate: requests per second, over all threads.
        keep_alive: threads that reuse one connection.
        fresh: threads that open a new connection per request.
        max_seconds, max_requests: hard bounds (scaled) on the run.
        idle: instead of ``rate``, each thread idles a random time in this
            range (seconds) between two requests, as browsers and API
            clients with their own pacing do.
    """

    def __init__(
        self,
        port: int,
        rate: float = 300,
        keep_alive: int = 3,
        fresh: int = 2,
        max_seconds: float = 60,
        max_requests: int = 50_000,
        path: str = "/",
        idle: tuple[float, float] | None = None,
    ) -> None:
        self.port = port
        self.interval = (keep_alive + fresh) / rate
        self._idle = idle
        self.result = LoadResult()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._end = deadline(max_seconds)
        self._max = max_requests
        self._path = path
        self._threads = [
            threading.Thread(target=self._run, args=(reuse,), daemon=True)
            for reuse in [True] * keep_alive + [False] * fresh
        ]
        self._hung: set[threading.Thread] = set()
        self._started = 0.0

    def __enter__(self) -> Load:
        self._started = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> LoadResult:
        """Stop sending and wait for the requests in flight, for 20 s in all: a
        request still unanswered by then is a failure of its own."""
        self._stop.set()
        end = time.monotonic() + scaled(20)
        for thread in self._threads:
            thread.join(max(0.0, end - time.monotonic()))
        with self._lock:
            for thread in self._threads:
                if thread.is_alive() and thread not in self._hung:
                    self._hung.add(thread)
                    self.result.failures.append("a request still unanswered 20 s after stop")
                    self.result.failed_at.append(time.monotonic())
        if not self.result.seconds:
            self.result.seconds = time.monotonic() - self._started
        return self.result

    def responders(self) -> Counter[int]:
        """Responses so far by the worker that answered (a copy, taken under the lock)."""
        with self._lock:
            return Counter(self.result.pids)

    def wait_sent(self, count: int, seconds: float = 30) -> None:
        wait_for(lambda: self.result.sent >= count, seconds, f"{count} requests sent")

    def _record(self, outcome: str | None, body: str = "", retried: bool = False) -> bool:
        with self._lock:
            result = self.result
            result.sent += 1
            result.stale_retries += retried
            if outcome is None:
                result.ok += 1
                version, pid = body.split()[:2]
                result.bodies[version] += 1
                result.pids[int(pid)] += 1
            else:
                result.failures.append(outcome)
                result.failed_at.append(time.monotonic())
            return result.sent < self._max

    def _run(self, reuse: bool) -> None:
        client: _Client | None = None
        next_at = time.monotonic()
        while not self._stop.is_set() and time.monotonic() < self._end:
            retried = False
            outcome: str | None = None
            body = ""
            for attempt in range(2):
                fresh_connection = client is None
                try:
                    if client is None:
                        client = _Client(
                            socket.create_connection(("127.0.0.1", self.port), timeout=scaled(10))
                        )
                    status, body = client.get(self._path)
                    outcome = None if status == 200 else f"status {status}"
                except OSError as error:
                    if client is not None:
                        client.sock.close()
                    stale = (
                        not fresh_connection
                        and attempt == 0
                        and not client.buffer
                        and (
                            isinstance(error, ConnectionResetError | BrokenPipeError)
                            or "nothing received" in str(error)
                        )
                    )
                    client = None
                    if stale:
                        retried = True
                        continue
                    outcome = f"{type(error).__name__}: {error}"
                break
            if client is not None and (not reuse or client.closing):
                client.sock.close()
                client = None
            if not self._record(outcome, body, retried):
                break
            if self._idle is None:
                next_at += self.interval
            else:  # idle after the response
                next_at = time.monotonic() + random.uniform(*self._idle)
            pause = next_at - time.monotonic()
            if pause > 0:
                self._stop.wait(pause)  # pacing, not synchronisation
            else:
                next_at = time.monotonic()
        if client is not None:
            client.sock.close()


@contextlib.contextmanager
def master(
    tmp_path: Path,
    *args: str,
    workers: int = 2,
    app: str = "app:app",
    app_source: str = APP,
    wait: bool = True,
    env: dict[str, str] | None = None,
    new_session: bool = False,
    command: tuple[str, ...] = ("-m", "hypercorn"),
) -> Iterator[Master]:
    """Run ``python [command] -w workers [args] app`` in ``tmp_path`` (``command``: ``-m
    hypercorn``, or a script that wraps it); TERM it on exit.

    On exit every process of the test is gone: the master is stopped (killed
    if it does not stop in time) and any worker left behind is killed and
    reported as a failure.
    """
    if app_source and not (tmp_path / "app.py").exists():
        (tmp_path / "app.py").write_text(app_source)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    port = listener.getsockname()[1]
    log_path = tmp_path / "master.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, *command, "-b", f"fd://{listener.fileno()}",
             "-w", str(workers), "--graceful-timeout", "5", *args, app],
            cwd=tmp_path,
            pass_fds=[listener.fileno()],
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )  # fmt: skip
    listener.close()
    server = Master(process, port, log_path)
    known: set[int] = set()
    try:
        if wait:
            known |= server.wait_ready(workers)
        yield server
    finally:
        known |= server.workers() | server.templates()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(scaled(20))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        left = [pid for pid in known if psutil.pid_exists(pid) and _is_ours(pid)]
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        assert not left, f"worker(s) {left} outlived the master"


def _children(pid: int) -> dict[int, str]:
    """Live (not zombie) children of ``pid``, with their process titles."""
    try:
        children = psutil.Process(pid).children()
    except psutil.NoSuchProcess:
        return {}
    alive = {}
    for child in children:
        with contextlib.suppress(psutil.Error, IndexError):
            if child.status() != psutil.STATUS_ZOMBIE:
                alive[child.pid] = child.cmdline()[0]
    return alive


def _is_ours(pid: int) -> bool:
    try:
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE and "hypercorn" in " ".join(
            process.cmdline()
        )
    except psutil.Error:
        return False
