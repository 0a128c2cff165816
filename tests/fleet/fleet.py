"""A fleet under test: three hosts, each our master with 2 workers, behind haproxy and nginx.

``Fleet`` starts and controls the masters (one per host namespace, run in the
foreground under ``ip netns exec``), the balancers and the clients in the
balancer namespace, and watches them: a thread polls haproxy's admin socket
and each master's state file (``<pidfile>.state``, what ``hypercorn ctl
status`` reads) every 20 ms and keeps each change with its time, so a scenario
reads "when did haproxy take h1 out" after the fact instead of sleeping.

Every process is started in its own session and killed by ``close``; the
namespaces (``netns.py``) are removed after, with anything still inside.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from hypercorn.supervisor.service import read_state
from tests.fleet.balancers import Backend, haproxy_config, nginx_config
from tests.fleet.netns import Host, Network
from tests.supervisor.harness import APP_HEAD, scaled, wait_for

ROOT = Path(__file__).resolve().parents[2]
PORT, HEALTH_PORT = 8000, 8081
HAPROXY_PORT, NGINX_PORT = 8080, 8090
CHECK_MS = 250  # haproxy's check interval (fall 2, rise 2)
DRAIN_DELAY = 1.5  # > (fall + 1) x interval: haproxy has taken the host out when ctl drain returns

APP = (
    APP_HEAD
    + """    who = f"{VERSION} {os.getpid()} {scope['server'][0]}"
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": who})
        while (await receive())["type"] != "websocket.disconnect":
            pass
        return
    body = who.encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
"""
)


def app_source(version: str) -> str:
    if version == "broken":
        return APP.replace('VERSION = "v1"', "VERSION = = 'broken'")  # a SyntaxError
    return APP.replace('"v1"', f'"{version}"')


@dataclass
class Change:
    at: float
    what: str  # "h1"
    state: str  # haproxy: UP/DOWN/...; master: ready/draining/...


@dataclass
class Watch:
    haproxy: list[Change] = field(default_factory=list)
    masters: list[Change] = field(default_factory=list)

    def first(self, changes: list[Change], what: str, state: str, after: float) -> float | None:
        return next((c.at for c in changes if c.what == what and c.state == state
                     and c.at >= after), None)  # fmt: skip


class Fleet:
    """The hosts' masters, the balancers and the clients of one network; see the module."""

    def __init__(self, network: Network, base: Path) -> None:
        self.network = network
        self.base = base
        self.processes: list[subprocess.Popen[bytes]] = []
        self.masters: dict[str, subprocess.Popen[bytes]] = {}
        self.version = "v1"
        self.watch = Watch()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self.haproxy_run = base / "haproxy"
        self.nginx_run = base / "nginx"

    @property
    def hosts(self) -> list[Host]:
        return self.network.hosts

    def host(self, name: str) -> Host:
        return next(h for h in self.hosts if h.name == name)

    def _spawn(self, netns: str, argv: list[str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            process = subprocess.Popen(
                Network.command(netns, argv), cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1",
                                             "PYTHONPATH": str(ROOT)},
            )  # fmt: skip
        self.processes.append(process)
        return process

    # ------------------------------------------------------------ masters

    def home(self, name: str) -> Path:
        path = self.base / name
        path.mkdir(exist_ok=True)
        return path

    def pid_file(self, name: str) -> str:
        return str(self.home(name) / "hc.pid")

    def start_master(self, name: str) -> None:
        host = self.host(name)
        home = self.home(name)
        if not (home / "app.py").exists():
            (home / "app.py").write_text(app_source(self.version))
        argv = [sys.executable, "-m", "hypercorn", "-b", f"{host.address}:{PORT}",
                "--health-bind", f"{host.address}:{HEALTH_PORT}", "-w", "2",
                "--drain-delay", str(DRAIN_DELAY), "--graceful-timeout", "5",
                "--pid", self.pid_file(name), "app:app"]  # fmt: skip
        self.masters[name] = self._spawn(host.netns, argv, home, home / "master.log")

    def health(self, name: str) -> str:
        """The master's readiness as its state file says (what ``ctl status`` reads)."""
        return read_state(self.pid_file(name)).fields.get("health", "")

    def wait_health(self, name: str, state: str, seconds: float = 20) -> float:
        wait_for(lambda: self.health(name) == state, seconds, f"{name} {state}")
        return time.monotonic()

    def deploy(self, name: str, version: str) -> None:
        (self.home(name) / "app.py").write_text(app_source(version))

    def ctl(self, name: str, action: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hypercorn", "ctl", action, "--pid", self.pid_file(name)],
            capture_output=True, text=True, timeout=scaled(60), cwd=ROOT,
        )  # fmt: skip

    def kill9(self, name: str) -> list[int]:
        """SIGKILL the master and its workers, all at once."""
        master = self.masters.pop(name)
        pids = [master.pid]
        with contextlib.suppress(psutil.Error):
            pids += [child.pid for child in psutil.Process(master.pid).children()]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        master.wait(scaled(10))
        return pids

    def direct(self, name: str, path: str = "/") -> str:
        """GET ``path`` from host ``name`` directly (curl in the balancer's namespace)."""
        url = f"http://{self.host(name).address}:{PORT}{path}"
        argv = Network.command(self.network.balancer, ["curl", "-fsS", "--max-time", "10", url])
        return subprocess.run(argv, capture_output=True, text=True, timeout=scaled(20),
                              check=True).stdout  # fmt: skip

    def log(self, name: str) -> str:
        return (self.home(name) / "master.log").read_text(errors="replace")

    # ------------------------------------------------------------ balancers

    def backend(self, listen: str, run: Path) -> Backend:
        run.mkdir(exist_ok=True)
        servers = [(h.name, h.address) for h in self.hosts]
        return Backend(listen, servers, str(run), PORT, HEALTH_PORT, CHECK_MS)

    def start_haproxy(self, haproxy: str) -> None:
        config = self.haproxy_run / "haproxy.cfg"
        backend = self.backend(f"127.0.0.1:{HAPROXY_PORT}", self.haproxy_run)
        config.write_text(haproxy_config(backend))
        self._spawn(self.network.balancer, [haproxy, "-db", "-f", str(config)],
                    self.haproxy_run, self.haproxy_run / "haproxy.log")  # fmt: skip
        wait_for((self.haproxy_run / "haproxy.sock").exists, 10, "haproxy's admin socket")

    def start_nginx(self, nginx: str) -> None:
        config = self.nginx_run / "nginx.conf"
        config.write_text(nginx_config(self.backend(f"127.0.0.1:{NGINX_PORT}", self.nginx_run)))
        argv = [nginx, "-p", str(self.nginx_run), "-c", str(config), "-g", "daemon off;"]
        self._spawn(self.network.balancer, argv, self.nginx_run, self.nginx_run / "nginx.out")
        wait_for((self.nginx_run / "nginx.pid").exists, 10, "nginx's pid file")

    def haproxy(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX) as admin:
            admin.settimeout(scaled(5))
            admin.connect(str(self.haproxy_run / "haproxy.sock"))
            admin.sendall(command.encode() + b"\n")
            data = b""
            while chunk := admin.recv(65536):
                data += chunk
        return data.decode()

    def haproxy_stats(self) -> dict[str, dict[str, str]]:
        """``show stat`` of the backend, by server name (and BACKEND)."""
        lines = self.haproxy("show stat").splitlines()
        names = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(names, line.split(","), strict=False)) for line in lines[1:] if line]
        return {row["svname"]: row for row in rows if row.get("pxname") == "hypercorn"}

    def in_rotation(self) -> set[str]:
        stats = self.haproxy_stats()
        return {h.name for h in self.hosts if stats[h.name]["status"].startswith("UP")}

    # ------------------------------------------------------------ watching

    def start_watching(self) -> None:
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        seen: dict[tuple[str, str], str] = {}
        while not self._stop.wait(0.02):
            now = time.monotonic()
            states: dict[tuple[str, str], str] = {}
            with contextlib.suppress(OSError, KeyError, IndexError):
                for name, row in self.haproxy_stats().items():
                    if name in {h.name for h in self.hosts}:
                        states[("haproxy", name)] = row["status"].split()[0]
            for host in self.hosts:
                states[("master", host.name)] = self.health(host.name)
            for key, state in states.items():
                if seen.get(key) != state:
                    seen[key] = state
                    changes = self.watch.haproxy if key[0] == "haproxy" else self.watch.masters
                    changes.append(Change(now, key[1], state))

    # ------------------------------------------------------------ clients

    @contextlib.contextmanager
    def client(self, kind: str, port: int, **options: Any) -> Iterator[Client]:
        """Run ``tests.fleet.clients KIND`` in the balancer namespace; SIGTERM it on exit."""
        tag = f"{kind}-{port}-{time.monotonic_ns()}"
        out, progress = self.base / f"{tag}.json", self.base / f"{tag}.progress"
        argv = [sys.executable, "-m", "tests.fleet.clients", kind, "--port", str(port),
                "--out", str(out), "--progress", str(progress)]  # fmt: skip
        for key, value in options.items():
            argv += [f"--{key.replace('_', '-')}", str(value)]
        log = self.base / f"{tag}.log"
        process = self._spawn(self.network.balancer, argv, ROOT, log)
        client = Client(process, out, progress, log)
        try:
            yield client
        finally:
            client.stop()

    def close(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(5)
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@dataclass
class Client:
    process: subprocess.Popen[bytes]
    out: Path
    progress_path: Path
    log: Path
    result: dict[str, Any] = field(default_factory=dict)

    def progress(self) -> Any:
        try:
            return json.loads(self.progress_path.read_text())
        except (OSError, ValueError):
            return None

    def wait(self, condition: Callable[[Any], bool], what: str, seconds: float = 30) -> Any:
        def check() -> Any:
            if self.process.poll() is not None and not self.out.exists():
                raise AssertionError(f"the client exited {self.process.returncode}")
            progress = self.progress()
            return progress if progress is not None and condition(progress) else None

        return wait_for(check, seconds, what)

    def wait_sent(self, more: int) -> None:
        start = (self.progress() or {"sent": 0})["sent"]
        self.wait(lambda p: p["sent"] >= start + more, f"{more} more requests")

    def stop(self) -> dict[str, Any]:
        if not self.result:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(scaled(30))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
                raise AssertionError(
                    f"the client did not stop within {scaled(30):.0f} s of SIGTERM; "
                    f"its last progress: {self.progress()}; its log ends:\n{self._log_tail()}"
                ) from None
            self.result = json.loads(self.out.read_text())
        return self.result

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError as error:
            return f"(no log: {error})"
