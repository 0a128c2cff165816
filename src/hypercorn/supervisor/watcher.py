"""``--reload``: notice that the application's files changed.

Theory of operation
-------------------
One watcher lives in the master. With watchfiles (inotify on Linux) a thread
runs ``watchfiles.watch`` and writes one byte to a pipe per batch of changes;
the pipe sits in the master's selector, so the master stays a single
synchronous loop and the thread touches none of its state. Without
watchfiles, ``poll`` compares modification times (``files_to_watch`` /
``check_for_updates``) once a second from the loop itself.

The watcher only says "something changed". Debouncing is the master's: each
change pushes the reload back to ``reload_delay`` seconds after it, so a burst
of writes (an editor's save, a ``git checkout``) gives one reload.

What is watched: the ``reload_dirs``, or else the directory of the
application's module (its package's directory for a dotted name), files
matching ``reload_include`` and not ``reload_exclude``, skipping caches and
version-control directories; and the config file (``-c``), which a reload
reads again, wherever it is. A file is watched through its directory, since
editors save by replacing the file; only that file counts there.
"""

from __future__ import annotations

import contextlib
import fnmatch
import importlib.util
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hypercorn.shared.files import check_for_updates, files_to_watch

if TYPE_CHECKING:
    from hypercorn.config import Config

__all__ = ["Watcher", "watched_dirs"]

POLL_INTERVAL = 1.0
_IGNORED_DIRS = frozenset(
    {"__pycache__", ".git", ".hg", ".svn", ".tox", ".venv", "node_modules", ".mypy_cache",
     ".pytest_cache", ".hypothesis"}
)  # fmt: skip


def watched_dirs(config: Config) -> list[Path]:
    """The directories ``--reload`` watches for ``config``."""
    if config.reload_dirs:
        return [Path(d).resolve() for d in config.reload_dirs]
    path = (config.application_path or "").split("(")[0]
    parts = path.split(":")
    module = parts[1] if len(parts) == 3 else parts[0]
    if "/" in module or module.endswith(".py"):
        return [Path(module).resolve().parent]
    top = module.split(".")[0]
    with contextlib.suppress(ImportError, ValueError):
        spec = importlib.util.find_spec(top)  # a top-level name: imports nothing
        if spec is not None and spec.origin and os.path.isfile(spec.origin):
            origin = Path(spec.origin).resolve()
            return [origin.parent.parent if spec.submodule_search_locations else origin.parent]
    return [Path.cwd()]


class Watcher:
    """Reports changes to the watched files; see the module docstring.

    Args:
        config: the settings (``reload_dirs``, ``reload_include``, ...).
        files: single files watched whatever the patterns say (the config file).
    """

    def __init__(self, config: Config, files: Iterable[str | os.PathLike[str]] = ()) -> None:
        self.dirs = watched_dirs(config)
        self.files = {Path(f).resolve() for f in files}
        self._file_dirs = {
            f.parent for f in self.files if not any(f.is_relative_to(d) for d in self.dirs)
        }
        self._include = list(config.reload_include)
        self._exclude = list(config.reload_exclude)
        self._read_fd = self._write_fd = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._files: dict[Path, float] = {}
        self._next_poll = 0.0
        try:
            import watchfiles
        except ImportError:
            self._files = self._snapshot()
            return
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        self._thread = threading.Thread(
            target=self._run, args=(watchfiles,), name="hypercorn-reload", daemon=True
        )
        self._thread.start()

    def wanted(self, path: str | Path) -> bool:
        """Whether a change to ``path`` should reload."""
        path = Path(path)
        if path in self.files:
            return True
        if path.parent in self._file_dirs and not any(path.is_relative_to(d) for d in self.dirs):
            return False  # beside the config file, outside the application's tree
        if any(part in _IGNORED_DIRS for part in path.parts[:-1]):
            return False
        name = path.name
        if any(fnmatch.fnmatch(name, glob) or fnmatch.fnmatch(str(path), glob)
               for glob in self._exclude):  # fmt: skip
            return False
        return any(fnmatch.fnmatch(name, glob) for glob in self._include)

    def _run(self, watchfiles: Any) -> None:
        def accept(change: object, path: str) -> bool:
            return self.wanted(path)

        for _ in watchfiles.watch(
            *self.dirs,
            *sorted(self._file_dirs),
            watch_filter=accept,
            step=50,
            stop_event=self._stop,
            raise_interrupt=False,
        ):
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(self._write_fd, b"!")  # a full pipe already says "changed"

    def fileno(self) -> int | None:
        """The descriptor readable on a change, or None when polling."""
        return self._read_fd if self._read_fd >= 0 else None

    @property
    def fds(self) -> list[int]:
        return [fd for fd in (self._read_fd, self._write_fd) if fd >= 0]

    def changed(self, now: float) -> bool:
        """Whether something changed since the last call (drains the pipe, or polls)."""
        if self._read_fd >= 0:
            seen = False
            with contextlib.suppress(BlockingIOError):
                while os.read(self._read_fd, 4096):
                    seen = True
            return seen
        if now < self._next_poll:
            return False
        self._next_poll = now + POLL_INTERVAL
        if check_for_updates(self._files):
            self._files = self._snapshot()
            return True
        return False

    def next_poll(self) -> float | None:
        return None if self._read_fd >= 0 else self._next_poll

    def _snapshot(self) -> dict[Path, float]:
        files = files_to_watch([*self.dirs, *self.files])
        return {path: mtime for path, mtime in files.items() if self.wanted(path)}

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
