"""The master process: owns the listeners, forks the workers, keeps them healthy.

Theory of operation
-------------------
The master is one synchronous loop; it runs no event loop and no application
code (unless ``preload_app``). Each turn it:

1. decides (``_manage``) which workers to start and which to retire, from one
   rule: there should be ``num_workers`` *fresh* workers (of the current
   generation, not marked for recycling); a *stale* worker (an older
   generation after a reload, or one marked for recycling: too many requests,
   too much memory) is retired only once a fresh one is READY in its place, so
   the number of serving workers never drops below the target during a
   rolling replacement. While stale workers remain, fresh ones are started one
   at a time; otherwise all missing ones at once (first boot, crashes).
2. waits in ``select`` on the signal pipe and every worker's message pipe,
   never longer than the nearest deadline;
3. dispatches each queued signal from the table ``_handlers`` (the signal
   handlers only enqueue, see ``signals.py``);
4. reaps exited children and classifies each exit: a RETIRING worker's exit is
   expected; a BOOTING worker's is a boot failure; a READY worker's is a crash;
5. checks deadlines: a RETIRING worker past its grace is killed, a BOOTING one
   past ``worker_boot_timeout`` is killed (a boot failure), a READY one silent
   for ``worker_timeout`` is killed ("worker timeout"), memory is sampled.

Failure policy. A crash is replaced at once; crashes in quick succession and
boot failures back off exponentially. Boot failures in a row (no READY in
between) reach ``max_worker_boot_failures``: the master stops with
``ExitCode.BOOT_FAILURE`` rather than crash-loop. On the very first boot, an
error no retry can fix (the app cannot be found, a bad setting) stops the
master at once with the worker's own exit code and message. During a reload,
the first new worker that fails to boot aborts the reload: the workers still
serving are adopted as current, the error is logged, nothing else changes.

QUIC. Every TCP and unix listener is shared by all workers, but a QUIC
connection must stay with the worker that holds its state, so each worker
*slot* (0 .. ``num_workers`` - 1) has its own ``SO_REUSEPORT`` UDP socket per
``quic_bind``, bound by the master before any fork and kept open by it: the
kernel keeps a flow on one socket of the group, and datagrams queue while the
slot's worker is replaced. A new worker takes the lowest slot no fresh worker
holds, and a stale worker whose slot a fresh one has taken is retired first.
A child closes the other slots' sockets.

Stopping. TERM sets every worker's Event and waits up to ``graceful_timeout``
(plus a second of slack for the worker's own abort) before SIGKILL; INT and
QUIT send QUIT (the worker exits at once) and SIGKILL after a second. The
master closes its copies of the listeners first, so once the workers close
theirs new connections are refused rather than queued for nobody. The PID
file and unix socket files are removed on the way out.

Metrics. With ``metrics_bind``, the master serves the workers' counters
(sent with their heartbeats) in the Prometheus text format from this same
loop: its sockets sit in the selector beside the pipes; see ``metrics.py``.
A worker's pipe is read to its end when the worker is reaped, so its last
counters reach the totals.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import os
import random
import selectors
import signal
import socket
import stat
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from hypercorn.shared.cli import ExitCode, fail
from hypercorn.shared.messages import MessageKind
from hypercorn.shared.sockets import SocketOptions, Sockets, parse_bind, reuse_port_twin
from hypercorn.supervisor.metrics import MetricsEndpoint, Totals
from hypercorn.supervisor.service import MasterService
from hypercorn.supervisor.signals import SignalQueue
from hypercorn.supervisor.watcher import Watcher
from hypercorn.supervisor.workers import WorkerHandle, WorkerState, set_title, spawn

if TYPE_CHECKING:
    import logging

    from hypercorn.config import Config

__all__ = ["Arbiter"]

RETIRE_SLACK = 1.0  # seconds past graceful_timeout before a retiring worker is killed
QUICK_STOP_GRACE = 1.0  # seconds a worker gets to obey QUIT
CRASH_WINDOW = 10.0  # crashes closer together than this back off
MAX_BACKOFF = 5.0
MAX_WAIT = 1.0  # the loop looks at its deadlines at least this often
_NO_RETRY_CODES = frozenset({ExitCode.USAGE, ExitCode.APP_LOAD})


class StopMode(enum.Enum):
    GRACEFUL = "graceful"
    QUICK = "quick"


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
        self.num_workers = max(1, config.workers)
        self.generation = 0
        self.workers: dict[int, WorkerHandle] = {}
        self._quic: dict[int, list[socket.socket]] = {0: list(sockets.quic_sockets)}
        self._reload_config = reload_config
        self._watch_files = list(watch_files)
        self._signals = SignalQueue()
        self._selector = selectors.DefaultSelector()
        self._stop_mode: StopMode | None = None
        self._exit_code: int = ExitCode.OK
        self._quiet = False
        self._halt_message: str | None = None
        self._ever_ready = False
        self._boot_failures = 0
        self._crashes: collections.deque[float] = collections.deque()
        self._spawn_after = 0.0
        self._next_memory_check = 0.0
        self._reload_started: float | None = None
        self._reload_due: float | None = None
        self._watcher: Watcher | None = None
        self._metrics: MetricsEndpoint | None = None
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
            signal.SIGTERM: lambda: self._stop(StopMode.GRACEFUL),
            signal.SIGINT: lambda: self._stop(StopMode.QUICK),
            signal.SIGQUIT: lambda: self._stop(StopMode.QUICK),
            signal.SIGTTIN: self._on_ttin,
            signal.SIGTTOU: self._on_ttou,
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
            BindError: ``metrics_bind`` cannot be bound.
        """
        if self.config.metrics_bind is not None:
            options = SocketOptions(self.config.backlog, self.config.umask)
            self._metrics = MetricsEndpoint.open(
                self.config.metrics_bind, options, self._selector, self.render_metrics
            )
        set_title(self.title)
        self._signals.install()
        self._selector.register(self._signals.fileno(), selectors.EVENT_READ, None)
        if self.config.use_reloader:
            self._watcher = Watcher(self.config, self._watch_files)
            if (fd := self._watcher.fileno()) is not None:
                self._selector.register(fd, selectors.EVENT_READ, None)
            self.log.info("Watching %s for changes", ", ".join(map(str, self._watcher.dirs)))
        try:
            self.service.start()
            self.log.info(
                "Master %d serving %s with %d worker(s)",
                os.getpid(),
                self.config.application_path,
                self.num_workers,
            )
            try:
                self._loop()
            except BaseException:
                self._stop(StopMode.QUICK)
                raise
            finally:
                self._shutdown()
        finally:
            self.service.finish(self._exit_code)
            if not self.service.keeps_unix_sockets:
                self._remove_unix_sockets()
            self._signals.restore()
            if self._metrics is not None:
                self._metrics.close(unlink=not self.service.keeps_unix_sockets)
            self._selector.close()
            self._signals.close()
            if self._watcher is not None:
                self._watcher.close()
        if self._halt_message is not None:
            fail(self._halt_message, self._exit_code)
        return self._exit_code

    def _loop(self) -> None:
        while self._stop_mode is None:
            now = time.monotonic()
            self._manage(now)
            events = self._selector.select(self._wait(now))
            now = time.monotonic()
            for key, _ in events:
                if isinstance(key.data, WorkerHandle):
                    self._read(key.data, now)
                elif self._metrics is not None and self._metrics.owns(key.data):
                    self._metrics.handle(key.data, now)
            if self._metrics is not None:
                self._metrics.expire(now)
            for signum in self._signals.pop_all():
                self._handlers[signum]()
            self._reap()
            if self._stop_mode is None:
                now = time.monotonic()
                self._check_health(now)
                self._check_files(now)
                ready = sum(w.state is WorkerState.READY for w in self._fresh())
                self.service.tick(now, ready, self.num_workers)

    def _check_files(self, now: float) -> None:
        if self._watcher is not None and self._watcher.changed(now):
            # Debounce: a burst of writes gives one reload, after it ends.
            self._reload_due = now + self.config.reload_delay
        if self._reload_due is not None and now >= self._reload_due:
            self._reload_due = None
            self.log.info("Reloading (files changed)")
            self.reload()

    def _wait(self, now: float) -> float:
        deadlines = [now + MAX_WAIT]
        if self._missing() > 0:
            deadlines.append(self._spawn_after)
        deadlines.extend(w.kill_at for w in self.workers.values() if w.kill_at is not None)
        if self._reload_due is not None:
            deadlines.append(self._reload_due)
        if self._watcher is not None and (poll := self._watcher.next_poll()) is not None:
            deadlines.append(poll)
        if (due := self.service.deadline(now)) is not None:
            deadlines.append(due)
        if self._metrics is not None and (due := self._metrics.deadline()) is not None:
            deadlines.append(due)
        return max(0.0, min(deadlines) - now)

    def _missing(self) -> int:
        return self.num_workers - len(self._fresh())

    # ------------------------------------------------------------- the policy

    def _alive(self) -> list[WorkerHandle]:
        return [w for w in self.workers.values() if w.state is not WorkerState.RETIRING]

    def _is_fresh(self, worker: WorkerHandle) -> bool:
        return worker.generation == self.generation and worker.recycle is None

    def _fresh(self) -> list[WorkerHandle]:
        return [w for w in self._alive() if self._is_fresh(w)]

    def _manage(self, now: float) -> None:
        alive = self._alive()
        fresh = [w for w in alive if self._is_fresh(w)]
        serving_fresh = sum(w.state is WorkerState.READY for w in fresh)
        taken = {w.slot for w in fresh if w.state is WorkerState.READY}
        # Booting ones first (they serve nobody yet), then those whose slot a
        # fresh worker has taken over, then the oldest.
        stale = sorted(
            (w for w in alive if not self._is_fresh(w)),
            key=lambda w: (w.state is WorkerState.READY, w.slot not in taken, w.started),
        )
        while stale and serving_fresh + len(stale) > self.num_workers:
            worker = stale.pop(0)
            self._retire(worker, now, worker.recycle or "reload")
        if len(fresh) > self.num_workers:
            extra = sorted(fresh, key=lambda w: (w.state is WorkerState.READY, -w.started))
            for worker in extra[: len(fresh) - self.num_workers]:
                self._retire(worker, now, "fewer workers")
            fresh = [w for w in fresh if w.state is not WorkerState.RETIRING]
        missing = self.num_workers - len(fresh)
        if stale and any(w.state is WorkerState.BOOTING for w in fresh):
            missing = 0  # rolling: one replacement at a time
        elif stale:
            missing = min(missing, 1)
        if missing > 0 and now >= self._spawn_after:
            for _ in range(missing):
                self._spawn()
        if self._reload_started is not None and not any(
            w.generation < self.generation for w in self.workers.values()
        ):
            self.log.info(
                "Reload complete in %.2f s: %d worker(s) serving",
                now - self._reload_started,
                len(self._alive()),
            )
            self._reload_started = None
            self.service.reloaded(ok=True)
        if len(self._quic) > self.num_workers:
            self._release_quic_slots()

    def _spawn(self) -> None:
        config = self.config
        limit = None
        if config.max_requests is not None:
            limit = config.max_requests + random.randint(0, config.max_requests_jitter)
        taken = {w.slot for w in self._fresh()}
        slot = next(n for n in range(len(taken) + 1) if n not in taken)
        own = self._quic_slot(slot)
        foreign = [
            sock
            for sockets in self._quic.values()
            for sock in sockets
            if all(sock is not mine for mine in own)
        ]
        worker = spawn(
            config,
            Sockets(self.sockets.secure_sockets, self.sockets.insecure_sockets, own),
            self.generation,
            self._master_fds(),
            f"hypercorn: worker [{config.application_path}]",
            min(1.0, config.worker_timeout / 4),
            limit,
            slot,
            foreign,
        )
        self.workers[worker.pid] = worker
        self._selector.register(worker.fd, selectors.EVENT_READ, worker)
        self.log.debug("Booting worker %d (slot %d)", worker.pid, slot)

    def _quic_slot(self, slot: int) -> list[socket.socket]:
        """The QUIC sockets of ``slot``, bound now if it is a new one."""
        if slot not in self._quic:
            self._quic[slot] = [reuse_port_twin(sock) for sock in self._quic[0]]
        return self._quic[slot]

    def _release_quic_slots(self) -> None:
        """Close the QUIC sockets of slots no worker holds or will hold again."""
        held = {w.slot for w in self.workers.values()}
        for slot in [n for n in self._quic if n >= max(1, self.num_workers) and n not in held]:
            for sock in self._quic.pop(slot):
                if all(sock is not first for first in self._quic[0]):
                    sock.close()

    def _master_fds(self) -> list[int]:
        fds = [*self._signals.fds, self._selector.fileno()]
        if self._watcher is not None:
            fds.extend(self._watcher.fds)
        fds.extend(w.fd for w in self.workers.values() if w.fd >= 0)
        if self._metrics is not None:
            fds.extend(self._metrics.fds)
        return fds

    def _retire(self, worker: WorkerHandle, now: float, reason: str) -> None:
        self.log.info("Retiring worker %d (%s)", worker.pid, reason)
        worker.retire(now, self.config.graceful_timeout + RETIRE_SLACK)

    def _read(self, worker: WorkerHandle, now: float) -> None:
        try:
            data = os.read(worker.fd, 4096)
        except BlockingIOError:
            return
        if not data:
            self._close_pipe(worker)
            return
        kinds = worker.receive(data, now)
        if MessageKind.READY in kinds:
            self._boot_failures = 0
            self._ever_ready = True
            self.log.info("Worker %d ready", worker.pid)
        if MessageKind.STOPPING in kinds:
            # It stopped accepting by itself; the others serve while its successor boots.
            self.log.info(
                "Worker %d served %d requests (limit %s); replacing it",
                worker.pid,
                worker.requests,
                worker.request_limit,
            )
            worker.retire(now, self.config.graceful_timeout + RETIRE_SLACK)

    def _read_rest(self, worker: WorkerHandle) -> None:
        """Read what an exited worker left in its pipe (its final counters)."""
        while worker.fd >= 0:
            try:
                data = os.read(worker.fd, 65536)
            except OSError:  # BlockingIOError: a descendant still holds the write end
                return
            if not data:
                return
            worker.receive(data, time.monotonic())

    def _close_pipe(self, worker: WorkerHandle) -> None:
        if worker.fd >= 0:
            self._selector.unregister(worker.fd)
            os.close(worker.fd)
            worker.fd = -1

    # ------------------------------------------------------------- exits

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is not None:
                self._read_rest(worker)
                self._close_pipe(worker)
                self.totals.worker_gone(worker.metrics)
                self._exited(worker, os.waitstatus_to_exitcode(status))
            else:
                self.service.reaped(pid, os.waitstatus_to_exitcode(status))

    def _exited(self, worker: WorkerHandle, code: int) -> None:
        how = f"exit code {code}" if code >= 0 else f"signal {signal.Signals(-code).name}"
        if worker.killed_for is not None:
            how += f", killed: {worker.killed_for}"
        if worker.state is WorkerState.RETIRING or self._stop_mode is not None:
            self.log.debug("Worker %d stopped (%s)", worker.pid, how)
            return
        self.totals.restarts += 1
        now = time.monotonic()
        if worker.state is WorkerState.BOOTING:
            self._boot_failed(worker, code, how, now)
            return
        self.log.error("Worker %d exited unexpectedly (%s)", worker.pid, how)
        self._crashes.append(now)
        self._spawn_after = now + self._backoff(now)

    def _boot_failed(self, worker: WorkerHandle, code: int, how: str, now: float) -> None:
        if not self._ever_ready and code in _NO_RETRY_CODES:
            # The worker said why on stderr; nothing a retry can change.
            self._halt(code, None)
            return
        self.log.error("Worker %d failed to boot (%s)", worker.pid, how)
        reloading = worker.generation == self.generation and any(
            w.generation < self.generation for w in self._alive()
        )
        if reloading:
            self._abort_reload()
            return
        self._boot_failures += 1
        limit = self.config.max_worker_boot_failures
        if self._boot_failures >= limit:
            self._halt(
                ExitCode.BOOT_FAILURE,
                f"{self._boot_failures} worker(s) in a row failed to boot (last: {how}); "
                "see the errors above",
            )
            return
        self._spawn_after = now + self._backoff(now)

    def _backoff(self, now: float) -> float:
        while self._crashes and now - self._crashes[0] > CRASH_WINDOW:
            self._crashes.popleft()
        streak = self._boot_failures + len(self._crashes)
        return 0.0 if streak <= 1 else min(0.1 * 2 ** (streak - 2), MAX_BACKOFF)

    def _abort_reload(self) -> None:
        kept = 0
        for worker in self._alive():
            if worker.generation < self.generation:
                worker.generation = self.generation
                kept += 1
        self._reload_started = None
        self.service.reloaded(ok=False)
        self.log.error(
            "Reload aborted: a new worker failed to boot; %d worker(s) keep serving", kept
        )

    def _halt(self, code: int, message: str | None) -> None:
        # Said last, after the stop, so it is the command's last line.
        self._quiet = message is None
        self._halt_message = message
        self._exit_code = code
        self._stop(StopMode.QUICK)

    # ------------------------------------------------------------- health

    def _check_health(self, now: float) -> None:
        config = self.config
        for worker in list(self.workers.values()):
            if worker.killed_for is not None:
                continue
            if worker.state is WorkerState.RETIRING:
                if worker.kill_at is not None and now >= worker.kill_at:
                    self.log.warning("Worker %d did not stop in time; killing it", worker.pid)
                    worker.kill("graceful timeout")
            elif worker.state is WorkerState.BOOTING:
                if now - worker.started > config.worker_boot_timeout:
                    self.log.error(
                        "Worker %d not ready after %.0f s; killing it",
                        worker.pid,
                        config.worker_boot_timeout,
                    )
                    worker.kill("boot timeout")
            elif now - worker.last_beat > config.worker_timeout:
                self.log.error("Worker timeout (pid %d): no heartbeat for %.1f s", worker.pid,
                               now - worker.last_beat)  # fmt: skip
                worker.kill("worker timeout")
        if config.max_worker_memory is not None and now >= self._next_memory_check:
            self._next_memory_check = now + config.memory_check_interval
            self._check_memory(config.max_worker_memory)

    def _check_memory(self, ceiling: int) -> None:
        import psutil

        for worker in self._fresh():
            if worker.state is not WorkerState.READY:
                continue
            try:
                used = psutil.Process(worker.pid).memory_full_info().uss
            except (psutil.Error, OSError):
                continue
            if used > ceiling:
                worker.recycle = f"memory {used} bytes over max_worker_memory {ceiling}"
                self.log.warning("Worker %d uses %d bytes; replacing it", worker.pid, used)

    # ------------------------------------------------------------- signals

    def _on_hup(self) -> None:
        self.log.info("Reloading (HUP)")
        self.reload()

    def reload(self) -> None:
        """Re-read the configuration, then replace every worker the rolling way."""
        self.service.reloading()
        if self._reload_config is not None:
            try:
                config = self._reload_config()
            except Exception as error:
                self.log.error("Reload aborted: cannot read the configuration: %s", error)
                self.service.reloaded(ok=False)
                return
            self._adopt(config)
        if self.config.preload_app:
            self.log.warning("preload_app is on: reloaded workers serve the preloaded code")
        self.generation += 1
        self.totals.reloads += 1
        self._reload_started = time.monotonic()

    def _adopt(self, config: Config) -> None:
        old = self.config
        if (config.bind, config.insecure_bind, config.quic_bind) != (
            old.bind,
            old.insecure_bind,
            old.quic_bind,
        ):
            self.log.warning("Listener changes take effect on restart; keeping the listeners")
        if config.workers == 0:
            self.log.warning("workers=0 takes effect on restart; keeping %d", self.num_workers)
        else:
            self.num_workers = config.workers
        config.application_path = config.application_path or old.application_path
        self.config = config

    def render_metrics(self) -> str:
        """The Prometheus text of the totals over every worker, live and gone."""
        live = [w.metrics for w in self.workers.values()]
        ready = sum(w.state is WorkerState.READY for w in self.workers.values())
        return self.totals.render(live, ready)

    def _on_ttin(self) -> None:
        self.num_workers += 1
        self.log.info("TTIN: %d worker(s)", self.num_workers)

    def _on_ttou(self) -> None:
        self.num_workers = max(1, self.num_workers - 1)
        self.log.info("TTOU: %d worker(s)", self.num_workers)

    def _on_usr1(self) -> None:
        self.config.log.reopen_files()
        for worker in self.workers.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGUSR1)

    def _on_usr2(self) -> None:
        self.service.on_usr2(self.sockets)

    # ------------------------------------------------------------- stopping

    def _stop(self, mode: StopMode) -> None:
        if self._stop_mode is not StopMode.QUICK:
            self._stop_mode = mode

    def _shutdown(self) -> None:
        mode = self._stop_mode or StopMode.QUICK
        self.service.stopping()
        # New connections are refused once the workers close their copies too.
        self.sockets.close()
        if self._metrics is not None:
            self._metrics.close(unlink=not self.service.keeps_unix_sockets)
        for sockets in self._quic.values():
            for sock in sockets:
                sock.close()
        if not self._quiet and self.workers:
            self.log.info("Stopping %d worker(s) (%s)", len(self.workers), mode.value)
        now = time.monotonic()
        grace = self.config.graceful_timeout + RETIRE_SLACK
        for worker in self.workers.values():
            worker.retire(now, grace)
        if mode is StopMode.QUICK:
            self._quick_stop(now)
        while self.workers:
            now = time.monotonic()
            pending = [w.kill_at for w in self.workers.values() if w.kill_at is not None]
            deadline = min(pending, default=now)
            if now >= deadline:
                for worker in self.workers.values():
                    worker.kill("stop timeout")
                self._reap_blocking()
                break
            self._selector.select(min(deadline - now, MAX_WAIT))
            for signum in self._signals.pop_all():
                if signum in (signal.SIGINT, signal.SIGQUIT):
                    self._quick_stop(time.monotonic())
            self._reap()
        for worker in list(self.workers.values()):
            self._close_pipe(worker)

    def _quick_stop(self, now: float) -> None:
        self._stop_mode = StopMode.QUICK
        for worker in self.workers.values():
            worker.kill_at = min(worker.kill_at or now, now + QUICK_STOP_GRACE)
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGQUIT)

    def _reap_blocking(self) -> None:
        for pid in list(self.workers):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            self._close_pipe(self.workers.pop(pid))

    def _remove_unix_sockets(self) -> None:
        for path in self._unix_paths:
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(os.stat(path).st_mode):
                    os.remove(path)
