"""Benchmark ours against the peers: ``make bench`` (``BENCH_ARGS=--quick``).

Every server runs one worker pinned to CPU 1 (``taskset``), every load
generator is pinned to CPU 0. Each scenario warms every server up, then runs
rounds interleaved across servers (A B C, A B C, ...), and reports the median
with min and max, and ours divided by each peer's median (the ratio reads the
same way for every row: see the row's "better" column for its direction).
A run with any error or non-2xx answer is reported as FAILED, whatever its
speed. Every scenario runs once per interpreter of ``--pythons`` (3.11 and
3.13 by default), each server in a venv of its own for it; a server that
does not install on one is left out of that interpreter's rows. Figures vary
with the machine and its load: compare them only within one run. Writes
``results/latest.md`` and prints one summary line per scenario and interpreter.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loads
import report
from peers import OURS, PEERS, Peer, Python, Serve, baseline, interpreter
from servers import Running, alive, free_port, get_ok, make_cert, response_header

HERE = Path(__file__).resolve().parent
Measure = Callable[[Running], loads.Result]


FILE_SIZE = 1024 * 1024  # the file scenario's file


class Bench:
    def __init__(self, args: argparse.Namespace, table: report.Table) -> None:
        self.args = args
        self.table = table
        self.peers: list[Peer] = []  # installed on ``python``
        self.python = ""  # the version the servers run on, for the rows

    def rounds(
        self, key: str, servers: dict[str, Running], measure: Measure, warm: Measure | None
    ) -> None:
        scenario = report.SCENARIOS[key]
        if not self.selected(key) or not servers:
            return
        print(f"== {scenario.title} (Python {self.python})", flush=True)
        for running in servers.values():
            (warm or measure)(running)
        for number in range(1, self.args.rounds + 1):
            figures = []
            for name, running in servers.items():
                result = measure(running)
                self.table.add((key, self.python), name, result)
                figures.append(f"{name} {report.fmt(result.value)}" + (
                    f" ({result.failures} errors{': ' + result.note if result.note else ''})"
                    if result.failures else ""
                ))  # fmt: skip
            print(f"   round {number}: " + ", ".join(figures), flush=True)

    def selected(self, key: str) -> bool:
        return not self.args.only or key in self.args.only

    def start(self, peers: list[Peer], **serve: object) -> dict[str, Running]:
        servers: dict[str, Running] = {}
        for peer in peers:
            running = Running(peer, Serve(port=free_port(), **serve))  # type: ignore[arg-type]
            try:
                running.wait_ready()
            except (RuntimeError, TimeoutError) as exc:
                print(f"   {peer.name} did not start: {exc}", flush=True)
                running.stop()
                continue
            servers[peer.name] = running
        return servers

    # -- the scenario groups -------------------------------------------------

    def plain(self) -> None:
        a = self.args
        keys = ("keepalive", "unique", "close", "big", "file", "upload", "rss", "h2c", "websocket")
        if not any(self.selected(key) for key in keys):
            return
        servers = self.start([p for p in self.peers if p.asgi])
        warm = a.warm

        def url(r: Running, path: str = "/") -> str:
            return f"http://127.0.0.1:{r.serve.port}{path}"

        try:
            self.rounds("keepalive", servers, lambda r: loads.wrk(url(r), a.seconds),
                        lambda r: loads.wrk(url(r), warm))  # fmt: skip
            if self.selected("rss") or self.selected("keepalive"):
                for name, running in servers.items():
                    rss = running.worker_peak_rss_mib()
                    self.table.add(("rss", self.python), name, loads.Result(rss))
            unique = "unique.lua"
            self.rounds("unique", servers, lambda r: loads.wrk(url(r), a.seconds, script=unique),
                        lambda r: loads.wrk(url(r), warm, script=unique))  # fmt: skip
            close = ("Connection: close",)
            self.rounds("close", servers, lambda r: loads.wrk(url(r), a.seconds, headers=close),
                        lambda r: loads.wrk(url(r), warm, headers=close))  # fmt: skip
            self.rounds("big", servers, lambda r: loads.wrk(url(r, "/64k"), a.seconds),
                        lambda r: loads.wrk(url(r, "/64k"), warm))  # fmt: skip
            if self.selected("file"):
                for name, running in servers.items():
                    sent_by = response_header(running.serve.port, "/file", "x-sent-by")
                    self.table.note(f"1 MiB file, Python {self.python}: {name} by {sent_by}")
            self.rounds("file", servers, lambda r: loads.wrk(url(r, "/file"), a.seconds),
                        lambda r: loads.wrk(url(r, "/file"), warm))  # fmt: skip
            up = "upload.lua"
            self.rounds("upload", servers, lambda r: loads.wrk(url(r), a.seconds, script=up),
                        lambda r: loads.wrk(url(r), warm, script=up))  # fmt: skip
            h2 = {n: r for n, r in servers.items() if r.peer.h2}
            self.rounds("h2c", h2, lambda r: loads.h2load(url(r), a.h2_requests),
                        lambda r: loads.h2load(url(r), a.h2_requests // 10))  # fmt: skip
            ws = {n: r for n, r in servers.items() if r.peer.websocket}
            n = a.ws_messages
            self.rounds("websocket", ws, lambda r: loads.ws_echo(r.serve.port, 16, n),
                        lambda r: loads.ws_echo(r.serve.port, 16, n // 10))  # fmt: skip
        finally:
            for running in servers.values():
                running.stop()

    def framework(self) -> None:
        if not self.selected("framework"):
            return
        servers = self.start([p for p in self.peers if p.asgi], app="framework:app")
        a = self.args

        def url(r: Running) -> str:
            return f"http://127.0.0.1:{r.serve.port}/json?n=1"

        try:
            self.rounds("framework", servers, lambda r: loads.wrk(url(r), a.seconds),
                        lambda r: loads.wrk(url(r), a.warm))  # fmt: skip
        finally:
            for running in servers.values():
                running.stop()

    def tls(self, directory: Path) -> None:
        if not self.selected("h2tls"):
            return
        cert = make_cert(directory)
        servers = self.start([p for p in self.peers if p.h2], tls=cert)
        n = self.args.h2_requests

        def url(r: Running) -> str:
            return f"https://127.0.0.1:{r.serve.port}/"

        try:
            self.rounds("h2tls", servers, lambda r: loads.h2load(url(r), n),
                        lambda r: loads.h2load(url(r), n // 10))  # fmt: skip
        finally:
            for running in servers.values():
                running.stop()

    def wsgi(self) -> None:
        if not self.selected("wsgi"):
            return
        servers = self.start([p for p in self.peers if p.wsgi], wsgi=True)
        a = self.args

        def url(r: Running) -> str:
            return f"http://127.0.0.1:{r.serve.port}/"

        try:
            self.rounds("wsgi", servers, lambda r: loads.wrk(url(r), a.seconds),
                        lambda r: loads.wrk(url(r), a.warm))  # fmt: skip
        finally:
            for running in servers.values():
                running.stop()

    def startup(self) -> None:
        if not self.selected("startup"):
            return
        print(f"== {report.SCENARIOS['startup'].title} (Python {self.python})", flush=True)
        for number in range(1, self.args.rounds + 1):
            figures = []
            for peer in self.peers:
                running = Running(peer, Serve(port=free_port(), wsgi=not peer.asgi))
                try:
                    result = loads.Result(running.wait_ready() * 1000)
                except (RuntimeError, TimeoutError) as exc:
                    result = loads.Result(0.0, 1, str(exc)[:200])
                finally:
                    running.stop()
                self.table.add(("startup", self.python), peer.name, result)
                figures.append(f"{peer.name} {report.fmt(result.value)}")
            print(f"   round {number}: " + ", ".join(figures), flush=True)

    def hup(self) -> None:
        if not self.selected("hup"):
            return
        print(f"== {report.SCENARIOS['hup'].title} (Python {self.python})", flush=True)
        for number in range(1, self.args.rounds + 1):
            figures = []
            for peer in self.peers:
                result = _hup_once(peer)
                self.table.add(("hup", self.python), peer.name, result)
                figures.append(f"{peer.name} {report.fmt(result.value)}" + (
                    f" ({result.note})" if result.failures else ""
                ))  # fmt: skip
            print(f"   round {number}: " + ", ".join(figures), flush=True)


def _hup_once(peer: Peer, workers: int = 4, limit: float = 30.0) -> loads.Result:
    """Start 4 workers, HUP the master, time until the last old worker is gone.

    Old workers are the master's descendants at HUP time. Helper processes
    that never exit (a multiprocessing resource tracker) are tolerated: the
    figure is the last old process to go, once four new ones are up and no old
    one has gone for two seconds.
    """
    running = Running(peer, Serve(port=free_port(), workers=workers, wsgi=not peer.asgi))
    try:
        running.wait_ready()
        end = time.perf_counter() + 20
        while len(running.workers()) < workers and time.perf_counter() < end:
            time.sleep(0.05)
        time.sleep(0.5)
        old = set(running.workers())
        start = time.perf_counter()
        os.kill(running.pid, signal.SIGHUP)
        last_gone = None
        remaining = set(old)
        while time.perf_counter() - start < limit:
            if running.process.poll() is not None:
                return loads.Result(0.0, 1, "the master exited on HUP")
            gone = {pid for pid in remaining if not alive(pid)}
            now = time.perf_counter()
            if gone:
                remaining -= gone
                last_gone = now
            new = set(running.workers()) - old
            if (
                last_gone is not None
                and len(new) >= workers
                and (not remaining or now - last_gone > 2.0)
            ):
                if not get_ok(running.serve.port):
                    return loads.Result(0.0, 1, "no answer after HUP")
                return loads.Result((last_gone - start) * 1000)
            time.sleep(0.005)
        return loads.Result(0.0, 1, "no old worker gone" if last_gone is None else "timeout")
    except (RuntimeError, TimeoutError) as exc:
        return loads.Result(0.0, 1, str(exc)[:200])
    finally:
        running.stop()


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short rounds (a few minutes)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3)")
    parser.add_argument("--seconds", type=int, help="wrk duration per round (10, quick 2)")
    parser.add_argument("--warm", type=int, help="warm-up seconds per server (2, quick 1)")
    parser.add_argument("--h2-requests", type=int, help="h2load -n (100000, quick 20000)")
    parser.add_argument("--ws-messages", type=int, help="messages per connection (2000, quick 500)")
    parser.add_argument("--only", type=lambda s: s.split(","), default=[],
                        help=f"scenarios: {','.join(report.SCENARIOS)}")  # fmt: skip
    parser.add_argument("--peers", type=lambda s: s.split(","), default=[],
                        help=f"servers: {','.join(p.name for p in PEERS)}")  # fmt: skip
    parser.add_argument("--baseline", metavar="REV",
                        help="also run ours as of git revision REV (before/after)")  # fmt: skip
    this = f"{sys.version_info[0]}.{sys.version_info[1]}"
    parser.add_argument("--pythons", type=lambda s: s.split(","),
                        default=list(dict.fromkeys((this, "3.13"))),
                        help="servers' interpreters, in turn (this one, 3.13)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=HERE / "results" / "latest.md")
    args = parser.parse_args()
    quick = args.quick
    defaults = {"rounds": 3, "seconds": 2 if quick else 10, "warm": 1 if quick else 2,
                "h2_requests": 20000 if quick else 100000,
                "ws_messages": 500 if quick else 2000}  # fmt: skip
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.rounds = max(args.rounds, 1)
    return args


def _full_version(python: Python) -> str:
    """The interpreter's own version string ("3.13.0")."""
    done = subprocess.run(
        [python.executable, "-c", "import platform; print(platform.python_version())"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip()


def _installed(peers: list[Peer], python: Python, table: report.Table) -> list[Peer]:
    """The peers on ``python``, installed; those that do not install are noted and left out."""
    ready = []
    for peer in peers:
        placed = peer.on(python)
        try:
            placed.install()
        except subprocess.CalledProcessError:
            if peer.name == OURS:
                raise
            print(f"[setup] {peer.name} does not install on Python {python.version}", flush=True)
            table.note(f"{peer.name} does not install on Python {python.version}")
            continue
        ready.append(placed)
    return ready


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(f"stopped by signal {signum}")  # the servers are stopped on the way out


def main() -> int:
    signal.signal(signal.SIGTERM, _terminated)
    args = _parse()
    for tool in ("wrk", "h2load", "taskset", "openssl"):
        if shutil.which(tool) is None:
            print(f"{tool} is needed (make bench installs wrk and nghttp2-client)", file=sys.stderr)
            return 1
    if (os.cpu_count() or 1) < 2:
        print("two CPUs are needed: the server on CPU 1, the load on CPU 0", file=sys.stderr)
        return 1
    peers = [p for p in PEERS if not args.peers or p.name in args.peers or p.name == OURS]
    if args.baseline:
        peers.insert(1, baseline(args.baseline))
    table = report.Table(peers=[peer.name for peer in peers])
    bench = Bench(args, table)
    began = time.time()
    ran: list[str] = []
    with tempfile.TemporaryDirectory() as directory:
        os.environ["BENCH_FILE"] = str(Path(directory) / "file.bin")
        Path(os.environ["BENCH_FILE"]).write_bytes(os.urandom(FILE_SIZE))
        for version in args.pythons:
            python = interpreter(version)
            if python is None:
                print(f"[setup] Python {version} not found: its rows are left out", flush=True)
                continue
            bench.python = _full_version(python)
            bench.peers = _installed(peers, python, table)
            ran.append(f"{platform.python_implementation()} {bench.python}")
            bench.plain()
            bench.framework()
            bench.tls(Path(directory))
            bench.wsgi()
            bench.startup()
            bench.hup()
    settings = (
        f"{args.rounds} rounds, wrk {args.seconds}s (warm-up {args.warm}s), "
        f"h2load -n {args.h2_requests}, WebSocket 16 x {args.ws_messages}; "
        f"servers on {' and '.join(ran)}, "
        f"{os.cpu_count()} CPUs, {time.time() - began:.0f}s"
    )
    text, lines = bench.table.render(settings)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print()
    print("\n".join(lines))
    print(f"\nwritten to {args.out}")
    return 1 if bench.table.failed() else 0


if __name__ == "__main__":
    sys.exit(main())
