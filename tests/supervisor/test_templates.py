"""Templates: a refused deploy survives every later fault; a template's own faults.

Real masters, real signals, a real load. The broken deploy is code that fails
at import; after HUP refuses it, every worker lost for any reason must come
back running the previous code, at full capacity, and the master must never
stop while a worker serves.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from pathlib import Path

import psutil
import pytest

from tests.supervisor.harness import APP, Load, LoadResult, Master, master, request, wait_for

BROKEN = {
    "syntax error": APP.replace('VERSION = "v1"', "VERSION = = 'v2'"),
    "raises at import": APP.replace('VERSION = "v1"', "raise RuntimeError('no database')"),
}


def _refuse_a_deploy(
    server: Master, tmp_path: Path, broken: str, *, recycling: bool = False
) -> set[int]:
    """Deploy code that fails at import and HUP; returns the workers that keep serving.

    Without recycling the very same workers serve on. With ``max_requests``
    recycling under load, workers are replaced meanwhile (and a fresh fork is
    briefly titled as its template), so what holds is the number serving once
    the refusal is logged; the load's bodies show which code they run.
    """
    workers = server.workers()
    (tmp_path / "app.py").write_text(broken)
    server.kill(signal.SIGHUP)
    wait_for(lambda: "Reload refused" in server.log(), 20, "the reload to be refused")
    if not recycling:
        assert server.workers() == workers
        return workers
    wait_for(lambda: len(server.workers()) == len(workers), 10, "every worker serving")
    return server.workers()


def _template_generations(server: Master) -> dict[int, int]:
    """The master's templates: ``{pid: generation}``."""
    found = {}
    for pid in server.templates():
        title = psutil.Process(pid).cmdline()[0]
        match = re.search(r"\(generation (\d+)\)", title)
        assert match, title
        found[pid] = int(match.group(1))
    return found


def _recycles(server: Master) -> int:
    return len(re.findall(r"Worker \d+ served \d+ requests", server.log()))


def _failures_outside(result: LoadResult, start: float, seconds: float) -> list[str]:
    return [
        failure
        for failure, when in zip(result.failures, result.failed_at, strict=True)
        if not start <= when <= start + seconds
    ]


@pytest.mark.slow
@pytest.mark.parametrize("broken", BROKEN)
def test_refused_deploy_then_kill_and_recycles_keep_every_worker_on_the_old_code(
    tmp_path: Path, broken: str
) -> None:
    args = ("--max-requests", "150", "--max-requests-jitter", "20")
    with master(tmp_path, *args, workers=3) as server:
        with Load(server.port, rate=250, keep_alive=3, fresh=2, max_seconds=90) as load:
            load.wait_sent(100)
            _refuse_a_deploy(server, tmp_path, BROKEN[broken], recycling=True)
            before = _recycles(server)
            victim = min(server.workers())
            killed_at = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            wait_for(lambda: f"Worker {victim} exited unexpectedly" in server.log(), 10, "reaped")
            server.wait_ready(3)
            # Recycles at max_requests: each replacement forks from the last good code.
            wait_for(lambda: _recycles(server) >= before + 6, 60, "six recycles after the refusal")
            load.wait_sent(load.result.sent + 200)
            result = load.stop()
        log = server.log()
        assert server.process.poll() is None
        # A recycle may be in flight as the load stops: the count settles at 3.
        wait_for(lambda: len(server.workers()) == 3, 10, "three workers")
        assert set(_template_generations(server).values()) == {0}  # the refused one is gone
    recycles = _recycles(server) - before
    # Only requests in flight on the killed worker may fail, at once.
    assert _failures_outside(result, killed_at, 1.0) == [], result.failures[:5]
    assert len(result.failures) <= 5, result.failures
    assert result.stale_retries <= 3  # the keep-alive connections of the killed worker
    assert set(result.bodies) == {"v1"}, result.bodies  # never the broken code
    assert "Worker timeout" not in log and "Traceback" in log
    print(
        f"\nrefused deploy ({broken}), kill -9, {recycles} recycles: sent {result.sent}, "
        f"failed {len(result.failures)} (in flight on the killed worker), retried "
        f"{result.stale_retries}; served {dict(result.bodies)}"
    )


@pytest.mark.slow
def test_refused_deploy_then_memory_ceiling_and_worker_timeout(tmp_path: Path) -> None:
    # A worker timeout long enough that the leaky request's allocation (its loop
    # blocked meanwhile) never reaches it on a loaded machine.
    args = ("--max-worker-memory", "150M", "--memory-check-interval", "0.2",
            "--worker-timeout", "5")  # fmt: skip
    with master(tmp_path, *args, workers=2) as server:
        with Load(server.port, rate=100, keep_alive=1, fresh=1, max_seconds=90) as load:
            load.wait_sent(50)
            _refuse_a_deploy(server, tmp_path, BROKEN["raises at import"])
            status, body = request(server.port, "/leak?200000000")
            assert status == 200
            leaky = int(body.split()[1])
            wait_for(lambda: not psutil.pid_exists(leaky), 20, "the leaky worker replaced")
            server.wait_ready(2)
            blocked_at = time.monotonic()
            with contextlib.suppress(OSError):  # the hung worker is killed with its request
                request(server.port, "/block?30", timeout=10)
            wait_for(lambda: "Worker timeout (pid" in server.log(), 15, "the worker timeout")
            server.wait_ready(2)
            load.wait_sent(load.result.sent + 100)
            result = load.stop()
        assert server.process.poll() is None
    # Only requests that met the hung worker may fail, until it is killed.
    assert _failures_outside(result, blocked_at, 9.0) == [], result.failures[:5]
    assert set(result.bodies) == {"v1"}, result.bodies
    print(f"\nrefused deploy, memory ceiling, worker timeout: sent {result.sent}, failed "
          f"{len(result.failures)}, served {dict(result.bodies)}")  # fmt: skip


def test_a_killed_template_takes_no_worker_with_it(tmp_path: Path) -> None:
    with master(tmp_path, workers=2) as server:
        workers = server.workers()
        (first,) = server.templates()
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: server.templates() - {first}, 20, "a new template")
        assert server.workers() == workers
        assert "another one will load the code on disk" in server.log()
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        replaced = server.wait_ready(2)
        assert victim not in replaced
        assert all(server.get()[1].startswith("v1") for _ in range(6))


def test_a_hung_template_is_killed_and_replaced(tmp_path: Path) -> None:
    with master(tmp_path, "--worker-boot-timeout", "3", workers=2) as server:
        (hung,) = server.templates()
        os.kill(hung, signal.SIGSTOP)
        victim = min(server.workers())
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: "no answer to a fork request" in server.log(), 10, "the hung template")
        wait_for(lambda: server.templates() - {hung}, 20, "a new template")
        assert not psutil.pid_exists(hung) or psutil.Process(hung).status() == "zombie"
        assert victim not in server.wait_ready(2)


def test_templates_follow_the_generations(tmp_path: Path) -> None:
    with master(tmp_path, workers=2) as server:
        assert list(_template_generations(server).values()) == [0]
        (tmp_path / "app.py").write_text(APP.replace('"v1"', '"v2"'))
        server.kill(signal.SIGHUP)
        wait_for(lambda: "Reload complete" in server.log(), 20, "the reload")
        wait_for(lambda: list(_template_generations(server).values()) == [1], 10,
                 "the old template retired")  # fmt: skip
        good = server.templates()
        _refuse_a_deploy(server, tmp_path, BROKEN["syntax error"])
        wait_for(lambda: server.templates() == good, 10, "only the good template")
        assert all(server.get()[1].startswith("v2") for _ in range(6))


def test_workers_and_templates_die_with_the_master(tmp_path: Path) -> None:
    with master(tmp_path, workers=3) as server:
        family = server.workers() | server.templates()
        assert len(family) == 4
        server.kill(signal.SIGKILL)
        server.process.wait(10)
        wait_for(lambda: not any(_alive(pid) for pid in family), 2, "every child to exit")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_preload_serves_the_preloaded_code_after_a_kill_and_a_reload(tmp_path: Path) -> None:
    with master(tmp_path, "--preload", workers=2) as server:
        os.kill(min(server.workers()), signal.SIGKILL)
        server.wait_ready(2)
        (tmp_path / "app.py").write_text(APP.replace('"v1"', '"v2"'))
        server.kill(signal.SIGHUP)
        wait_for(lambda: "Reload complete" in server.log(), 20, "the reload")
        assert "reloaded workers serve the preloaded code" in server.log()
        assert all(server.get()[1].startswith("v1") for _ in range(6))


def test_without_a_subreaper_the_master_forks_the_workers_itself(tmp_path: Path) -> None:
    # As on a system without PR_SET_CHILD_SUBREAPER: no templates; each worker
    # imports the application; a broken deploy is still refused.
    (tmp_path / "run.py").write_text(
        "import sys\n"
        "from hypercorn.supervisor import workers\n"
        "workers.become_subreaper = lambda: False\n"
        "from hypercorn.__main__ import main\n"
        "sys.exit(main())\n"
    )
    with master(tmp_path, workers=2, command=("run.py",)) as server:
        assert server.templates() == set()
        assert "No child subreaper on this system" in server.log()
        victim = min(server.workers())
        os.kill(victim, signal.SIGKILL)
        assert victim not in server.wait_ready(2)
        old = _refuse_a_deploy(server, tmp_path, BROKEN["syntax error"])
        (tmp_path / "app.py").write_text(APP.replace('"v1"', '"v2"'))
        server.kill(signal.SIGHUP)
        wait_for(lambda: not (old & server.workers()), 20, "the old workers replaced")
        server.wait_ready(2)
        assert all(server.get()[1].startswith("v2") for _ in range(6))


def test_the_application_is_imported_once_per_generation(tmp_path: Path) -> None:
    # Not once per worker and per replacement.
    (tmp_path / "app.py").write_text(APP + "\nprint('imported', flush=False)\n")
    with master(tmp_path, workers=3) as server:
        os.kill(min(server.workers()), signal.SIGKILL)
        server.wait_ready(3)
        server.kill(signal.SIGTERM)
        server.process.wait(10)
        assert server.log().count("imported") == 1, server.log()
