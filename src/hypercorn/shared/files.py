"""Polling file watch (the fallback of ``--reload``) and the atomic PID file."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable
from pathlib import Path

__all__ = ["check_for_updates", "files_to_watch", "write_pid_file"]

_SKIPPED_DIRS = frozenset({"__pycache__", "node_modules"})


def _mtime(path: Path) -> float | None:
    try:
        stat = path.stat()
    except (OSError, ValueError):
        return None
    return stat.st_mtime


def _files_under(directory: Path) -> Iterable[Path]:
    for root, dirs, names in os.walk(directory):
        # Pruned in place so os.walk does not descend into caches or VCS data.
        dirs[:] = [d for d in dirs if d not in _SKIPPED_DIRS and not d.startswith(".")]
        for name in names:
            yield Path(root, name)


def files_to_watch(extra_paths: Iterable[str | os.PathLike[str]] = ()) -> dict[Path, float]:
    """Map every file worth watching to its modification time.

    Args:
        extra_paths: more files (e.g. the config file) and directories (e.g. the
            reload directories, walked recursively, skipping hidden directories
            and ``__pycache__``) to watch besides the imported modules.

    Returns:
        ``{path: st_mtime}`` for the file of every imported module and every
        extra file; built-in and frozen modules without a file, files inside
        archives, and files that cannot be read are left out.
    """
    files: dict[Path, float] = {}
    candidates: list[Path] = []
    for module in list(sys.modules.values()):
        filename = getattr(module, "__file__", None)
        if isinstance(filename, str) and filename:
            candidates.append(Path(filename))
    for extra in extra_paths:
        path = Path(extra)
        if path.is_dir():
            candidates.extend(_files_under(path))
        else:
            candidates.append(path)
    for path in candidates:
        if path in files:
            continue
        mtime = _mtime(path)
        if mtime is not None and path.is_file():
            files[path] = mtime
    return files


def check_for_updates(files: dict[Path, float]) -> bool:
    """Whether any watched file changed since its time was recorded.

    Args:
        files: ``{path: st_mtime}`` as ``files_to_watch`` returns it.

    Returns:
        True if a file's modification time is newer than recorded, or the file
        is gone; False otherwise.
    """
    for path, recorded in files.items():
        mtime = _mtime(path)
        if mtime is None or mtime > recorded:
            return True
    return False


def write_pid_file(pid_path: str | os.PathLike[str]) -> None:
    """Write the current process id, newline-terminated, to ``pid_path`` atomically.

    The id goes to a temporary file in the same directory, which then replaces
    ``pid_path`` in one rename, so a reader never sees an empty or partial file.

    Args:
        pid_path: where the PID file goes.

    Raises:
        PermissionError: the directory is not writable.
        OSError: the file cannot be written for another reason (missing
            directory, full disk, ...).
    """
    import tempfile  # only with a PID file: kept off the start-up path

    target = Path(pid_path)
    directory = target.parent
    fd, temp_name = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(f"{os.getpid()}\n")
            file.flush()
            os.fsync(file.fileno())
        # mkstemp creates the file 0600; a PID file is meant to be read by others.
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
