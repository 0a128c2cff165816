"""Polling file watch and the atomic PID file, on real files."""

from __future__ import annotations

import json
import os
import sys
import threading
import types
from pathlib import Path

import pytest

from hypercorn.shared.files import check_for_updates, files_to_watch, write_pid_file


class TestFilesToWatch:
    def test_imported_modules_are_watched_with_their_mtime(self) -> None:
        files = files_to_watch()
        this = Path(__file__)
        assert files[this] == this.stat().st_mtime
        assert Path(json.__file__) in files
        assert all(isinstance(mtime, float) for mtime in files.values())

    def test_modules_without_a_readable_file_are_skipped(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        gone = types.ModuleType("gone_module")
        gone.__file__ = str(tmp_path / "gone_module.py")
        zipped = types.ModuleType("zipped_module")
        zipped.__file__ = str(tmp_path / "archive.zip" / "zipped_module.py")
        (tmp_path / "archive.zip").write_bytes(b"PK")
        monkeypatch.setitem(sys.modules, "gone_module", gone)
        monkeypatch.setitem(sys.modules, "zipped_module", zipped)
        files = files_to_watch()
        assert Path(gone.__file__) not in files
        assert Path(zipped.__file__) not in files
        assert not any(path.name == "sys" for path in files)  # built-in: no file

    def test_extra_files_and_directories(self, tmp_path: Path) -> None:
        config = tmp_path / "hypercorn.toml"
        config.write_text("bind = ['127.0.0.1:8000']\n")
        templates = tmp_path / "templates"
        (templates / "nested").mkdir(parents=True)
        (templates / "nested" / "page.html").write_text("<p>")
        (templates / ".git").mkdir()
        (templates / ".git" / "HEAD").write_text("ref")
        (templates / "__pycache__").mkdir()
        (templates / "__pycache__" / "x.pyc").write_bytes(b"")
        missing = tmp_path / "missing.txt"
        files = files_to_watch([config, str(templates), missing])
        assert config in files
        assert templates / "nested" / "page.html" in files
        assert templates / ".git" / "HEAD" not in files
        assert templates / "__pycache__" / "x.pyc" not in files
        assert missing not in files


class TestCheckForUpdates:
    def test_unchanged_files(self, tmp_path: Path) -> None:
        path = tmp_path / "a.py"
        path.write_text("x = 1\n")
        assert check_for_updates({path: path.stat().st_mtime}) is False
        assert check_for_updates({}) is False

    def test_newer_file(self, tmp_path: Path) -> None:
        path = tmp_path / "a.py"
        path.write_text("x = 1\n")
        files = {path: path.stat().st_mtime}
        os.utime(path, (files[path] + 5, files[path] + 5))
        assert check_for_updates(files) is True

    def test_vanished_file(self, tmp_path: Path) -> None:
        path = tmp_path / "a.py"
        path.write_text("x = 1\n")
        files = {path: path.stat().st_mtime}
        path.unlink()
        assert check_for_updates(files) is True

    def test_older_file_is_not_an_update(self, tmp_path: Path) -> None:
        path = tmp_path / "a.py"
        path.write_text("x = 1\n")
        recorded = path.stat().st_mtime
        os.utime(path, (recorded - 100, recorded - 100))
        assert check_for_updates({path: recorded}) is False

    def test_watching_the_result_of_files_to_watch(self, tmp_path: Path) -> None:
        path = tmp_path / "watched.txt"
        path.write_text("a")
        files = files_to_watch([path])
        assert check_for_updates(files) is False
        os.utime(path, (files[path] + 1, files[path] + 1))
        assert check_for_updates(files) is True


class TestWritePidFile:
    def test_writes_the_pid_with_a_newline(self, tmp_path: Path) -> None:
        path = tmp_path / "hypercorn.pid"
        write_pid_file(str(path))
        assert path.read_text() == f"{os.getpid()}\n"
        assert path.stat().st_mode & 0o777 == 0o644
        assert os.listdir(tmp_path) == ["hypercorn.pid"]  # no temporary file left

    def test_replaces_an_existing_file(self, tmp_path: Path) -> None:
        path = tmp_path / "hypercorn.pid"
        path.write_text("99999999 and a long stale line\n")
        write_pid_file(path)
        assert path.read_text() == f"{os.getpid()}\n"

    def test_missing_directory_raises(self, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError):
            write_pid_file(str(tmp_path / "nope" / "hypercorn.pid"))

    def test_unwritable_directory_raises_permission_error(self, tmp_path: Path) -> None:
        if os.geteuid() == 0:
            target = Path("/sys/hypercorn-test.pid")  # read-only even for root
        else:
            locked = tmp_path / "locked"
            locked.mkdir(mode=0o500)
            target = locked / "hypercorn.pid"
        with pytest.raises(PermissionError):
            write_pid_file(str(target))

    def test_readers_never_see_a_partial_file(self, tmp_path: Path) -> None:
        path = tmp_path / "hypercorn.pid"
        write_pid_file(path)
        expected = f"{os.getpid()}\n"
        seen: set[str] = set()
        stop = threading.Event()

        def read() -> None:
            while not stop.is_set():
                seen.add(path.read_text())

        reader = threading.Thread(target=read)
        reader.start()
        try:
            for _ in range(300):
                write_pid_file(path)
        finally:
            stop.set()
            reader.join(10)
        assert seen == {expected}
