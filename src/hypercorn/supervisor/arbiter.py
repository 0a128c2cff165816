"""The master process: owns the listeners, runs the templates, keeps the workers.

Theory of operation
-------------------
The master is one synchronous loop; it runs no event loop and no application
code (unless ``preload_app``). What to do is the planner's (``planner.py``,
where every rule is written down and table-tested); the master tells it what
happened and carries out the actions it returns. Each turn it:

1. carries out ``plan(now)``: start, retire or kill templates and workers,
   fork workers from their generation's template, report reloads, halt;
2. waits in ``select`` on the signal pipe, every worker's channel and every
   template's control socket, never longer than the planner's nearest
   deadline (nor ``MAX_WAIT``);
3. reads what arrived (READY, heartbeats, STOPPING at the request limit; a
   template's LOADED, FAILED, or a forked worker's pid) and tells the planner;
4. dispatches each queued signal from the table ``_handlers`` (the signal
   handlers only enqueue, see ``signals.py``);
5. reaps exited children (``waitpid``): a worker's or a template's exit goes
   to the planner, whose answer is carried out at once; then samples memory
   and watches files.

Processes. Every worker is the master's child, even though a template forks
it (``template.py``: the master is a child subreaper, so the worker is
adopted); the master reaps it and reads its exit code as ever, and a worker
dies with the master, not with its template. Where the system has no
subreaper (not Linux), there are no templates: the master forks each worker
itself, and each imports the application, so a replacement after a refused
reload runs the code on disk.

The processes themselves (handles, descriptors, pids, QUIC slot sockets,
reaping) are kept by ``children.py``.

QUIC sockets, one per worker slot, are the children's too (``children.py``).

Stopping. TERM asks every worker to drain and waits up to
``graceful_timeout`` (plus a second of slack for the worker's own abort)
before SIGKILL; INT and QUIT send QUIT (the worker exits at once) and SIGKILL
after a second. Templates are retired first. The master closes its copies of
the listeners first, so once the workers close theirs new connections are
refused rather than queued for nobody. The PID file and unix socket files
are removed on the way out.

Metrics. With ``metrics_bind``, the master serves the workers' counters
(sent with their heartbeats) in the Prometheus text format from this same
loop: its sockets sit in the selector beside the channels; see
``metrics.py`` and ``endpoint.py``. A worker's channel is read to its end when
the worker is reaped, so its last counters reach the totals.

Health and drain (``health.py``). With ``health_bind`` the master serves
``/livez`` and ``/readyz`` the same way, from a ``health.Snapshot`` of the
planner's counts, the drain and the last reload's outcome: a refused reload
leaves the master degraded until one completes. TERM and WINCH (``ctl
drain``) withdraw readiness first; TERM then stops ``drain_delay`` seconds
later, the master supervising as usual meanwhile. A USR2 successor adopts the
endpoints' sockets the old master hands on but answers on them only once its
workers serve, so a balancer never reads its "starting" beside the old
master's "ready"; the old master, handing over, stops without a drain.
"""

from __future__ import annotations

import contextlib
import enum
import os
import random
import selectors
import signal
import stat
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, assert_never

from hypercorn.shared.cli import ExitCode, fail
from hypercorn.shared.messages import MessageKind
from hypercorn.shared.sockets import SocketOptions, Sockets, parse_bind
from hypercorn.supervisor import health, metrics, template, workers
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
    TemplateState,
    WorkerState,
)
from hypercorn.supervisor.children import Children, Exited
from hypercorn.supervisor.endpoint import Endpoints
from hypercorn.supervisor.metrics import Totals
from hypercorn.supervisor.planner import Planner
from hypercorn.supervisor.service import MasterService
from hypercorn.supervisor.signals import SignalQueue
from hypercorn.supervisor.upgrade import HEALTH, METRICS
from hypercorn.supervisor.watcher import Watcher

if TYPE_CHECKING:
    import logging

    from hypercorn.config import Config

__all__ = ["Arbiter"]

RETIRE_SLACK = 1.0  # seconds past graceful_timeout before a retiring worker is killed
MAX_WAIT = 1.0  # the loop looks at its deadlines at least this often


class StopMode(enum.Enum):
    GRACEFUL = "graceful"
    QUICK = "quick"


def limits(config: Config, templates: bool) -> Limits:
    """The planner's view of ``config``."""
    return Limits(
        worker_timeout=config.worker_timeout,
        boot_timeout=config.worker_boot_timeout,
        stop_grace=config.graceful_timeout + RETIRE_SLACK,
        max_boot_failures=config.max_worker_boot_failures,
        boot_retry_window=config.boot_retry_window,
        templates=templates,
    )


class Arbiter:
    """The master loop; see the module docstring.

    Args:
        config: the settings (``workers`` >= 1).
        sockets: the bound listeners, owned by the master from now on.
        reload_config: builds a fresh ``Config`` on HUP (the config file and
            options read again); without it HUP restarts the workers only.
        watch_files: files ``--reload`` watches besides the application's
            (the config file).
    """

    def __init__(
        self,
        config: Config,
        sockets: Sockets,
        reload_config: Callable[[], Config] | None = None,
        watch_files: Sequence[str] = (),
    ) -> None:
        self.config = config
        self.sockets = sockets
        self.configs: dict[int, Config] = {0: config}  # by generation
        self.planner = Planner(limits(config, True), max(1, config.workers), time.monotonic())
        self._failure: template.Failure | None = None  # the latest failed import
        self._reload_config = reload_config
        self._watch_files = list(watch_files)
        self._signals = SignalQueue()
        self._selector = selectors.DefaultSelector()
        self.children = Children(sockets, self._selector, self._master_fds)
        self._stop_mode: StopMode | None = None
        self._exit_code: int = ExitCode.OK
        self._quiet = False
        self._halt_message: str | None = None
        self._halt_detail = ""
        self._next_memory_check = 0.0
        self._reload_due: float | None = None
        self._watcher: Watcher | None = None
        self._endpoints = Endpoints(self._selector)
        self._drain = health.Drain()
        self._degraded: str | None = None  # why the last reload was refused
        self.totals = Totals()
        self._unix_paths = [
            spec.path
            for spec in map(parse_bind, [*config.bind, *config.insecure_bind])
            if spec.kind == "unix"
        ]
        self.title = f"hypercorn: master [{config.application_path}]"
        self.service = MasterService(config, self.log)  # PID file, sd_notify, USR2
        self._handlers: dict[signal.Signals, Callable[[], None]] = {
            signal.SIGHUP: self._on_hup,
            signal.SIGTERM: self._on_term,
            signal.SIGWINCH: self._on_drain,
            signal.SIGINT: lambda: self._stop(StopMode.QUICK),
            signal.SIGQUIT: lambda: self._stop(StopMode.QUICK),
            signal.SIGTTIN: lambda: self._resize(+1),
            signal.SIGTTOU: lambda: self._resize(-1),
            signal.SIGUSR1: self._on_usr1,
            signal.SIGUSR2: self._on_usr2,
            signal.SIGCHLD: self._reap,
        }

    @property
    def log(self) -> logging.Logger:
        return self.config.log.error_logger

    # ---------------------------------------------------------------- the loop

    def run(self) -> int:
        """Serve until stopped; returns the exit code.

        Raises:
            BindError: ``metrics_bind`` or ``health_bind`` cannot be bound.
        """
        self._open_endpoints()
        if self.service.old_master is None:
            self._endpoints.serve()  # a USR2 successor answers once it takes over
        workers.set_title(self.title)
        if not workers.become_subreaper():
            self.planner.limits = limits(self.config, templates=False)
            self.log.warning(
                "No child subreaper on this system: each worker imports the application "
                "itself, and a worker replaced after a refused reload runs the code on disk"
            )
        self._signals.install()
        self._selector.register(self._signals.fileno(), selectors.EVENT_READ, None)
        if self.config.use_reloader:
            self._watcher = Watcher(self.config, self._watch_files)
            if (fd := self._watcher.fileno()) is not None:
                self._selector.register(fd, selectors.EVENT_READ, None)
            self.log.info("Watching %s for changes", ", ".join(map(str, self._watcher.dirs)))
        try:
            self.service.start()
            self.log.info("Master %d booting %s with %d worker(s)", os.getpid(),
                          self.config.application_path, self.planner.target)  # fmt: skip
            try:
                self._loop()
            except BaseException:
                self._stop(StopMode.QUICK)
                raise
            finally:
                self._shutdown()
                if self._halt_message is not None:  # the command's last line
                    sys.stderr.write(self._halt_detail)
                    fail(self._halt_message, self._exit_code)
        finally:
            self.service.finish(self._exit_code)
            if not self.service.keeps_unix_sockets:
                self._remove_unix_sockets()
            self._signals.restore()
            self._endpoints.close(unlink=not self.service.keeps_unix_sockets)
            self._selector.close()
            self._signals.close()
            if self._watcher is not None:
                self._watcher.close()
        return self._exit_code

    def _loop(self) -> None:
        while self._stop_mode is None:
            now = time.monotonic()
            self._carry_out(self.planner.plan(now), now)
            if self._stopping():
                break
            if len(self.children.quic) > self.planner.target:
                held = {w.slot for w in self.planner.workers.values()}
                self.children.release_quic_slots(held, self.planner.target)
            events = self._selector.select(self._wait(now))
            now = time.monotonic()
            for key, _ in events:
                if isinstance(key.data, workers.WorkerHandle):
                    self._read_worker(key.data, now)
                elif isinstance(key.data, template.TemplateHandle):
                    self._read_template(key.data, now)
                else:
                    self._endpoints.handle(key.data, now)
            self._endpoints.expire(now)
            for signum in self._signals.pop_all():
                self._handlers[signum]()
            self._reap()
            if self._stop_mode is None:
                now = time.monotonic()
                self._check_files(now)
                self._check_memory(now)
                ready = sum(w.state is WorkerState.READY for w in self.planner.fresh())
                self._check_drain(now, ready)
                self.service.tick(now, ready, self.planner.target)

    def _wait(self, now: float) -> float:
        deadlines = [now + MAX_WAIT]
        if (due := self.planner.next_deadline(now)) is not None:
            deadlines.append(due)
        if self._reload_due is not None:
            deadlines.append(self._reload_due)
        if self._watcher is not None and (poll := self._watcher.next_poll()) is not None:
            deadlines.append(poll)
        if (due := self.service.deadline(now)) is not None:
            deadlines.append(due)
        if (due := self._endpoints.deadline()) is not None:
            deadlines.append(due)
        if self._drain.stop_at is not None:
            deadlines.append(self._drain.stop_at)
        return max(0.0, min(deadlines) - now)

    def _check_files(self, now: float) -> None:
        if self._watcher is not None and self._watcher.changed(now):
            # Debounce: a burst of writes gives one reload, after it ends.
            self._reload_due = now + self.config.reload_delay
        if self._reload_due is not None and now >= self._reload_due:
            self._reload_due = None
            self.log.info("Reloading (files changed)")
            self.reload()

    def _master_fds(self) -> list[int]:
        fds = [*self._signals.fds, self._selector.fileno()]
        if self._watcher is not None:
            fds.extend(self._watcher.fds)
        fds.extend(self._endpoints.fds)
        return fds

    # ------------------------------------------------------------- actions

    def _carry_out(self, actions: list[Action], now: float) -> None:
        for action in actions:
            match action:
                case StartTemplate(generation):
                    self._start_template(generation, now)
                case RetireTemplate(generation):
                    self.log.debug("Retiring the template of generation %d", generation)
                    self.children.templates[generation].retire()
                case KillTemplate(generation, reason):
                    self.log.error("Template of generation %d killed: %s", generation, reason)
                    self.children.templates[generation].kill()
                case Spawn(key, generation, slot):
                    self._spawn(key, generation, slot, now)
                case Retire(key, reason):
                    handle = self.children.workers[key]
                    self.log.info("Retiring worker %s (%s)", handle.pid or "(forking)", reason)
                    handle.retire()
                case Kill(key, reason):
                    self._kill(key, reason, now)
                case Forget(key):
                    self.children.forget(key)
                case Retrying(delay, failures, cause):
                    what = self._failure.message if self._failure is not None else cause
                    self.log.error("Boot failed (attempt %d: %s); retrying in %.1f s",
                                   failures, what, delay)  # fmt: skip
                    self._failure = None
                case ReloadDone():
                    self._reload_done(action)
                case Serving(count):
                    self.log.info("Master %d serving %s with %d worker(s)", os.getpid(),
                                  self.config.application_path, count)  # fmt: skip
                case Halt():
                    self._halt(action)
                case _:
                    assert_never(action)

    def _start_template(self, generation: int, now: float) -> None:
        try:
            handle = self.children.start_template(self.configs[generation], generation)
        except OSError as error:
            self.log.error("Cannot start the template of generation %d: %s", generation, error)
            self._carry_out(self.planner.template_exited(generation, -1, now), now)
            return
        self.log.debug("Template %d loading generation %d", handle.pid, generation)

    def _spawn(self, key: int, generation: int, slot: int, now: float) -> None:
        config = self.configs[generation]
        limit = None
        if config.max_requests is not None:
            limit = config.max_requests + random.randint(0, config.max_requests_jitter)
        via_template = self.planner.limits.templates
        try:
            handle = self.children.spawn(config, key, generation, slot, limit, via_template)
        except OSError as error:
            self.log.error("Cannot fork a worker: %s", error)
            self._carry_out(self.planner.fork_failed(key, now), now)
            return
        if handle.pid is not None:
            self._booting(handle)

    def _booting(self, handle: workers.WorkerHandle) -> None:
        self.log.debug("Booting worker %d (slot %d, generation %d)", handle.pid, handle.slot,
                       handle.generation)  # fmt: skip

    def _kill(self, key: int, reason: str, now: float) -> None:
        handle = self.children.workers[key]
        if reason == "graceful timeout":
            self.log.warning("Worker %d did not stop in time; killing it", handle.pid)
        elif reason == "boot timeout":
            self.log.error("Worker %d not ready after %.0f s; killing it", handle.pid,
                           self.config.worker_boot_timeout)  # fmt: skip
        else:
            self.log.error("Worker timeout (pid %d): no heartbeat for %.1f s", handle.pid,
                           now - self.planner.workers[key].last_beat)  # fmt: skip
        handle.kill(reason)

    def _reload_done(self, done: ReloadDone) -> None:
        if done.ok:
            self.log.info("Reload complete in %.2f s: %d worker(s) serving",
                          done.seconds or 0.0, done.serving)  # fmt: skip
            self._degraded = None
            self._drain.end()
            self.service.reloaded(ok=True)
        else:
            failure, self._failure = self._failure, None
            if failure is not None and failure.detail:
                self.log.error("%s", failure.detail.rstrip())
            cause = failure.message if failure is not None else done.cause
            self.log.error("Reload refused (%s): %d worker(s) of the previous code keep serving",
                           cause, done.serving)  # fmt: skip
            self._degraded = f"a reload was refused ({cause})"
            self.service.reloaded(ok=False, counts=(done.serving, done.target))
        self._use_config(self.planner.good if self.planner.good is not None else 0)

    def _use_config(self, generation: int) -> None:
        """Make ``generation``'s settings the master's; forget those no process uses."""
        self.config = self.configs[generation]
        self.planner.limits = limits(self.config, self.planner.limits.templates)
        used = {generation, self.planner.current, *self.children.templates}
        used.update(w.generation for w in self.children.workers.values())
        for stale in set(self.configs) - used:
            del self.configs[stale]

    def _halt(self, halt: Halt) -> None:
        # Said last, after the stop, so that it is the command's last line.
        failure, self._failure = self._failure, None
        self._exit_code = halt.code
        self._quiet = True
        if failure is not None:
            self._halt_detail = failure.detail
            self._halt_message = failure.message
            if halt.summary:
                self._halt_message += f" ({halt.summary})"
        elif halt.summary:  # else a worker said why on stderr, and no retry can help
            self._halt_message = f"{halt.cause} ({halt.summary}); see the errors above"
        self._stop(StopMode.QUICK)

    # ------------------------------------------------------------- messages

    def _read_worker(self, handle: workers.WorkerHandle, now: float) -> None:
        messages, ended = handle.receive()
        key = handle.key
        for message in messages:
            if key not in self.planner.workers:
                break
            self.planner.beat(key, now)
            if message.kind is MessageKind.READY:
                if handle.pid is None:  # before its template's answer
                    self._claim(handle, message.value)
                    if key not in self.planner.workers:
                        break  # and it has exited already
                self.log.info("Worker %d ready", handle.pid)
                self.planner.ready(key, now)
            elif message.kind is MessageKind.STOPPING:
                # It stopped accepting by itself; the others serve while its successor boots.
                self.log.info("Worker %d served %d requests (limit %s); replacing it",
                              handle.pid, handle.requests, handle.request_limit)  # fmt: skip
                self._carry_out(self.planner.stopping(key, now), now)
        if ended:
            self.children.unregister(handle.channel)

    def _read_template(self, handle: template.TemplateHandle, now: float) -> None:
        replies, ended = handle.receive()
        for reply in replies:
            handles = self.children.workers
            if reply.kind is template.ReplyKind.LOADED:
                self.log.debug("Template %d loaded generation %d", handle.pid, handle.generation)
                self.planner.template_loaded(handle.generation)
            elif reply.kind is template.ReplyKind.FORKED and reply.key in handles:
                if handles[reply.key].pid is None:
                    self._claim(handles[reply.key], reply.pid)
            elif reply.kind is template.ReplyKind.FORK_FAILED and reply.key in handles:
                self.log.error("Template %d cannot fork a worker: %s", handle.pid, reply.error)
                self.children.forget(reply.key)
                self._carry_out(self.planner.fork_failed(reply.key, now), now)
        if ended:
            self.children.unregister(handle.control)

    def _claim(self, handle: workers.WorkerHandle, pid: int) -> None:
        """The worker of ``handle`` runs as ``pid`` (it may have exited already)."""
        exited = self.children.claim(handle, pid)
        self.planner.forked(handle.key)
        self._booting(handle)
        if exited is not None:
            self._exited(exited)

    # ------------------------------------------------------------- exits

    def _reap(self) -> None:
        for exited in self.children.reap():
            self._exited(exited)

    def _exited(self, exited: Exited) -> None:
        if exited.worker is not None:
            self._worker_exited(exited.worker, exited.code)
        elif exited.template is not None:
            self._template_exited(exited.template, exited.code)
        else:
            self.service.reaped(exited.pid, exited.code)

    @staticmethod
    def _how(code: int, killed_for: str | None) -> str:
        how = f"exit code {code}" if code >= 0 else f"signal {signal.Signals(-code).name}"
        return how if killed_for is None else f"{how}, killed: {killed_for}"

    def _worker_exited(self, handle: workers.WorkerHandle, code: int) -> None:
        self.totals.worker_gone(handle.metrics)
        worker = self.planner.workers.get(handle.key)
        how = self._how(code, handle.killed_for)
        if self._stop_mode is not None or worker is None:
            self.log.debug("Worker %d stopped (%s)", handle.pid, how)
            return
        if worker.state is WorkerState.RETIRING:
            self.log.debug("Worker %d stopped (%s)", handle.pid, how)
        else:
            self.totals.restarts += 1
            if worker.state is WorkerState.BOOTING:
                self.log.error("Worker %d failed to boot (%s)", handle.pid, how)
            else:
                self.log.error("Worker %d exited unexpectedly (%s)", handle.pid, how)
        now = time.monotonic()
        self._carry_out(self.planner.worker_exited(handle.key, code, now), now)

    def _template_exited(self, handle: template.TemplateHandle, code: int) -> None:
        failure, generation = handle.failure, handle.generation
        if self._stop_mode is not None or handle.retired:
            self.log.debug("Template %d (generation %d) stopped", handle.pid, generation)
            return
        if failure is not None:
            self._failure = failure
            code = failure.code
        elif handle.loaded:
            self.log.error("Template %d (generation %d) exited (%s); another one will load "
                           "the code on disk", handle.pid, generation,
                           self._how(code, None))  # fmt: skip
        else:
            self.log.error("Template %d (generation %d) failed (%s)", handle.pid, generation,
                           self._how(code, None))  # fmt: skip
        now = time.monotonic()
        actions = self.planner.template_exited(generation, code, now, failure is not None)
        if failure is not None and not any(
            isinstance(a, Retrying | ReloadDone | Halt) for a in actions
        ):
            self.log.error("Template %d (generation %d): %s", handle.pid, generation,
                           failure.message)  # fmt: skip
        self._carry_out(actions, now)
        self._failure = None

    # ------------------------------------------------------------- health

    def _check_memory(self, now: float) -> None:
        ceiling = self.config.max_worker_memory
        if ceiling is None or now < self._next_memory_check:
            return
        self._next_memory_check = now + self.config.memory_check_interval
        import psutil

        for worker in self.planner.fresh():
            pid = self.children.workers[worker.key].pid
            if worker.state is not WorkerState.READY or pid is None:
                continue
            try:
                used = psutil.Process(pid).memory_full_info().uss
            except (psutil.Error, OSError):
                continue
            if used > ceiling:
                self.log.warning("Worker %d uses %d bytes; replacing it", pid, used)
                self.planner.recycle(worker.key, f"memory {used} bytes over max_worker_memory "
                                     f"{ceiling}")  # fmt: skip

    # ------------------------------------------------------------- signals

    def _on_hup(self) -> None:
        self.log.info("Reloading (HUP)")
        self.reload()

    def reload(self) -> None:
        """Re-read the configuration, then replace every worker the rolling way
        from a new generation's template."""
        self.service.reloading()
        config = self.config
        if self._reload_config is not None:
            try:
                config = self._adopt(self._reload_config())
            except Exception as error:
                self.log.error("Reload refused: cannot read the configuration: %s", error)
                self._degraded = "a reload was refused (the configuration cannot be read)"
                serving = self.planner.serving()
                self.service.reloaded(ok=False, counts=(serving, self.planner.target))
                return
        if config.preload_app:
            self.log.warning("preload_app is on: reloaded workers serve the preloaded code")
        target = config.workers if config.workers >= 1 else None
        generation = self.planner.reload(time.monotonic(), target)
        self.configs[generation] = config
        self.config = config
        self.planner.limits = limits(config, self.planner.limits.templates)
        self.totals.reloads += 1

    def _adopt(self, config: Config) -> Config:
        old = self.config
        if (config.bind, config.insecure_bind, config.quic_bind) != (
            old.bind,
            old.insecure_bind,
            old.quic_bind,
        ):
            self.log.warning("Listener changes take effect on restart; keeping the listeners")
        if config.workers == 0:
            self.log.warning("workers=0 takes effect on restart; keeping %d",
                             self.planner.target)  # fmt: skip
        config.application_path = config.application_path or old.application_path
        return config

    def render_metrics(self) -> str:
        """The Prometheus text of the totals over every worker, live and gone."""
        live = [w.metrics for w in self.children.workers.values()]
        return self.totals.render(live, self.planner.serving())

    def _resize(self, delta: int) -> None:
        self.planner.resize(delta)
        self.log.info("%s: %d worker(s)", "TTIN" if delta > 0 else "TTOU", self.planner.target)

    def _on_usr1(self) -> None:
        self.config.log.reopen_files()
        for handle in self.children.workers.values():
            if handle.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(handle.pid, signal.SIGUSR1)

    def _on_usr2(self) -> None:
        self.service.on_usr2(self.sockets)

    # ------------------------------------------------------------- health, drain

    def _open_endpoints(self) -> None:
        config = self.config
        options = SocketOptions(config.backlog, config.umask)
        if config.metrics_bind is not None:
            routes = metrics.routes(self.render_metrics)
            self._endpoints.add(config.metrics_bind, routes, options, METRICS)
        if config.health_bind is not None:
            routes = health.routes(self.health_snapshot)
            self._endpoints.add(config.health_bind, routes, options, HEALTH)

    def health_snapshot(self) -> health.Snapshot:
        """The master's state as ``/livez`` and ``/readyz`` judge it."""
        serving = [w for w in self.planner.workers.values() if w.state is WorkerState.READY]
        # A template importing the application is a worker on its way: count it.
        importing = [t for t in self.planner.templates.values() if t.state is TemplateState.LOADING]
        return health.Snapshot(
            alive=len(self.children.workers) + len(importing),
            ready=len(serving),
            target=self.planner.target,
            draining=self._drain.draining,
            # Handing over, the host stays ready: the successor serves in our place.
            stopping=self._stop_mode is not None and not self.service.handing_over,
            degraded=self._degraded,
        )

    def _check_drain(self, now: float, ready: int) -> None:
        if not self._endpoints.serving and ready >= self.planner.target:
            # A USR2 successor, about to take over (``service.tick`` tells the old
            # master to stop): answer before the old master stops answering.
            self._endpoints.serve()
        if self._drain.stop_due(now):
            self._stop(StopMode.GRACEFUL)
        state, _ = health.readiness(self.health_snapshot())
        drained = self._drain.drained(now, self.config.drain_delay)
        self.service.health("drained" if drained and state is health.Readiness.DRAINING
                            else state.value)  # fmt: skip

    def _on_term(self) -> None:
        if self.service.upgrade.handing_over():
            self._stop(StopMode.GRACEFUL)  # a successor serves in our place: no drain
            return
        now = time.monotonic()
        stop_at = self._drain.terminate(now, self.config.drain_delay)
        if stop_at > now:
            self.log.info("Draining for %.1f s before stopping (TERM)", stop_at - now)

    def _on_drain(self) -> None:
        if self._drain.begin(time.monotonic()):
            self.log.info("Draining (WINCH): /readyz says 503; serving until a reload or stop")

    # ------------------------------------------------------------- stopping

    def _stopping(self) -> bool:
        return self._stop_mode is not None

    def _stop(self, mode: StopMode) -> None:
        if self._stop_mode is not StopMode.QUICK:
            self._stop_mode = mode

    def _shutdown(self) -> None:
        mode = self._stop_mode or StopMode.QUICK
        self.service.stopping()
        self.children.close_listeners()
        self._endpoints.close(unlink=not self.service.keeps_unix_sockets)
        if not self._quiet and self.children.workers:
            self.log.info("Stopping %d worker(s) (%s)", len(self.children.workers), mode.value)

        def quick() -> bool:
            signals = self._signals.pop_all()
            return signal.SIGINT in signals or signal.SIGQUIT in signals

        def exited(exited: Exited) -> None:
            if exited.worker is not None:
                self.totals.worker_gone(exited.worker.metrics)
            elif exited.template is None:
                self.service.reaped(exited.pid, exited.code)

        grace = self.config.graceful_timeout + RETIRE_SLACK
        self.children.stop(grace, mode is StopMode.QUICK, quick, exited)

    def _remove_unix_sockets(self) -> None:
        for path in self._unix_paths:
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(os.stat(path).st_mode):
                    os.remove(path)
