"""Load generators, pinned to the load CPU, and the parsing of what they print.

Every runner returns a ``Result``: the figure (requests or messages per
second), the number of failures (socket errors, timeouts, non-2xx answers,
wrong echoes) and a note. A result with failures is a failed run. Every
runner is bounded: by duration or count, and by a subprocess timeout.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOAD_CPU = "0"


@dataclasses.dataclass(frozen=True)
class Result:
    value: float
    failures: int = 0
    note: str = ""


def _pinned(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["taskset", "-c", LOAD_CPU, *argv], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 124, "", f"timed out after {timeout:.0f}s")


def wrk(
    url: str, seconds: float, *, conns: int = 64, headers: tuple[str, ...] = (), script: str = ""
) -> Result:
    """``wrk -t1 -c64 -dSs`` on ``url``; socket errors and non-2xx are failures."""
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout", "5s"]
    for header in headers:
        argv += ["-H", header]
    if script:
        argv += ["-s", str(HERE / script)]
    done = _pinned([*argv, url], seconds + 30)
    out = done.stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if done.returncode or match is None:
        return Result(0.0, 1, f"wrk failed: {done.stderr.strip() or out.strip()}"[:200])
    failures = 0
    notes = []
    if non2xx := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        failures += int(non2xx[1])
        notes.append(f"{non2xx[1]} non-2xx")
    if errors := re.search(r"Socket errors: (.*)", out):
        failures += sum(int(n) for n in re.findall(r"\d+", errors[1]))
        notes.append(errors[1].strip())
    return Result(float(match[1]), failures, "; ".join(notes))


def h2load(url: str, requests: int, *, clients: int = 16, streams: int = 32) -> Result:
    """``h2load -n N -c 16 -m 32``; failed, errored and non-2xx are failures."""
    # -N: a connection that stalls for 10 s is given up (counted as failed), not waited for.
    argv = ["h2load", "-n", str(requests), "-c", str(clients), "-m", str(streams), "-t", "1",
            "-N", "10"]  # fmt: skip
    done = _pinned([*argv, url], 300)
    out = done.stdout
    rps = re.search(r"finished in [^,]+, ([\d.]+) req/s", out)
    reqs = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", out)
    codes = re.search(r"status codes: (\d+) 2xx", out)
    protocol = re.search(r"Application protocol: (\S+)", out)
    if rps is None or reqs is None or protocol is None or protocol[1] not in ("h2", "h2c"):
        text = out.strip().splitlines()[-1:] or [done.stderr.strip()]
        return Result(0.0, requests, f"no h2: {text[0]}"[:200])
    ok = min(int(reqs[1]), int(codes[1]) if codes else 0)
    return Result(float(rps[1]), requests - ok)


def ws_echo(port: int, conns: int, messages: int, size: int = 32) -> Result:
    """The bounded echo client (``wsecho.py``); wrong or missing echoes are failures."""
    argv = [sys.executable, str(HERE / "wsecho.py"), "127.0.0.1", str(port),
            "-c", str(conns), "-n", str(messages), "-s", str(size), "--timeout", "120"]  # fmt: skip
    done = _pinned(argv, 150)
    match = re.search(r"messages=(\d+) errors=(\d+) seconds=([\d.]+)", done.stdout)
    if match is None:
        return Result(0.0, conns * messages, (done.stdout + done.stderr).strip()[-200:])
    count, seconds = int(match[1]), float(match[3])
    failures = conns * messages - count
    return Result(count / seconds if seconds else 0.0, failures)
