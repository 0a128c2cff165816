"""HTTP/1.1 keep-alive throughput of the server, measured with wrk.

Starts ``hypercorn`` with one worker on a loopback port, warms up, then runs
``wrk -t1 -c64`` for a bounded duration per round and prints the median
requests per second with min and max. Results vary with the machine: compare
figures only within one run.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_listening(port: int, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"server on port {port} did not start")


def _wrk(port: int, seconds: int) -> tuple[float, int]:
    result = subprocess.run(
        ["wrk", "-t1", "-c64", f"-d{seconds}s", f"http://127.0.0.1:{port}/"],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    )
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", result.stdout).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", result.stdout)
    socket_errors = re.search(r"Socket errors: (.*)", result.stdout)
    failed = int(errors.group(1)) if errors else 0
    if socket_errors:
        failed += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(1)))
    return rps, failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is needed: apt-get install wrk", file=sys.stderr)
        return 1
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "hypercorn", "-w", "0", "-b", f"127.0.0.1:{port}",
         "--keep-alive-max-requests", "1000000000", "apps:hello"],
        cwd=HERE,
        env={**os.environ, "PYTHONPATH": str(HERE)},
    )  # fmt: skip
    try:
        _wait_listening(port, 20)
        _wrk(port, 2)  # warm-up
        figures = []
        for _ in range(args.rounds):
            rps, failed = _wrk(port, args.seconds)
            if failed:
                print(f"failed requests: {failed}: the run is invalid", file=sys.stderr)
                return 1
            figures.append(rps)
        median = statistics.median(figures)
        print(
            f"HTTP/1.1 keep-alive hello, 1 worker, wrk -t1 -c64: median {median:,.0f} req/s "
            f"(min {min(figures):,.0f}, max {max(figures):,.0f}, {args.rounds} rounds)"
        )
        return 0
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
