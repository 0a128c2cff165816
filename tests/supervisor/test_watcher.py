"""What ``--reload`` watches, and the polling fallback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hypercorn.config import Config
from hypercorn.supervisor.watcher import Watcher, watched_dirs


def _config(**settings: object) -> Config:
    return Config.from_mapping(settings)


class TestWatchedDirs:
    def test_reload_dirs_win(self, tmp_path: Path) -> None:
        config = _config(reload_dirs=[str(tmp_path)], application_path="x:app")
        assert watched_dirs(config) == [tmp_path.resolve()]

    def test_a_file_path_watches_its_directory(self, tmp_path: Path) -> None:
        config = _config(application_path=f"{tmp_path}/sub/app.py:app")
        assert watched_dirs(config) == [(tmp_path / "sub").resolve()]

    def test_a_package_watches_the_directory_holding_it(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        (tmp_path / "pkg").mkdir()
        (tmp_path / "pkg" / "__init__.py").write_text("")
        monkeypatch.syspath_prepend(str(tmp_path))
        config = _config(application_path="wsgi:pkg.web:app")
        assert watched_dirs(config) == [tmp_path.resolve()]

    def test_unknown_module_watches_the_working_directory(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(tmp_path)
        config = _config(application_path="no_such_module_anywhere:app")
        assert watched_dirs(config) == [tmp_path]


class TestFilter:
    @pytest.mark.parametrize(
        ("path", "wanted"),
        [
            ("/srv/app/views.py", True),
            ("/srv/app/notes.txt", False),
            ("/srv/app/__pycache__/views.py", False),
            ("/srv/app/.git/hooks.py", False),
            ("/srv/app/settings.toml", True),
            ("/srv/app/migrations/0001.py", False),
        ],
    )
    def test_include_and_exclude(self, tmp_path: Path, path: str, wanted: bool) -> None:
        config = _config(
            reload_dirs=[str(tmp_path)],
            reload_include=["*.py", "*.toml"],
            reload_exclude=["*/migrations/*"],
        )
        watcher = Watcher(config)
        try:
            assert watcher.wanted(path) is wanted
        finally:
            watcher.close()


def test_polling_fallback_sees_a_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_watchfiles(name: str, *args: object, **kwargs: object) -> object:
        if name == "watchfiles":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    (tmp_path / "app.py").write_text("x = 1\n")
    monkeypatch.setattr(builtins, "__import__", no_watchfiles)
    watcher = Watcher(_config(reload_dirs=[str(tmp_path)]))
    monkeypatch.undo()
    try:
        assert watcher.fileno() is None
        assert not watcher.changed(now=0.0)
        stat = (tmp_path / "app.py").stat()
        os.utime(tmp_path / "app.py", (stat.st_atime, stat.st_mtime + 5))
        assert not watcher.changed(now=0.5)  # not yet time to poll
        assert watcher.changed(now=10.0)
        assert not watcher.changed(now=20.0)
    finally:
        watcher.close()


def test_a_single_file_is_watched_through_its_directory(tmp_path: Path) -> None:
    app, etc = tmp_path / "app", tmp_path / "etc"
    app.mkdir()
    etc.mkdir()
    watcher = Watcher(_config(reload_dirs=[str(app)]), [etc / "hypercorn.toml"])
    try:
        assert watcher.wanted(etc.resolve() / "hypercorn.toml")
        assert not watcher.wanted(etc.resolve() / "other.py")  # beside it: not ours
        assert watcher.wanted(app.resolve() / "views.py")
        assert not watcher.wanted(app.resolve() / "hypercorn.toml")
    finally:
        watcher.close()
