"""The arbiter's decisions, as a function of its state: no processes, no clock.

Theory of operation
-------------------
Everything that decides what the master does to its workers and templates
lives here; ``arbiter.py`` only tells the planner what happened (a worker
forked, became READY, beat, stopped at its limit, exited; a template loaded
the application, failed, exited; a signal changed the target) and carries
out the actions the planner returns. Time is an argument (``now``), so every
rule is tested as a table, without a process or a sleep
(``tests/supervisor/test_planner.py``).

Generations. Every reload makes a new *generation* of the code; each
generation has a *template*, a process that imported the application once
and forks that generation's workers (``template.py``). ``current`` is the
generation new workers come from; ``good`` is the last generation that
finished a rollout (at first boot: the first one with a READY worker). While
``current`` is not ``good`` a reload is under way: the first of its workers
(or its template) that fails to boot *refuses* it: ``current`` goes back to
``good``, whose template was kept for this, and the same rolling rule below
replaces the refused generation's workers with ``good`` ones. From then on
every replacement, whatever its cause (a crash, a kill, ``max_requests``, the
memory ceiling, a worker timeout), forks from ``good``'s template: the code
that served before the deploy, never the broken code on disk.

The rules, in the order ``plan`` applies them (names as in the tests):

========================  ====================================================
rule                      what it does
========================  ====================================================
kill-retiring             a RETIRING worker past its grace is killed
kill-boot-timeout         a BOOTING worker past ``boot_timeout`` is killed
kill-silent               a READY worker silent for ``worker_timeout`` is killed
template-hung             a fork request unanswered for ``FORK_ANSWER_TIMEOUT``
                          (or ``boot_timeout`` if shorter), or a load past
                          ``boot_timeout``, kills the template
roll                      *fresh* = alive, of ``current``, not marked for
                          recycling; a *stale* worker is retired only while
                          fresh READY + stale > target (booting stale first,
                          then those whose slot a fresh one took, then oldest)
fewer                     fresh workers over the target are retired (booting
                          first, then the newest)
reload-complete           no worker of another generation is left and one of
                          ``current`` is READY: ``current`` becomes ``good``
serving                   the first time target fresh workers are READY
template-needed           ``current`` gets a template when it has none (after
                          any backoff)
template-retire           a template whose generation is neither ``current``
                          nor ``good`` retires once no fork request is pending
                          (its workers need it no more: it is not their
                          parent, and stale workers are never replaced in
                          their own generation)
spawn                     missing fresh workers are forked from ``current``'s
                          LOADED template after any backoff: all at once, or
                          one at a time while stale workers remain (a rolling
                          replacement keeps capacity at the target)
========================  ====================================================

And on events:

========================  ====================================================
event                     decision
========================  ====================================================
worker exits RETIRING     expected: nothing
worker exits READY        a crash: replaced; crashes within ``CRASH_WINDOW``
                          back off
worker or template fails  of a reload under way: the reload is refused (the
to boot                   target it changed is restored); of a generation a
(a fork refused too)      newer reload abandoned: nothing; at first boot
                          (nothing ever READY): an error no retry can fix
                          (exit 2 or 4) halts at once with its code;
                          otherwise retried with backoff until
                          ``boot_retry_window`` has passed, then the master
                          halts (4 for an import, 6 for lifespan startup, else
                          3); later: retried with backoff, and the master halts
                          (3) only when no worker serves and
                          ``max_boot_failures`` failed in a row
template exits after      its workers keep serving; ``template-needed`` starts
loading                   another (which imports the code on disk *now*)
stopped at request limit  retired exactly as a reload retires (same drain)
========================  ====================================================

Invariants (tested over random event sequences): the planner never halts
while a worker is READY; a retirement never takes the READY workers below
the target; a refused generation is never forked again.

Backoff: ``0.1 * 2 ** (n - 2)`` seconds (0 for n <= 1), at most
``MAX_BACKOFF``, where n counts boot failures in a row plus crashes within
``CRASH_WINDOW``.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

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
    Template,
    TemplateState,
    Worker,
    WorkerState,
)

__all__ = ["CRASH_WINDOW", "FORK_ANSWER_TIMEOUT", "MAX_BACKOFF", "NO_RETRY_CODES", "Planner"]

CRASH_WINDOW = 10.0  # crashes closer together than this back off
MAX_BACKOFF = 5.0
FORK_ANSWER_TIMEOUT = 10.0  # seconds a loaded template has to answer a fork request
NO_RETRY_CODES = frozenset({ExitCode.USAGE, ExitCode.APP_LOAD})


@dataclass
class Planner:
    """The master's state and rules; see the module docstring.

    Args:
        limits: the settings the rules read.
        target: the number of workers wanted.
        now: the master's start (the first boot's retry window starts here).
    """

    limits: Limits
    target: int
    now: float
    workers: dict[int, Worker] = field(default_factory=dict)
    templates: dict[int, Template] = field(default_factory=dict)
    current: int = 0
    good: int | None = None
    ever_ready: bool = False
    boot_failures: int = 0
    spawn_after: float = 0.0
    halted: Halt | None = None
    announced: bool = False
    reload_started: float | None = None
    _rollback_target: int = 0
    _crashes: collections.deque[float] = field(default_factory=collections.deque)
    _next_key: int = 1
    _next_generation: int = 1

    def __post_init__(self) -> None:
        self.first_boot_until = self.now + self.limits.boot_retry_window
        self._rollback_target = self.target

    # ------------------------------------------------------------ queries

    def fresh(self) -> list[Worker]:
        """Workers of ``current``, not retiring nor marked for recycling."""
        return [w for w in self.workers.values() if self._is_fresh(w)]

    def _is_fresh(self, worker: Worker) -> bool:
        return (
            worker.generation == self.current
            and worker.recycle is None
            and worker.state is not WorkerState.RETIRING
        )

    def serving(self, generation: int | None = None) -> int:
        """READY workers (of ``generation``, if given)."""
        return sum(
            w.state is WorkerState.READY and generation in (None, w.generation)
            for w in self.workers.values()
        )

    def reloading(self) -> bool:
        return self.good is not None and self.current != self.good

    def missing(self) -> int:
        return self.target - len(self.fresh())

    def next_deadline(self, now: float) -> float | None:
        """The earliest time ``plan`` would decide something new by itself."""
        limits = self.limits
        deadlines: list[float] = []
        if self.missing() > 0 and self.spawn_after > now:
            deadlines.append(self.spawn_after)
        for worker in self.workers.values():
            if worker.killed is not None:
                continue
            if not worker.forked:
                template = self.templates.get(worker.generation)
                if template is not None and template.killed is None:
                    deadlines.append(worker.started + self._fork_answer_timeout())
            elif worker.state is WorkerState.RETIRING and worker.stop_by is not None:
                deadlines.append(worker.stop_by)
            elif worker.state is WorkerState.BOOTING:
                deadlines.append(worker.started + limits.boot_timeout)
            elif worker.state is WorkerState.READY:
                deadlines.append(worker.last_beat + limits.worker_timeout)
        for template in self.templates.values():
            if template.state is TemplateState.LOADING and template.killed is None:
                deadlines.append(template.started + limits.boot_timeout)
        return min(deadlines, default=None)

    # ------------------------------------------------------------ the rules

    def plan(self, now: float) -> list[Action]:
        """What to do now, by the rules of the module docstring, in their order."""
        if self.halted is not None:
            return []
        actions: list[Action] = []
        self._health(now, actions)
        self._roll(now, actions)
        self._progress(now, actions)
        self._templates(now, actions)
        self._spawn(now, actions)
        return actions

    def _health(self, now: float, actions: list[Action]) -> None:
        limits = self.limits
        for worker in self.workers.values():
            if worker.killed is not None:
                continue
            reason = None
            if not worker.forked:
                if now - worker.started > self._fork_answer_timeout():
                    self._kill_template(worker.generation, "no answer to a fork request", actions)
                continue
            if worker.state is WorkerState.RETIRING:
                if worker.stop_by is not None and now >= worker.stop_by:
                    reason = "graceful timeout"
            elif worker.state is WorkerState.BOOTING:
                if now - worker.started > limits.boot_timeout:
                    reason = "boot timeout"
            elif now - worker.last_beat > limits.worker_timeout:
                reason = "worker timeout"
            if reason is not None:
                worker.killed = reason
                actions.append(Kill(worker.key, reason))
        for template in list(self.templates.values()):
            if (
                template.state is TemplateState.LOADING
                and now - template.started > limits.boot_timeout
            ):
                self._kill_template(template.generation, "load timeout", actions)

    def _fork_answer_timeout(self) -> float:
        return min(FORK_ANSWER_TIMEOUT, self.limits.boot_timeout)

    def _kill_template(self, generation: int, reason: str, actions: list[Action]) -> None:
        template = self.templates.get(generation)
        if template is not None and template.killed is None:
            template.killed = reason
            actions.append(KillTemplate(generation, reason))

    def _retire(self, worker: Worker, now: float, reason: str, actions: list[Action]) -> None:
        worker.state = WorkerState.RETIRING
        worker.stop_by = now + self.limits.stop_grace
        actions.append(Retire(worker.key, reason))

    def _roll(self, now: float, actions: list[Action]) -> None:
        alive = [w for w in self.workers.values() if w.state is not WorkerState.RETIRING]
        fresh = [w for w in alive if self._is_fresh(w)]
        serving_fresh = sum(w.state is WorkerState.READY for w in fresh)
        taken = {w.slot for w in fresh if w.state is WorkerState.READY}
        stale = sorted(
            (w for w in alive if not self._is_fresh(w)),
            key=lambda w: (w.state is WorkerState.READY, w.slot not in taken, w.started),
        )
        while stale and serving_fresh + len(stale) > self.target:
            worker = stale.pop(0)
            self._retire(worker, now, worker.recycle or "reload", actions)
        if len(fresh) > self.target:
            extra = sorted(fresh, key=lambda w: (w.state is WorkerState.READY, -w.started))
            for worker in extra[: len(fresh) - self.target]:
                self._retire(worker, now, "fewer workers", actions)

    def _templates(self, now: float, actions: list[Action]) -> None:
        if not self.limits.templates:
            return
        if self.current not in self.templates and now >= self.spawn_after:
            self.templates[self.current] = Template(self.current, now)
            actions.append(StartTemplate(self.current))
        keep = {self.current, self.good}
        for generation, template in self.templates.items():
            pending = any(
                not w.forked and w.generation == generation for w in self.workers.values()
            )
            if generation not in keep and not template.retiring and not pending:
                template.retiring = True
                actions.append(RetireTemplate(generation))

    def _spawn(self, now: float, actions: list[Action]) -> None:
        if self.limits.templates:
            template = self.templates.get(self.current)
            if template is None or template.state is not TemplateState.LOADED:
                return
            if template.retiring or template.killed is not None:
                return
        fresh = self.fresh()
        stale = [
            w
            for w in self.workers.values()
            if w.state is not WorkerState.RETIRING and not self._is_fresh(w)
        ]
        missing = self.target - len(fresh)
        if stale and any(w.state is WorkerState.BOOTING for w in fresh):
            missing = 0  # rolling: one replacement at a time
        elif stale:
            missing = min(missing, 1)
        if missing <= 0 or now < self.spawn_after:
            return
        taken = {w.slot for w in fresh}
        for _ in range(missing):
            slot = next(n for n in range(len(taken) + 1) if n not in taken)
            taken.add(slot)
            worker = Worker(self._next_key, self.current, slot, now, last_beat=now)
            worker.forked = not self.limits.templates
            self._next_key += 1
            self.workers[worker.key] = worker
            actions.append(Spawn(worker.key, worker.generation, slot))

    def _progress(self, now: float, actions: list[Action]) -> None:
        fresh_ready = sum(w.state is WorkerState.READY for w in self.fresh())
        others = any(w.generation != self.current for w in self.workers.values())
        if self.reloading() and fresh_ready and not others:
            self.good = self.current
        if self.reload_started is not None and self.good == self.current and not others:
            seconds = now - self.reload_started
            self.reload_started = None
            actions.append(ReloadDone(True, self.current, self.serving(), self.target, seconds))
        if not self.announced and fresh_ready >= self.target:
            self.announced = True
            actions.append(Serving(fresh_ready))

    # ------------------------------------------------------------ events

    def forked(self, key: int) -> None:
        """The template answered: the worker runs (its pid is known)."""
        self.workers[key].forked = True

    def fork_failed(self, key: int, now: float) -> list[Action]:
        """The template could not fork the worker."""
        worker = self.workers.pop(key)
        return self._boot_failed(worker.generation, ExitCode.FAILURE, now, "fork failed")

    def ready(self, key: int, now: float) -> None:
        worker = self.workers[key]
        if worker.state is WorkerState.BOOTING:
            worker.state = WorkerState.READY
        worker.last_beat = now
        self.boot_failures = 0
        self.ever_ready = True
        if self.good is None:
            self.good = worker.generation

    def beat(self, key: int, now: float) -> None:
        self.workers[key].last_beat = now

    def stopping(self, key: int, now: float) -> list[Action]:
        """The worker reached its request limit and stopped accepting: retire it
        as a reload would (its successor starts at once)."""
        worker = self.workers[key]
        if worker.state is WorkerState.RETIRING:
            return []
        actions: list[Action] = []
        self._retire(worker, now, "request limit", actions)
        return actions

    def recycle(self, key: int, reason: str) -> None:
        """Replace the worker once a successor is READY (the memory ceiling)."""
        worker = self.workers[key]
        if worker.recycle is None and worker.state is WorkerState.READY:
            worker.recycle = reason

    def worker_exited(self, key: int, code: int, now: float) -> list[Action]:
        """Classify an exit (see the module docstring); ``code`` as ``waitstatus_to_exitcode``."""
        worker = self.workers.pop(key)
        if worker.state is WorkerState.RETIRING:
            return []
        if worker.state is WorkerState.READY:
            self._crashes.append(now)
            self.spawn_after = now + self._backoff(now)
            return []
        if code == ExitCode.LIFESPAN:
            cause = "lifespan startup failed"
        else:
            cause = f"worker {'killed: ' + worker.killed if worker.killed else 'failed to boot'}"
        return self._boot_failed(worker.generation, code, now, cause)

    def template_loaded(self, generation: int) -> None:
        template = self.templates.get(generation)
        if template is not None:
            template.state = TemplateState.LOADED

    def template_exited(
        self, generation: int, code: int, now: float, import_failed: bool = False
    ) -> list[Action]:
        """The template of ``generation`` exited.

        Args:
            generation: whose template it was.
            code: the exit code it reported with its failure, or else its own.
            now: the clock.
            import_failed: it reported that the application raised while
                being imported.
        """
        template = self.templates.pop(generation, None)
        actions: list[Action] = []
        for worker in [w for w in self.workers.values() if w.generation == generation]:
            if not worker.forked:
                del self.workers[worker.key]
                actions.append(Forget(worker.key))
        if template is None or template.retiring:
            return actions
        if template.state is TemplateState.LOADING:
            if import_failed:
                cause = "the application failed to import"
            elif template.killed:
                cause = f"template killed: {template.killed}"
            else:
                cause = "template failed"
            return actions + self._boot_failed(generation, code, now, cause, import_failed)
        self._crashes.append(now)
        self.spawn_after = now + self._backoff(now)
        return actions

    def reload(self, now: float, target: int | None = None) -> int:
        """Start a reload: a new generation (with ``target`` workers, if given).

        Returns:
            The new generation's number.
        """
        if not self.reloading():
            self._rollback_target = self.target
        generation = self._next_generation
        self._next_generation += 1
        self.current = generation
        if target is not None:
            self.target = target
        self.reload_started = now
        return generation

    def resize(self, delta: int) -> None:
        """TTIN (+1) / TTOU (-1); never below one worker."""
        self.target = max(1, self.target + delta)
        self._rollback_target = max(1, self._rollback_target + delta)

    # ------------------------------------------------------------ failures

    def _boot_failed(
        self, generation: int, code: int, now: float, cause: str, import_failed: bool = False
    ) -> list[Action]:
        if self.reloading() and generation == self.current:
            return [self._refuse(now, cause)]
        if generation not in (self.current, self.good):
            return []  # an abandoned generation: nothing waits for it
        self.boot_failures += 1
        if not self.ever_ready:
            if code in NO_RETRY_CODES:
                return self._halt(code, cause, "")
            if now >= self.first_boot_until:
                if import_failed:
                    code = ExitCode.APP_LOAD
                elif code != ExitCode.LIFESPAN:
                    code = ExitCode.BOOT_FAILURE
                window = self.limits.boot_retry_window
                summary = f"still failing after {window:g} s of retries"
                return self._halt(code, cause, summary)
        elif self.serving() == 0 and self.boot_failures >= self.limits.max_boot_failures:
            summary = f"{self.boot_failures} in a row failed to boot, none serving"
            return self._halt(ExitCode.BOOT_FAILURE, cause, summary)
        delay = self._backoff(now)
        self.spawn_after = now + delay
        return [Retrying(delay, self.boot_failures, cause)]

    def _refuse(self, now: float, cause: str) -> ReloadDone:
        assert self.good is not None
        refused = self.current
        self.current = self.good
        self.target = self._rollback_target
        started, self.reload_started = self.reload_started, None
        return ReloadDone(
            False,
            refused,
            self.serving(self.good),
            self.target,
            None if started is None else now - started,
            cause,
        )

    def _halt(self, code: int, cause: str, summary: str) -> list[Action]:
        assert self.serving() == 0, "the master never halts while a worker serves"
        self.halted = Halt(code, cause, summary)
        return [self.halted]

    def _backoff(self, now: float) -> float:
        while self._crashes and now - self._crashes[0] > CRASH_WINDOW:
            self._crashes.popleft()
        streak = self.boot_failures + len(self._crashes)
        return 0.0 if streak <= 1 else min(0.1 * 2 ** (streak - 2), MAX_BACKOFF)
