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
  ``READY=1`` when it ends, whether it completed or was aborted (the old
  workers keep serving either way); ``STOPPING=1`` on the way out;
  ``STATUS=`` with the worker counts whenever they change; ``WATCHDOG=1``;
- the state file ``<pidfile>.state``, one line of ``key=value`` pairs that
  ``hypercorn ctl`` reads to tell when a reload finished and how;
- ``user``/``group``: every child forked by the master (each worker) drops
  to them right after ``fork``, before it does anything else; the master keeps
  its privileges to bind, signal and write the PID file. (The parent-death
  signal is set after the drop, which would clear it.)
- a USR2 upgrade (``upgrade.py``): the new master writes ``<pidfile>.2``;
  once its workers are READY it takes the PID file and tells the old master
  to stop; the old one then says ``MAINPID=<new>`` instead of ``STOPPING=1``
  and leaves the listeners' unix socket files in place; the new one removes
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

__all__ = ["MasterService", "read_state"]

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


def read_state(pid_path: str) -> dict[str, str]:
    """The master's state file as a mapping (empty when there is none)."""
    try:
        with open(state_path(pid_path), encoding="utf-8") as file:
            text = file.read()
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in text.split() if "=" in item)


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
        self.notifier = Notifier()
        self.upgrade = Upgrade(config, log)
        self.old_master = inherited_from()
        self._written: str | None = None
        self._user, self._group = config.user, config.group
        self._ready = False
        self._counts = (0, 0)
        self._reloads = 0
        self._reload_failures = 0
        self._state = "booting"
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
            if self._ready:
                self.notifier.send(STATUS=self._status())
            self._save_state()
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
        self.notifier.send(MAINPID=os.getpid(), STATUS=self._status())
        self.upgrade.take_over(self.old_master)

    def reloading(self) -> None:
        self._state = "reloading"
        self._save_state()
        self.notifier.send(RELOADING=1, MONOTONIC_USEC=monotonic_usec(), STATUS="Reloading")

    def reloaded(self, ok: bool) -> None:
        """A reload completed (``ok``) or was aborted; the workers serve either way."""
        if ok:
            self._reloads += 1
        else:
            self._reload_failures += 1
        self._state = "ready" if self._ready else "booting"
        self._save_state()
        self.notifier.send(READY=1, STATUS=self._status())

    def stopping(self) -> None:
        self._handing_over = self.upgrade.handing_over()
        self._state = "stopping"
        self._save_state()
        if self._handing_over and self.upgrade.child is not None:
            self.notifier.send(MAINPID=self.upgrade.child, STATUS="Handing over")
        else:
            self.notifier.send(STOPPING=1, STATUS="Stopping")

    def on_usr2(self, sockets: Sockets) -> None:
        self.upgrade.start(sockets, self.pid_path)

    def reaped(self, pid: int, code: int) -> None:
        self.upgrade.reaped(pid, code)

    @property
    def keeps_unix_sockets(self) -> bool:
        """True when the socket files are not ours to remove: a successor serves on
        them, or systemd made them (socket activation)."""
        return self._handing_over or socket_activated()

    def finish(self, code: int) -> None:
        """At exit: release the PID file (if still ours), tell a waiting launcher."""
        if self.pid_path is not None and self._written is not None:
            if pidfile.read_pid_file(self.pid_path) == os.getpid():
                with contextlib.suppress(OSError):
                    os.remove(state_path(self.pid_path))
            pidfile.remove_pid_file(self.pid_path)
            pidfile.remove_pid_file(f"{self.pid_path}.2")
        link = current_link()
        if link is not None:
            link.exited(code)
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
            f"pid={os.getpid()} state={self._state} workers={ready}/{target} "
            f"reloads={self._reloads} reload_failures={self._reload_failures} "
            f"time={time.time():.3f}\n"
        )
        temp = f"{state_path(self.pid_path)}.{os.getpid()}.tmp"
        try:
            with open(temp, "w", encoding="utf-8") as file:
                file.write(text)
            os.replace(temp, state_path(self.pid_path))
        except OSError as error:
            self.log.warning("Cannot write the state file: %s", error)
