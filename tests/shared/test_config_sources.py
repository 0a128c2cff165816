"""Config sources: what a Python config file may hold besides settings, and TOML's strictness."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from hypercorn.config import Config, UnknownSettingError
from hypercorn.shared.cli import config_from_args

# A config module as people write them: Hypercorn's own test config starts with
# the ``__future__`` import, and helpers come from the standard library.
PYTHON_CONFIG = """
    from __future__ import annotations

    import json
    import os.path
    from os import environ
    from pathlib import Path as _P, PurePath
    from ssl import VerifyMode

    try:
        from os import sep as separator
    except ImportError:
        pass

    _port = int(environ.get("HYPERCORN_TEST_PORT", "5555"))
    BASE_DIR = os.path.dirname(__file__)
    bind = [f"127.0.0.1:{_port}"]
    workers = 2
    verify_mode = VerifyMode.CERT_NONE

    def _helper() -> int:
        return 1
"""


@pytest.fixture
def config_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    package = tmp_path / "confpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    path = package / "conf.py"
    path.write_text(textwrap.dedent(PYTHON_CONFIG))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield path
    for name in ("confpkg", "confpkg.conf"):
        sys.modules.pop(name, None)


def _check(config: Config) -> None:
    assert config.bind == ["127.0.0.1:5555"] and config.workers == 2


class TestPythonConfigsHoldCode:
    def test_from_pyfile(self, config_module: Path) -> None:
        _check(Config.from_pyfile(config_module))

    def test_from_object_by_name(self, config_module: Path) -> None:
        _check(Config.from_object("confpkg.conf"))

    def test_command_line_file_and_python_prefixes(self, config_module: Path) -> None:
        _check(config_from_args(["-c", f"file:{config_module}", "app:app"]))
        _check(config_from_args(["-c", "python:confpkg.conf", "app:app"]))

    def test_future_import_alone(self, tmp_path: Path) -> None:
        path = tmp_path / "conf.py"
        path.write_text("from __future__ import annotations\n\nbacklog = 7\n")
        assert Config.from_pyfile(path).backlog == 7

    def test_imported_value_that_is_a_setting_name_is_a_setting(self, tmp_path: Path) -> None:
        (tmp_path / "shared_values.py").write_text("backlog = 9\n")
        path = tmp_path / "conf.py"
        path.write_text(f"import sys\nsys.path.insert(0, {str(tmp_path)!r})\n"
                        "from shared_values import backlog\n")  # fmt: skip
        try:
            assert Config.from_pyfile(path).backlog == 9
        finally:
            sys.modules.pop("shared_values", None)
            sys.path.remove(str(tmp_path))


class TestUnknownNamesStayErrors:
    def test_misspelt_setting_in_a_file(self, tmp_path: Path) -> None:
        path = tmp_path / "conf.py"
        path.write_text("from __future__ import annotations\nworker = 4\n")
        with pytest.raises(UnknownSettingError, match=r"'worker' in .*did you mean 'workers'"):
            Config.from_pyfile(path)

    def test_assigned_value_is_not_passed_over_like_an_import(self, tmp_path: Path) -> None:
        # ``environ`` imported is a helper; the same name assigned is a misspelt setting.
        path = tmp_path / "conf.py"
        path.write_text("import os\nenviron = dict(os.environ)\n")
        with pytest.raises(UnknownSettingError, match="'environ'"):
            Config.from_pyfile(path)

    def test_import_inside_a_function_does_not_count(self, tmp_path: Path) -> None:
        path = tmp_path / "conf.py"
        path.write_text("def f():\n    from os import sep\n    return sep\nsep = f()\n")
        with pytest.raises(UnknownSettingError, match="'sep'"):
            Config.from_pyfile(path)

    def test_object_attributes(self) -> None:
        class Production:
            workers = 3
            _note = "private"
            keepalive = 5

        with pytest.raises(UnknownSettingError, match="did you mean 'keep_alive_timeout'"):
            Config.from_object(Production)

    def test_toml_stays_strict(self, tmp_path: Path) -> None:
        path = tmp_path / "conf.toml"
        path.write_text("annotations = 1\n")
        with pytest.raises(UnknownSettingError, match=r"'annotations' in"):
            Config.from_toml(path)
        path.write_text("_private = 1\n")
        with pytest.raises(UnknownSettingError, match="'_private'"):
            Config.from_toml(path)
