"""The master as a service: PID file, readiness, state, binary upgrade.

Theory of operation
-------------------
The arbiter decides about workers; this object tells the outside world what
came of it, through every channel an operator's tools read:

- the PID file (``pidfile.py``): written before the first worker starts;
- readiness: the first time every worker of the target count is READY, the
  launcher of ``--daemon`` returns 0 and systemd gets ``READY=1`` (never
  before: a unit ordered after this one may send requests at once);
- reloads: ``RELOADING=1`` with ``MONOTONIC_USEC`` when one starts,
  ``READY=1`` when it ends, whether it completed or was refused (the old
  workers keep serving either way), sent on the next ``tick`` so that its
  ``STATUS=`` counts the workers that serve after it; ``STOPPING=1`` on the
  way out; ``STATUS=`` with the worker counts whenever they change;
  ``WATCHDOG=1``;
- the state file ``<pidfile>.state``, one line of ``key=value`` pairs that
  ``hypercorn ctl`` reads to tell when a reload finished and how (see
  ``State``), written by the master the PID file names, and by a new master
  as soon as it takes the PID file over;
- ``user``/``group``: every child forked by the master (each worker) drops
  to them right after ``fork``, before it does anything else; the master keeps
  its privileges to bind, signal and write the PID file. (The parent-death
  signal is set after the drop, which would clear it.)
- a USR2 upgrade (``upgrade.py``): the new master writes ``<pidfile>.2``;
  once its workers are READY it takes the PID file (and the state file) and
  tells the old master to stop; the old one then says ``MAINPID=<new>``
  (with ``WATCHDOG=1``: the new one has a whole watchdog period to send its
  own) instead of ``STOPPING=1`` and leaves the listeners' unix socket files
  in place; the new one keeps the watchdog going from the start and removes
  ``<pidfile>.2`` when the old one is gone.

The arbiter calls ``tick`` once per turn of its loop with the worker counts;
every transition above is derived from those counts and the explicit calls
(``reloading``, ``reloaded``, ``stopping``), so the arbiter holds no state
for it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import sys
import time
from typing import TYPE_CHECKING

from hypercorn.shared.cli import PROG, ExitCode
from hypercorn.supervisor import pidfile
from hypercorn.supervisor.daemon import current_link
from hypercorn.supervisor.notify import Notifier, monotonic_usec
from hypercorn.supervisor.upgrade import (
    Upgrade,
    in_upgrade_fork,
    inherited_from,
    socket_activated,
)

if TYPE_CHECKING:
    import logging

    from hypercorn.config import Config
    from hypercorn.shared.sockets import Sockets

__all__ = ["MasterService", "State", "read_state"]

HANDOVER_POLL = 0.1  # seconds between checks that the old master is gone
_DROP: tuple[int | None, int | None] = (None, None)
_DROP_REGISTERED = False


def drop_privileges(user: int | None, group: int | None) -> None:
    """Become ``user`` and ``group`` (default: the user's primary group), for good.

    In a forked worker; on failure the worker says why and exits with
    ``ExitCode.USAGE``, which stops a first boot at once.
    """
    try:
        if user is not None:
            entry = pwd.getpwuid(user)
            gid = entry.pw_gid if group is None else group
            if os.getuid() == 0:
                os.initgroups(entry.pw_name, gid)
            os.setgid(gid)
            os.setuid(user)
        elif group is not None:
            if os.getuid() == 0:
                os.setgroups([group])
            os.setgid(group)
    except (OSError, KeyError) as error:
        print(f"{PROG}: error: cannot run as user {user} group {group}: {error}",
              file=sys.stderr, flush=True)  # fmt: skip
        os._exit(ExitCode.USAGE)


def _after_fork_in_child() -> None:
    if not in_upgrade_fork() and _DROP != (None, None):
        drop_privileges(*_DROP)


def _drop_in_children(user: int | None, group: int | None) -> None:
    global _DROP, _DROP_REGISTERED
    _DROP = (user, group)
    if not _DROP_REGISTERED:
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _DROP_REGISTERED = True


def state_path(pid_path: str) -> str:
    return f"{pid_path}.state"


class State:
    """The state file's fields, as ``key=value`` pairs on one line.

    ``pid``: the master that wrote it; ``state``: booting, ready, reloading or
    stopping; ``health``: what ``/readyz`` says (``health.Readiness``, or
    ``drained`` once a drain has lasted ``drain_delay``); ``workers``:
    ready/target; ``reloads`` and ``reload_failures``: reloads completed and
    refused so far; ``reloads_started``: reloads begun
    (a HUP, a changed file); ``last_reload``: ``N:ok`` or ``N:refused``, how the
    last one to end went, ``N`` being ``reloads_started`` when it ended (a HUP
    during a reload folds both into one). A reload begun after ``reloads_started``
    read ``S`` has ended once ``reloads_started`` > ``S`` and ``last_reload``
    names it. ``upgrades_started`` and ``last_upgrade`` (``N:failed``: the new
    master of the Nth USR2 exited before it took over) do the same for USR2.
    """

    def __init__(self, fields: dict[str, str]) -> None:
        self.fields = fields

    def number(self, key: str) -> int:
        value = self.fields.get(key, "")
        return int(value) if value.isdigit() else 0

    @property
    def pid(self) -> int:
        return self.number("pid")

    @property
    def reloads_started(self) -> int:
        return self.number("reloads_started")

    @property
    def last_reload(self) -> tuple[int, str]:
        """(``reloads_started`` when it ended, "ok" or "refused"); (0, "") if none."""
        number, _, outcome = self.fields.get("last_reload", "").partition(":")
        return (int(number), outcome) if number.isdigit() else (0, "")


def read_state(pid_path: str) -> State:
    """The master's state file (no fields when there is none)."""
    try:
        with open(state_path(pid_path), encoding="utf-8") as file:
            text = file.read()
    except OSError:
        return State({})
    return State(dict(item.split("=", 1) for item in text.split() if "=" in item))


class MasterService:
    """What the master tells the service manager, the launcher and the PID file.

    Args:
        config: the settings (``pid_path``).
        log: the master's error logger.
    """

    def __init__(self, config: Config, log: logging.Logger) -> None:
        self.log = log
        path = config.pid_path
        self.pid_path = os.path.abspath(path) if path is not None else None
        self.old_master = inherited_from()
        self.notifier = Notifier(successor_of=self.old_master)
        self.upgrade = Upgrade(config, log)
        self._written: str | None = None
        self._user, self._group = config.user, config.group
        self._ready = False
        self._counts = (0, 0)
        self._reloads = 0
        self._reload_failures = 0
        self._reloads_started = 0
        self._last_reload = ""
        self._announce = False  # READY=1 after a reload, due on the next tick
        self._upgrades_started = 0
        self._last_upgrade = ""
        self._state = "booting"
        self._health = "starting"
        self._handing_over = False

    # ------------------------------------------------------------ life

    def start(self) -> None:
        """Before the first worker: claim the PID file (``<pidfile>.2`` when upgrading).

        Raises:
            AlreadyRunningError: a live hypercorn owns the PID file.
        """
        _drop_in_children(self._user, self._group)
        if self.pid_path is not None:
            if self.old_master is not None:
                self._write(f"{self.pid_path}.2")
            else:
                pidfile.check_pid_file(self.pid_path, warn=False)
                self._write(self.pid_path)
        self._save_state()

    def tick(self, now: float, ready: int, target: int) -> None:
        """Once per turn of the loop: ``ready`` fresh workers serve, ``target`` wanted."""
        if (ready, target) != self._counts:
            self._counts = (ready, target)
            if self._ready and not self._announce:
                self.notifier.send(STATUS=self._status())
            self._save_state()
        if self._announce:
            self._announce = False
            status = self._status()
            if self._last_reload.endswith(":refused"):
                status = f"Reload refused; {ready} worker(s) of the previous code serving"
            self.notifier.send(READY=1, STATUS=status)
        if not self._ready and ready >= target:
            self._ready = True
            self._became_ready()
        self.notifier.watchdog(now)
        if self.old_master is not None and self._ready and not self.upgrade.old_alive():
            self.log.info("Old master %d is gone; upgrade complete", self.old_master)
            self.old_master = None
            if self.pid_path is not None:
                pidfile.remove_pid_file(f"{self.pid_path}.2")
            self.notifier.send(MAINPID=os.getpid(), READY=1, STATUS=self._status())

    def health(self, word: str) -> None:
        """The readiness ``/readyz`` reports (``health.Readiness``, or ``drained``)."""
        if word != self._health:
            self._health = word
            self._save_state()

    def deadline(self, now: float) -> float | None:
        """When ``tick`` next needs to run (monotonic), if sooner than usual."""
        deadlines = [d for d in (self.notifier.watchdog(now),) if d is not None]
        if self.old_master is not None and self._ready:
            deadlines.append(now + HANDOVER_POLL)
        return min(deadlines, default=None)

    def _became_ready(self) -> None:
        self._state = "ready"
        self._save_state()
        link = current_link()
        if link is not None:
            link.ready()
        if self.old_master is None:
            self.notifier.send(READY=1, STATUS=self._status())
            return
        # Upgrade: this master takes over, then the old one drains and goes.
        if self.pid_path is not None:
            self._write(self.pid_path)
            self._save_state()  # ctl reads it from now on: it must name this master
        self.notifier.main_process()
        self.notifier.send(MAINPID=os.getpid(), STATUS=self._status())
        self.upgrade.take_over(self.old_master)

    def reloading(self) -> None:
        self._reloads_started += 1
        self._state = "reloading"
        self._save_state()
        self.notifier.send(RELOADING=1, MONOTONIC_USEC=monotonic_usec(), STATUS="Reloading")

    def reloaded(self, ok: bool, counts: tuple[int, int] | None = None) -> None:
        """A reload completed (``ok``) or was refused; the workers serve either way.

        Args:
            ok: whether it completed.
            counts: after a refusal, the workers of the previous code that
                serve, and the target (else the next ``tick`` says).
        """
        if ok:
            self._reloads += 1
        else:
            self._reload_failures += 1
        if counts is not None:
            self._counts = counts
        self._last_reload = f"{self._reloads_started}:{'ok' if ok else 'refused'}"
        self._state = "ready" if self._ready else "booting"
        self._save_state()
        self._announce = True

    def stopping(self) -> None:
        self._handing_over = self.upgrade.handing_over()
        self._state = "stopping"
        self._save_state()
        if self._handing_over and self.upgrade.child is not None:
            self.notifier.hand_over(self.upgrade.child, STATUS="Handing over")
        else:
            self.notifier.send(STOPPING=1, STATUS="Stopping")

    def on_usr2(self, sockets: Sockets) -> None:
        if self.upgrade.start(sockets):
            self._upgrades_started += 1
            self._save_state()

    def reaped(self, pid: int, code: int) -> None:
        if self.upgrade.reaped(pid, code):  # the new master exited without taking over
            self._last_upgrade = f"{self._upgrades_started}:failed"
            self._save_state()

    @property
    def handing_over(self) -> bool:
        """Whether this master stops because a successor serves in its place."""
        return self._handing_over

    @property
    def keeps_unix_sockets(self) -> bool:
        """True when the socket files are not ours to remove: a successor serves on
        them, or systemd made them (socket activation)."""
        return self._handing_over or socket_activated()

    def finish(self, code: int) -> None:
        """At exit with ``code``: release the PID file (if still ours).

        A launcher still waiting (``--daemon`` before READY) is told ``code`` by
        the command itself once the master has said its last words (the
        reason it halts), so that they are the launcher's last line too.
        """
        if self.pid_path is not None and self._written is not None:
            if pidfile.read_pid_file(self.pid_path) == os.getpid():
                with contextlib.suppress(OSError):
                    os.remove(state_path(self.pid_path))
            pidfile.remove_pid_file(self.pid_path)
            pidfile.remove_pid_file(f"{self.pid_path}.2")
        self.notifier.close()

    # ------------------------------------------------------------ helpers

    def _write(self, path: str) -> None:
        pidfile.write_pid_file(path)
        self._written = path

    def _status(self) -> str:
        ready, target = self._counts
        if self._state == "reloading":  # the old workers serve meanwhile
            return f"Reloading: {ready} of {target} new worker(s) ready"
        return f"{ready} of {target} worker(s) ready"

    def _save_state(self) -> None:
        if self.pid_path is None or pidfile.read_pid_file(self.pid_path) != os.getpid():
            return  # not (or no longer) the master the PID file names
        ready, target = self._counts
        text = (
            f"pid={os.getpid()} state={self._state} health={self._health} workers={ready}/{target} "
            f"reloads={self._reloads} reload_failures={self._reload_failures} "
            f"reloads_started={self._reloads_started} last_reload={self._last_reload or '-'} "
            f"upgrades_started={self._upgrades_started} "
            f"last_upgrade={self._last_upgrade or '-'} time={time.time():.3f}\n"
        )
        temp = f"{state_path(self.pid_path)}.{os.getpid()}.tmp"
        try:
            with open(temp, "w", encoding="utf-8") as file:
                file.write(text)
            os.replace(temp, state_path(self.pid_path))
        except OSError as error:
            self.log.warning("Cannot write the state file: %s", error)
