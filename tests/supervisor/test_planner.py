"""The planner's rules as tables: no process, no clock, no sleep.

Each test names the rule of ``supervisor/planner.py`` it checks; the classes
at the end replay the combinations of faults that took the service down
before the planner existed, and a Hypothesis test runs random sequences of
events against the invariants.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hypercorn.shared.cli import ExitCode
from hypercorn.supervisor.actions import (
    Action,
    Forget,
    Halt,
    Kill,
    KillTemplate,
    Limits,
    ReloadDone,
    Retire,
    RetireTemplate,
    Retrying,
    Serving,
    Spawn,
    StartTemplate,
    WorkerState,
)
from hypercorn.supervisor.planner import CRASH_WINDOW, FORK_ANSWER_TIMEOUT, MAX_BACKOFF, Planner


class Run:
    """A planner with a clock, driven the way the arbiter drives it."""

    def __init__(self, target: int = 2, **limits: object) -> None:
        self.now = 0.0
        self.planner = Planner(Limits(**limits), target, 0.0)  # type: ignore[arg-type]

    def plan(self) -> list[Action]:
        return self.planner.plan(self.now)

    def later(self, seconds: float) -> Run:
        self.now += seconds
        return self

    def spawns(self, actions: Iterable[Action], fork: bool = True) -> list[int]:
        """The keys of the workers ``actions`` spawn (their templates answer)."""
        keys = [a.key for a in actions if isinstance(a, Spawn)]
        for key in keys:
            if fork:
                self.planner.forked(key)
        return keys

    def ready(self, *keys: int) -> None:
        for key in keys:
            self.planner.ready(key, self.now)

    def boot(self, generation: int = 0) -> list[int]:
        """Load ``generation``'s template and bring every missing worker to READY."""
        self.plan()
        self.planner.template_loaded(generation)
        keys = self.spawns(self.plan())
        self.ready(*keys)
        return keys

    def reload(self, target: int | None = None) -> int:
        generation = self.planner.reload(self.now, target)
        assert self.plan() == [StartTemplate(generation)]
        return generation

    def roll(self, generation: int) -> list[Action]:
        """Load ``generation``'s template and let the rolling reload run to its end."""
        self.planner.template_loaded(generation)
        everything: list[Action] = []
        for _ in range(50):
            actions = self.plan()
            everything += actions
            keys = self.spawns(actions)
            retired = [a.key for a in actions if isinstance(a, Retire)]
            for key in retired:
                self.planner.worker_exited(key, 0, self.now)
            self.ready(*keys)
            if not keys and not retired:
                return everything
        raise AssertionError("the reload did not settle")

    def serving(self, generation: int | None = None) -> int:
        return self.planner.serving(generation)

    def generations(self) -> set[int]:
        return {w.generation for w in self.planner.workers.values()}


def kinds(actions: Iterable[Action]) -> list[str]:
    return [type(a).__name__ for a in actions]


# ------------------------------------------------------------------ first boot


class TestFirstBoot:
    def test_template_first_then_every_worker_at_once_in_the_lowest_slots(self) -> None:
        run = Run(target=3)
        assert run.plan() == [StartTemplate(0)]
        assert run.plan() == []  # spawn: waits for the template to load
        run.planner.template_loaded(0)
        actions = run.plan()
        assert [(a.generation, a.slot) for a in actions if isinstance(a, Spawn)] == [
            (0, 0), (0, 1), (0, 2),
        ]  # fmt: skip

    def test_serving_is_announced_once_when_every_worker_is_ready(self) -> None:
        run = Run(target=2)
        run.plan()
        run.planner.template_loaded(0)
        first, second = run.spawns(run.plan())
        run.ready(first)
        assert Serving(1) not in run.plan()
        run.ready(second)
        assert run.plan() == [Serving(2)]
        run.planner.worker_exited(first, -9, run.now)
        run.ready(*run.spawns(run.plan()))
        assert not any(isinstance(a, Serving) for a in run.plan())

    def test_no_serving_announcement_when_no_worker_ever_boots(self) -> None:
        run = Run(target=2, boot_retry_window=1.0)
        actions: list[Action] = []
        for _ in range(20):
            actions += run.plan()
            if run.planner.halted:
                break
            if 0 in run.planner.templates:
                actions += run.planner.template_exited(0, ExitCode.FAILURE, run.now, True)
            run.later(0.3)
        assert not any(isinstance(a, Serving) for a in actions)
        assert run.planner.halted == Halt(
            ExitCode.APP_LOAD, "the application failed to import",
            "still failing after 1 s of retries",
        )  # fmt: skip

    @pytest.mark.parametrize(
        ("code", "import_failed"),
        [
            (ExitCode.APP_LOAD, True),  # SyntaxError, missing module or attribute
            (ExitCode.USAGE, False),  # a template that cannot drop privileges
        ],
    )
    def test_an_error_no_retry_can_fix_halts_at_once(self, code: int, import_failed: bool) -> None:
        run = Run(boot_retry_window=30.0)
        run.plan()
        actions = run.planner.template_exited(0, code, run.now, import_failed)
        assert kinds(actions) == ["Halt"] and actions[0].code == code  # type: ignore[union-attr]
        assert run.plan() == []

    def test_an_import_that_raises_is_retried_with_capped_backoff_until_the_window(self) -> None:
        run = Run(boot_retry_window=30.0)
        delays = []
        while True:
            assert run.plan() == [StartTemplate(0)]
            actions = run.planner.template_exited(0, ExitCode.FAILURE, run.now, True)
            if isinstance(actions[0], Halt):
                break
            (retry,) = actions
            assert isinstance(retry, Retrying)
            delays.append(retry.delay)
            if retry.delay:
                assert run.plan() == []  # backing off: no template yet
            run.later(retry.delay)
        assert delays[:6] == pytest.approx([0.0, 0.1, 0.2, 0.4, 0.8, 1.6])
        assert max(delays) == MAX_BACKOFF
        assert 30.0 <= run.now < 30.0 + MAX_BACKOFF
        halt = actions[0]
        assert halt.code == ExitCode.APP_LOAD
        assert halt.summary == "still failing after 30 s of retries"

    def test_an_import_that_succeeds_within_the_window_serves(self) -> None:
        run = Run(boot_retry_window=30.0)
        for _ in range(3):
            run.plan()
            run.later(run.planner.template_exited(0, 1, run.now, True)[0].delay)  # type: ignore[union-attr]
        assert run.boot() and run.serving() == 2 and run.planner.good == 0

    @pytest.mark.parametrize(
        ("code", "halt_code"),
        [(ExitCode.LIFESPAN, ExitCode.LIFESPAN), (ExitCode.FAILURE, ExitCode.BOOT_FAILURE),
         (-9, ExitCode.BOOT_FAILURE)],
    )  # fmt: skip
    def test_workers_failing_together_are_retried_then_halt_with_their_cause(
        self, code: int, halt_code: int
    ) -> None:
        # Four workers failing their lifespan startup at once used to reach the
        # limit of five failures in 0.3 s.
        run = Run(target=4, boot_retry_window=10.0, max_boot_failures=5)
        run.plan()
        run.planner.template_loaded(0)
        rounds = 0
        while not run.planner.halted:
            actions: list[Action] = []
            for key in run.spawns(run.plan()):
                actions += run.planner.worker_exited(key, code, run.now)
            rounds += 1
            run.later(0.5)
        assert rounds > 5
        assert run.planner.halted.code == halt_code
        assert 10.0 <= run.now <= 10.0 + MAX_BACKOFF + 0.5

    def test_a_template_killed_while_importing_is_retried(self) -> None:
        run = Run(boot_timeout=5.0)
        run.plan()
        run.later(5.1)
        assert run.plan() == [KillTemplate(0, "load timeout")]
        assert run.plan() == []  # killed once
        (retry,) = run.planner.template_exited(0, -9, run.now)
        assert isinstance(retry, Retrying) and "load timeout" in retry.cause


# ------------------------------------------------------------------ health


class TestHealth:
    def test_kill_silent_a_ready_worker_without_heartbeat(self) -> None:
        run = Run(worker_timeout=30.0)
        first, second = run.boot()
        run.plan()
        run.later(20)
        run.planner.beat(first, run.now)
        run.later(10.5)
        assert run.plan() == [Kill(second, "worker timeout")]
        assert run.plan() == []  # once

    def test_kill_boot_timeout(self) -> None:
        run = Run(target=1, boot_timeout=90.0, boot_retry_window=120.0)
        run.plan()
        run.planner.template_loaded(0)
        (key,) = run.spawns(run.plan())
        run.later(89)
        assert run.plan() == []
        run.later(2)
        assert run.plan() == [Kill(key, "boot timeout")]
        assert kinds(run.planner.worker_exited(key, -9, run.now)) == ["Retrying"]

    def test_kill_retiring_after_its_grace(self) -> None:
        run = Run(target=1, stop_grace=4.0)
        (key,) = run.boot()
        run.plan()
        assert run.planner.stopping(key, run.now) == [Retire(key, "request limit")]
        run.later(3.9)
        assert not any(isinstance(a, Kill) for a in run.plan())
        run.later(0.2)
        assert Kill(key, "graceful timeout") in run.plan()

    def test_template_hung_on_a_fork_request_is_killed_and_replaced(self) -> None:
        run = Run(target=2, boot_timeout=90.0)
        first, _ = run.boot()
        run.plan()
        run.planner.worker_exited(first, -9, run.now)
        (key,) = run.spawns(run.plan(), fork=False)  # no answer
        run.later(FORK_ANSWER_TIMEOUT + 0.1)
        assert run.plan() == [KillTemplate(0, "no answer to a fork request")]
        actions = run.planner.template_exited(0, -9, run.now)
        assert actions == [Forget(key)]
        assert run.plan() == [StartTemplate(0)]  # a new one for the same generation
        run.planner.template_loaded(0)
        assert kinds(run.plan()) == ["Spawn"]

    def test_a_fork_the_template_cannot_make_is_a_boot_failure(self) -> None:
        run = Run(target=2)
        first, _ = run.boot()
        run.plan()
        run.planner.worker_exited(first, -9, run.now)
        (key,) = run.spawns(run.plan(), fork=False)
        (retry,) = run.planner.fork_failed(key, run.now)
        assert isinstance(retry, Retrying) and retry.cause == "fork failed"
        assert key not in run.planner.workers and run.planner.boot_failures == 1

    def test_fork_answer_timeout_is_at_most_the_boot_timeout(self) -> None:
        run = Run(target=1, boot_timeout=3.0)
        run.plan()
        run.planner.template_loaded(0)
        run.spawns(run.plan(), fork=False)
        assert run.planner.next_deadline(run.now) == 3.0
        run.later(3.1)
        assert kinds(run.plan()) == ["KillTemplate"]

    def test_next_deadline_is_the_nearest_rule(self) -> None:
        run = Run(worker_timeout=30.0, boot_timeout=90.0)
        run.boot()
        run.plan()
        assert run.planner.next_deadline(run.now) == 30.0
        run.planner.reload(run.now)
        run.plan()
        assert run.planner.next_deadline(run.now) == 30.0  # the loading template: 90


# ------------------------------------------------------------------ rolling


class TestRolling:
    def test_reload_replaces_one_at_a_time_and_completes(self) -> None:
        run = Run(target=3)
        old = run.boot()
        run.plan()
        run.later(1)
        generation = run.reload()
        run.planner.template_loaded(generation)
        (new,) = run.spawns(run.plan())  # one at a time while stale workers remain
        assert run.plan() == []  # none retired before the successor is READY
        run.ready(new)
        actions = run.plan()
        assert actions[0] == Retire(old[0], "reload") and kinds(actions[1:]) == ["Spawn"]
        run.planner.worker_exited(old[0], 0, run.now)
        run.ready(*run.spawns(actions))
        everything = run.roll(generation)
        assert run.generations() == {generation} and run.serving() == 3
        done = [a for a in everything if isinstance(a, ReloadDone)]
        assert len(done) == 1 and done[0].ok and done[0].serving == 3
        assert RetireTemplate(0) in everything
        assert run.planner.good == generation

    def test_stale_order_booting_then_slot_taken_then_oldest(self) -> None:
        run = Run(target=2)
        run.boot()
        run.plan()
        old = sorted(run.planner.workers.values(), key=lambda w: w.started)
        generation = run.reload()
        run.planner.template_loaded(generation)
        (new,) = run.spawns(run.plan())
        assert run.planner.workers[new].slot == 0  # no fresh worker holds a slot yet
        run.ready(new)
        (retire, _) = run.plan()
        assert retire == Retire(old[0].key, "reload")  # slot 0's stale worker goes first

    def test_fewer_retires_booting_first_then_newest(self) -> None:
        run = Run(target=2)
        run.boot()
        run.plan()
        run.later(1)
        run.planner.resize(+2)
        newest, booting = run.spawns(run.plan())
        run.ready(newest)
        run.planner.resize(-1)
        assert run.plan() == [Retire(booting, "fewer workers")]
        run.planner.resize(-1)
        assert run.plan() == [Retire(newest, "fewer workers")]
        run.planner.resize(-5)
        assert run.planner.target == 1  # never below one

    def test_more_spawns_one(self) -> None:
        run = Run(target=2)
        run.boot()
        run.plan()
        run.planner.resize(+1)
        assert [a.slot for a in run.plan() if isinstance(a, Spawn)] == [2]

    def test_memory_recycle_waits_for_the_successor(self) -> None:
        run = Run(target=2)
        first, _ = run.boot()
        run.plan()
        run.planner.recycle(first, "memory")
        (successor,) = run.spawns(run.plan())
        assert run.plan() == []
        run.ready(successor)
        assert run.plan() == [Retire(first, "memory")]

    def test_request_limit_retires_at_once_and_the_successor_starts(self) -> None:
        run = Run(target=2)
        first, _ = run.boot()
        run.plan()
        assert run.planner.stopping(first, run.now) == [Retire(first, "request limit")]
        assert run.planner.stopping(first, run.now) == []
        assert kinds(run.plan()) == ["Spawn"]

    def test_a_crash_is_replaced_at_once_and_crashes_in_a_row_back_off(self) -> None:
        run = Run(target=2)
        run.boot()
        run.plan()
        delays = []
        for _ in range(4):
            key = next(iter(run.planner.workers))
            assert run.planner.worker_exited(key, -9, run.now) == []
            delays.append(run.planner.spawn_after - run.now)
            run.later(delays[-1])
            run.ready(*run.spawns(run.plan()))
        assert delays == pytest.approx([0.0, 0.1, 0.2, 0.4])
        run.later(CRASH_WINDOW + 1)
        run.planner.worker_exited(next(iter(run.planner.workers)), -9, run.now)
        assert run.planner.spawn_after == run.now  # older crashes forgotten


# ------------------------------------------------------------------ refused reloads


class TestRefusedReload:
    def refused(self, target: int = 3) -> tuple[Run, list[int], int]:
        run = Run(target=target)
        old = run.boot()
        run.plan()
        generation = run.reload()
        (done,) = run.planner.template_exited(generation, ExitCode.APP_LOAD, run.now, True)
        assert done == ReloadDone(False, generation, target, target, 0.0,
                                  "the application failed to import")  # fmt: skip
        return run, old, generation

    def test_a_broken_import_refuses_the_reload_and_keeps_the_good_template(self) -> None:
        run, old, _ = self.refused()
        assert run.planner.current == run.planner.good == 0
        assert run.plan() == []  # nothing to do: the old workers serve
        assert set(run.planner.workers) == set(old)
        assert 0 in run.planner.templates

    def test_a_refusal_restores_the_target(self) -> None:
        run = Run(target=3)
        run.boot()
        run.plan()
        generation = run.reload(target=5)
        assert run.planner.target == 5
        (done,) = run.planner.template_exited(generation, 1, run.now, True)
        assert isinstance(done, ReloadDone) and done.target == 3 == run.planner.target
        assert run.plan() == []

    def test_the_first_new_worker_failing_refuses_and_rolls_back(self) -> None:
        run = Run(target=3)
        old = run.boot()
        run.plan()
        generation = run.reload()
        run.planner.template_loaded(generation)
        (first,) = run.spawns(run.plan())
        run.ready(first)
        actions = run.plan()
        retired = [a.key for a in actions if isinstance(a, Retire)]
        for key in retired:
            run.planner.worker_exited(key, 0, run.now)
        (second,) = run.spawns(actions)
        (done,) = run.planner.worker_exited(second, ExitCode.LIFESPAN, run.now)
        assert isinstance(done, ReloadDone) and not done.ok and done.serving == 2
        assert done.cause == "lifespan startup failed"
        everything = run.roll(0)
        assert RetireTemplate(generation) in everything
        assert run.generations() == {0} and run.serving() == 3  # the previous code, all
        assert len(set(run.planner.workers) & set(old)) == 2

    @pytest.mark.parametrize("fault", ["kill -9", "max_requests", "memory", "worker timeout"])
    def test_every_later_fault_is_replaced_from_the_good_template(self, fault: str) -> None:
        run, old, _ = self.refused()
        victim = old[0]
        if fault == "kill -9":
            assert run.planner.worker_exited(victim, -9, run.now) == []
        elif fault == "max_requests":
            run.planner.stopping(victim, run.now)
        elif fault == "memory":
            run.planner.recycle(victim, "memory")
        else:
            run.later(31)
            for key in old[1:]:
                run.planner.beat(key, run.now)
            assert run.plan() == [Kill(victim, "worker timeout")]
            run.planner.worker_exited(victim, -9, run.now)
        actions = run.plan()
        assert [(a.generation, a.slot) for a in actions if isinstance(a, Spawn)] == [(0, 0)]
        run.ready(*run.spawns(actions))
        if fault in ("max_requests", "memory"):
            run.roll(0)  # retires the victim once its successor is READY
        if fault == "max_requests":
            run.planner.worker_exited(victim, 0, run.now)
        assert run.generations() == {0} and run.serving() == 3
        assert not any(isinstance(a, Halt) for a in run.plan())

    def test_boot_failures_after_a_refusal_never_halt_while_a_worker_serves(self) -> None:
        # The good template dies; the new one imports the broken code on disk.
        run, old, _ = self.refused()
        run.planner.template_exited(0, -9, run.now)
        run.planner.worker_exited(old[0], -9, run.now)
        for _ in range(50):
            actions = run.plan()
            assert not any(isinstance(a, Halt) for a in actions)
            if StartTemplate(0) in actions:
                (retry,) = run.planner.template_exited(0, 1, run.now, True)
                assert isinstance(retry, Retrying) and retry.delay <= MAX_BACKOFF
            run.later(MAX_BACKOFF)
        assert run.serving() == 2 and run.planner.boot_failures >= 45

    def test_with_none_serving_the_crash_loop_halts(self) -> None:
        run, old, _ = self.refused(target=1)
        run.planner.worker_exited(old[0], -9, run.now)
        for _ in range(5):
            (key,) = run.spawns(run.plan())
            (action,) = run.planner.worker_exited(key, 1, run.now)
            run.later(MAX_BACKOFF)
        assert action == Halt(ExitCode.BOOT_FAILURE, "worker failed to boot",
                              "5 in a row failed to boot, none serving")  # fmt: skip

    def test_a_reload_during_a_reload_abandons_the_first(self) -> None:
        run = Run(target=2)
        run.boot()
        run.plan()
        first = run.reload()
        second = run.planner.reload(run.now)
        assert run.plan() == [StartTemplate(second), RetireTemplate(first)]
        assert run.planner.template_exited(first, 1, run.now, True) == []  # abandoned
        everything = run.roll(second)
        assert run.generations() == {second}
        assert [a.ok for a in everything if isinstance(a, ReloadDone)] == [True]

    def test_refusal_reports_the_old_workers_serving(self) -> None:
        # sd_notify used to say "0 of 2 worker(s) ready" while two old ones served.
        run, _, _ = self.refused(target=2)
        assert run.serving(0) == 2

    def test_a_template_dying_after_loading_is_restarted_and_workers_kept(self) -> None:
        run = Run(target=2)
        old = run.boot()
        run.plan()
        assert run.planner.template_exited(0, -9, run.now) == []
        assert run.plan() == [StartTemplate(0)]
        assert set(run.planner.workers) == set(old)


# ------------------------------------------------------------------ invariants

EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["ready", "ready", "ready", "retired", "retired", "crash", "boot-fail",
                         "import-fail", "load", "load", "hup", "more", "fewer", "limit",
                         "memory", "time", "template-dies"]),
        st.integers(0, 5),
    ),
    max_size=60,
)  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.booleans(), EVENTS)
def test_invariants_over_random_faults(serving_first: bool, events: list[tuple[str, int]]) -> None:
    """After every event a second passes and the master plans (as its loop does):
    it never halts while a worker serves (``_halt`` asserts it too); a
    retirement never takes the READY workers below the target; a boot failure
    of a reload under way leaves the last good generation current; a refused
    generation is never forked again."""
    run = Run(target=3, boot_retry_window=5.0, max_boot_failures=3)
    p = run.planner
    if serving_first:
        run.boot()
    refused: set[int] = set()
    for event, n in events:
        keys = sorted(p.workers)
        key = keys[n % len(keys)] if keys else None

        def pick(state: WorkerState, keys: list[int] = keys, n: int = n) -> int | None:
            chosen = [k for k in keys if p.workers[k].state is state and p.workers[k].forked]
            return chosen[n % len(chosen)] if chosen else None

        outcome: list[Action] = []
        candidate = p.current if p.reloading() else None
        if event == "ready" and (booting := pick(WorkerState.BOOTING)) is not None:
            run.ready(booting)
        elif event == "retired" and (retiring := pick(WorkerState.RETIRING)) is not None:
            outcome = p.worker_exited(retiring, 0, run.now)
        elif event == "crash" and (ready := pick(WorkerState.READY)) is not None:
            outcome = p.worker_exited(ready, -9, run.now)
        elif event == "boot-fail" and (booting := pick(WorkerState.BOOTING)) is not None:
            failed = p.workers[booting].generation
            outcome = p.worker_exited(booting, 1, run.now)
            if failed == candidate:
                assert p.current == p.good != failed
        elif event == "import-fail" and p.current in p.templates:
            if p.templates[p.current].state.value != "loaded":
                outcome = p.template_exited(p.current, 1, run.now, True)
                if candidate is not None:
                    assert p.current == p.good != candidate
        elif event == "load":
            for generation in list(p.templates):
                p.template_loaded(generation)
        elif event == "hup":
            p.reload(run.now)
        elif event in ("more", "fewer"):
            p.resize(+1 if event == "more" else -1)
        elif event == "limit" and (ready := pick(WorkerState.READY)) is not None:
            outcome = p.stopping(ready, run.now)
        elif event == "memory" and key is not None:
            p.recycle(key, "memory")
        elif event == "time":
            run.later(n)
        elif event == "template-dies" and p.templates:
            generation = sorted(p.templates)[n % len(p.templates)]
            outcome = p.template_exited(generation, -9, run.now)
        refused |= {a.generation for a in outcome if isinstance(a, ReloadDone) and not a.ok}
        if p.halted:
            assert p.serving() == 0
            break
        run.later(1.0)
        ready_before = {k for k, w in p.workers.items() if w.state is WorkerState.READY}
        planned = run.plan()
        run.spawns(planned)
        assert not {a.generation for a in planned if isinstance(a, Spawn)} & refused
        if any(isinstance(a, Retire) and a.key in ready_before for a in planned):
            serving = sum(w.state is WorkerState.READY for w in p.workers.values())
            assert serving >= min(p.target, len(ready_before)), planned
        assert p.current not in refused
