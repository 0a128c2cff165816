"""What the planner decides from, and what it decides: its view of the workers
and templates, the settings its rules read, and the actions the master
carries out (``planner.py`` has the rules, ``arbiter.py`` the carrying out).

Actions are small frozen records; the arbiter matches on them with
``assert_never``, so a new action cannot be left unhandled.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "Action",
    "Forget",
    "Halt",
    "Kill",
    "KillTemplate",
    "Limits",
    "ReloadDone",
    "Retire",
    "RetireTemplate",
    "Retrying",
    "Serving",
    "Spawn",
    "StartTemplate",
    "Template",
    "TemplateState",
    "Worker",
    "WorkerState",
]


class WorkerState(enum.Enum):
    BOOTING = "booting"
    READY = "ready"
    RETIRING = "retiring"


class TemplateState(enum.Enum):
    LOADING = "loading"  # importing the application
    LOADED = "loaded"  # ready to fork workers


@dataclass(eq=False)
class Worker:
    """One worker as the planner sees it (the arbiter's handle has the process)."""

    key: int
    generation: int
    slot: int
    started: float
    state: WorkerState = WorkerState.BOOTING
    forked: bool = False  # its template answered with a pid (always, without templates)
    last_beat: float = 0.0
    recycle: str | None = None  # why it is to be replaced once a successor is READY
    stop_by: float | None = None  # RETIRING: killed if still there then
    killed: str | None = None  # why a kill was ordered


@dataclass(eq=False)
class Template:
    generation: int
    started: float
    state: TemplateState = TemplateState.LOADING
    retiring: bool = False
    killed: str | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    """The settings the rules read (seconds unless said otherwise).

    Attributes:
        worker_timeout: READY workers silent this long are killed.
        boot_timeout: workers (and template loads) not READY this long are killed.
        stop_grace: a retiring worker still there after this is killed.
        max_boot_failures: once serving, boot failures in a row with no worker
            READY after which the master halts.
        boot_retry_window: how long the first boot keeps retrying.
        templates: whether workers fork from templates (False: the master
            forks them and each imports the application itself).
    """

    worker_timeout: float = 30.0
    boot_timeout: float = 90.0
    stop_grace: float = 4.0
    max_boot_failures: int = 5
    boot_retry_window: float = 30.0
    templates: bool = True


# ----------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class StartTemplate:
    generation: int


@dataclass(frozen=True, slots=True)
class RetireTemplate:
    generation: int


@dataclass(frozen=True, slots=True)
class KillTemplate:
    generation: int
    reason: str


@dataclass(frozen=True, slots=True)
class Spawn:
    key: int
    generation: int
    slot: int


@dataclass(frozen=True, slots=True)
class Retire:
    key: int
    reason: str


@dataclass(frozen=True, slots=True)
class Kill:
    key: int
    reason: str


@dataclass(frozen=True, slots=True)
class Forget:
    """A fork request its template died with: the worker never existed."""

    key: int


@dataclass(frozen=True, slots=True)
class Retrying:
    """A boot failure (the ``failures``-th in a row) retried after ``delay`` seconds."""

    delay: float
    failures: int
    cause: str


@dataclass(frozen=True, slots=True)
class ReloadDone:
    """A reload of ``generation`` ended: ``ok`` (``serving`` workers READY), or
    refused because of ``cause`` (``serving`` workers of the previous code)."""

    ok: bool
    generation: int
    serving: int
    target: int
    seconds: float | None
    cause: str = ""


@dataclass(frozen=True, slots=True)
class Serving:
    """``count`` workers are READY for the first time."""

    count: int


@dataclass(frozen=True, slots=True)
class Halt:
    """Stop the master with ``code`` (no worker serves): ``cause`` is the last
    failure, ``summary`` how the retries ended (empty: none was tried)."""

    code: int
    cause: str
    summary: str


Action = (
    StartTemplate
    | RetireTemplate
    | KillTemplate
    | Spawn
    | Retire
    | Kill
    | Forget
    | Retrying
    | ReloadDone
    | Serving
    | Halt
)
