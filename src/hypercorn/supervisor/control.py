"""``hypercorn ctl``: start, stop, reload and query a server through its PID file.

Theory of operation
-------------------
Each action reads the PID file, signals the master it names, and waits for
the outcome, so that an init script or a person gets an exit status that
means what happened, in the LSB's terms (Linux Standard Base, "Init Script
Actions"): ``status`` exits 0 (running), 1 (dead, PID file left behind) or
3 (not running); ``start`` and ``stop`` are idempotent (0 when the server is
already in the wanted state); ``reload`` of a server that is not running
exits 7.

A PID names "our" server only while that process is a live hypercorn
master (``pidfile.is_hypercorn``): after a crash the PID may belong to
anything, and nothing else is ever signalled. ``reload`` knows when the
reload it asked for ended, and how, from the master's state file
(``<pidfile>.state``, see ``service.State``), which the master the PID file
names keeps, a new master after a USR2 upgrade included; ``upgrade`` watches
the PID file change hands, and the state file for a new master that died.

``start`` runs ``hypercorn --daemon`` as a command of its own (the same
interpreter), so the server's command line, which a USR2 upgrade executes
again, is the server's and not this one.

``ctl`` is a reserved first word of the command line, see
``docs/discussion/daemon.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

from hypercorn.shared.cli import PROG, ExitCode, UsageError
from hypercorn.supervisor.pidfile import (
    is_hypercorn,
    live_pid,
    not_ours,
    read_pid_file,
    remove_pid_file,
)
from hypercorn.supervisor.service import State, read_state, state_path

__all__ = ["LSB", "main"]

POLL = 0.05


class LSB:
    """Exit statuses of init script actions (LSB 5.0, 20.2 and 20.8)."""

    OK = 0
    FAILURE = 1  # generic or unspecified error
    DEAD_WITH_PID_FILE = 1  # status: the program is dead and the PID file exists
    INVALID_ARGUMENT = 2
    UNIMPLEMENTED = 3
    NOT_RUNNING_STATUS = 3  # status: the program is not running
    NOT_RUNNING = 7  # actions other than status: the program is not running


def _parser() -> argparse.ArgumentParser:
    from hypercorn.shared.cli import _Parser

    parser = _Parser(
        prog=f"{PROG} ctl",
        description="Control a hypercorn server through its PID file (LSB exit statuses).",
        usage=f"{PROG} ctl ACTION --pid FILE [--timeout S] [-- [options] module:app]",
    )
    parser.add_argument(
        "action",
        choices=["start", "stop", "restart", "reload", "status", "upgrade", "rotate", "drain"],
        help="start: as `hypercorn --daemon`, with the options after `--`; "
        "stop: TERM, then KILL after --timeout; reload: HUP, wait for the rolling reload; "
        "upgrade: USR2, wait for the new master; rotate: USR1 (reopen log files); "
        "drain: WINCH, /readyz answers 503 while the workers serve on, wait drain_delay.",
    )
    parser.add_argument("-p", "--pid", required=True, help="The server's PID file.")
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="Seconds to wait for the action to finish (default 60).",
    )
    return parser


def main(argv: Sequence[str]) -> int:
    """Run ``hypercorn ctl ARGV``; returns the exit status."""
    argv = list(argv)
    split = argv.index("--") if "--" in argv else len(argv)
    options = argv[split + 1 :]  # for start: the server's own command line
    try:
        args = _parser().parse_args(argv[:split])
    except UsageError as error:
        return _say(f"error: {error}", LSB.INVALID_ARGUMENT)
    path = os.path.abspath(args.pid)
    actions: dict[str, Callable[[], int]] = {
        "start": lambda: start(path, options),
        "stop": lambda: stop(path, args.timeout),
        "restart": lambda: stop(path, args.timeout) or start(path, options),
        "reload": lambda: reload(path, args.timeout),
        "status": lambda: status(path),
        "upgrade": lambda: upgrade(path, args.timeout),
        "rotate": lambda: rotate(path),
        "drain": lambda: drain(path, args.timeout),
    }
    if args.action in ("start", "restart") and not options:
        return _say("error: start needs the server's options: ctl start --pid F -- module:app",
                    LSB.INVALID_ARGUMENT)  # fmt: skip
    return actions[args.action]()


def _say(message: str, code: int) -> int:
    print(f"{PROG}: {message}", flush=True)
    return code


def _wait(condition: Callable[[], bool], seconds: float) -> bool:
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() >= end:
            return False
        time.sleep(POLL)
    return True


def status(path: str) -> int:
    """LSB ``status``: 0 running, 1 dead with a PID file, 3 not running."""
    pid = live_pid(path)
    if pid is not None:
        state = _state_of(path, pid).fields
        details = ""
        if state:
            words = [state.get("health", state["state"])]
            if state["state"] == "reloading":
                words.append("reloading")
            details = f", {', '.join(words)}, {state['workers']} workers ready"
        return _say(f"running (pid {pid}{details})", LSB.OK)
    if os.path.lexists(path):
        return _say(f"not running, but the PID file {path} exists "
                    f"({not_ours(read_pid_file(path))})", LSB.DEAD_WITH_PID_FILE)  # fmt: skip
    return _say("not running", LSB.NOT_RUNNING_STATUS)


def _state_of(path: str, pid: int) -> State:
    """The state file if ``pid`` wrote it (else no fields: it has not yet)."""
    state = read_state(path)
    return state if state.pid == pid else State({})


def start(path: str, options: Sequence[str]) -> int:
    """Start as a daemon unless already running; returns when the workers are READY."""
    pid = live_pid(path)
    if pid is not None:
        return _say(f"already running (pid {pid})", LSB.OK)
    command = [sys.executable, "-m", PROG, "--daemon", "--pid", path, *options]
    sys.stdout.flush()
    code = subprocess.call(command)  # returns once the workers serve, or with the error
    if code == ExitCode.OK:
        return _say(f"started (pid {read_pid_file(path)})", LSB.OK)
    return code


def stop(path: str, timeout: float) -> int:
    """TERM, wait up to ``timeout``, then KILL; 0 if it was not running."""
    pid = live_pid(path)
    if pid is None:
        stale = read_pid_file(path)
        if stale is not None and remove_pid_file(path, stale):
            _remove_state(path)
        return _say("not running", LSB.OK)
    os.kill(pid, signal.SIGTERM)
    if _wait(lambda: not is_hypercorn(pid), timeout):
        return _say(f"stopped (pid {pid})", LSB.OK)
    os.kill(pid, signal.SIGKILL)  # its workers die with it
    if not _wait(lambda: not is_hypercorn(pid), 10):
        return _say(f"pid {pid} survived SIGKILL", LSB.FAILURE)
    if remove_pid_file(path, pid):
        _remove_state(path)
    return _say(f"killed (pid {pid}) after {timeout:g} s", LSB.OK)


def _remove_state(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(state_path(path))


def reload(path: str, timeout: float) -> int:
    """HUP, then wait until the reload it started completed (0) or was refused (1)."""
    pid = live_pid(path)
    if pid is None:
        return _say("not running", LSB.NOT_RUNNING)
    before = _state_of(path, pid).reloads_started
    began = time.monotonic()
    os.kill(pid, signal.SIGHUP)

    def ended() -> State | None:
        state = _state_of(path, pid)
        number, _ = state.last_reload
        return state if state.reloads_started > before and number == state.reloads_started else None

    if not _wait(lambda: ended() is not None or not is_hypercorn(pid), timeout):
        return _say(f"reload still under way after {timeout:g} s", LSB.FAILURE)
    took = time.monotonic() - began
    state = ended()
    if state is None:
        return _say("the server stopped during the reload", LSB.FAILURE)
    if state.last_reload[1] != "ok":
        return _say(f"reload failed after {took:.2f} s: the new workers did not boot; "
                    "the old ones keep serving (see the error log)", LSB.FAILURE)  # fmt: skip
    workers = state.fields.get("workers", "?")
    return _say(f"reloaded in {took:.2f} s (pid {pid}, {workers} workers ready)", LSB.OK)


def upgrade(path: str, timeout: float) -> int:
    """USR2, then wait until a new master owns the PID file and the old one is gone."""
    old = live_pid(path)
    if old is None:
        return _say("not running", LSB.NOT_RUNNING)
    second = f"{path}.2"
    before = _state_of(path, old).number("upgrades_started")

    def failed() -> bool:
        state = _state_of(path, old)
        number, _, outcome = state.fields.get("last_upgrade", "").partition(":")
        return outcome == "failed" and number.isdigit() and int(number) > before

    def done() -> bool:
        new = read_pid_file(path)
        if new != old and new is not None and not is_hypercorn(old):
            return not os.path.exists(second)
        return failed() or (not is_hypercorn(old) and new == old)

    os.kill(old, signal.SIGUSR2)
    if not _wait(done, timeout):
        return _say(f"upgrade still under way after {timeout:g} s", LSB.FAILURE)
    new = read_pid_file(path)
    if new == old:
        if failed():
            return _say("upgrade failed: the new master did not start (see the error log); "
                        f"pid {old} keeps serving", LSB.FAILURE)  # fmt: skip
        return _say(f"the server (pid {old}) stopped during the upgrade", LSB.FAILURE)
    return _say(f"upgraded (pid {old} -> {new})", LSB.OK)


def rotate(path: str) -> int:
    """USR1: the master and the workers reopen their log files."""
    pid = live_pid(path)
    if pid is None:
        return _say("not running", LSB.NOT_RUNNING)
    os.kill(pid, signal.SIGUSR1)
    return _say(f"log files reopened (pid {pid})", LSB.OK)


def drain(path: str, timeout: float) -> int:
    """WINCH: out of rotation (``/readyz`` 503), still serving; returns once the master
    has been draining for its ``drain_delay``. A completed reload, or a stop, ends it."""
    pid = live_pid(path)
    if pid is None:
        return _say("not running", LSB.NOT_RUNNING)
    os.kill(pid, signal.SIGWINCH)
    if not _wait(lambda: _state_of(path, pid).fields.get("health") == "drained", timeout):
        return _say(f"drain still under way after {timeout:g} s", LSB.FAILURE)
    return _say(f"drained (pid {pid}): out of rotation, still serving; "
                "reload or stop next", LSB.OK)  # fmt: skip
