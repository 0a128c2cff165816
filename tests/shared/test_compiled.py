"""The compiled serving core and its pure-Python fallback (``hypercorn.shared.compiled``)."""

from __future__ import annotations

import hashlib
import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import hypercorn
from hypercorn.shared import compiled

SRC = Path(hypercorn.__file__).resolve().parent.parent
EXTENSION_SUFFIXES = tuple(importlib.machinery.EXTENSION_SUFFIXES)


def _loaded_from() -> dict[str, str]:
    """Import every compiled module; where each one came from."""
    files = {}
    for module in compiled.COMPILED:
        __import__(module)
        files[module] = sys.modules[module].__file__ or ""
    return files


def _probe(root: Path, **environ: str) -> dict[str, object]:
    """In a fresh interpreter importing ``hypercorn`` from ``root``: the core chosen,
    why, and the file each compiled module was loaded from."""
    code = (
        "import json, sys, hypercorn\n"
        "from hypercorn.shared import compiled\n"
        "files = {}\n"
        "for m in compiled.COMPILED:\n"
        "    __import__(m)\n"
        "    files[m] = sys.modules[m].__file__\n"
        "print(json.dumps({'core': compiled.CORE, 'reason': compiled.REASON,\n"
        "                  'describe': compiled.describe(), 'files': files}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != compiled.ENV}
    env.update(environ, PYTHONPATH=str(root))
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


class TestTheCoreUnderTest:
    def test_the_modules_loaded_are_the_core_reported(self) -> None:
        files = _loaded_from()
        if compiled.CORE == "compiled":
            assert all(path.endswith(EXTENSION_SUFFIXES) for path in files.values()), files
        else:
            assert all(path.endswith(".py") for path in files.values()), files

    def test_the_core_is_the_one_asked_for(self, request: pytest.FixtureRequest) -> None:
        wanted = request.config.getoption("--core")
        if wanted is None:
            pytest.skip("no --core given")
        assert wanted == compiled.CORE, compiled.describe()


class TestRunTimeChoice:
    def test_no_extensions_loads_every_module_from_its_source(self) -> None:
        probe = _probe(SRC, HYPERCORN_NO_EXTENSIONS="1")
        assert probe["core"] == "pure"
        assert probe["describe"] == "pure Python (HYPERCORN_NO_EXTENSIONS=1)"
        files = probe["files"]
        assert isinstance(files, dict)
        assert all(str(path).endswith(".py") for path in files.values())

    def test_zero_or_empty_leaves_the_choice_to_the_build(self) -> None:
        built = "pure" if compiled.check(environ={}) else "compiled"
        for value in ("0", ""):
            probe = _probe(SRC, HYPERCORN_NO_EXTENSIONS=value)
            assert probe["core"] == built, probe

    def test_version_names_the_core(self) -> None:
        built = _probe(SRC)["describe"]
        for environ, expected in (({}, built), ({compiled.ENV: "1"}, "pure Python")):
            env = {k: v for k, v in os.environ.items() if k != compiled.ENV} | environ
            result = subprocess.run(
                [sys.executable, "-m", "hypercorn", "--version"],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert result.returncode == 0, result.stderr
            assert result.stdout.startswith(f"hypercorn {hypercorn.__version__}, {expected}")


@pytest.fixture
def built_copy(tmp_path: Path) -> Path:
    """A copy of the package as built in place, compiled modules included."""
    if compiled.check(environ={}):
        pytest.skip(f"no compiled core here: {compiled.check(environ={})}")
    root = tmp_path / "site"
    shutil.copytree(
        SRC / "hypercorn", root / "hypercorn", ignore=shutil.ignore_patterns("__pycache__")
    )
    for shared_library in SRC.glob("hypercorn__mypyc*"):
        shutil.copy2(shared_library, root)
    return root


class TestStaleBuild:
    def test_a_copy_of_the_build_runs_compiled(self, built_copy: Path) -> None:
        probe = _probe(built_copy)
        assert probe["core"] == "compiled", probe
        files = probe["files"]
        assert isinstance(files, dict)
        assert all(str(path).startswith(str(built_copy)) for path in files.values())

    def test_an_edited_source_runs_as_python_and_says_so(self, built_copy: Path) -> None:
        source = built_copy / "hypercorn" / "worker" / "protocol" / "http11.py"
        source.write_text(source.read_text() + "\nEDITED = True\n")
        probe = _probe(built_copy)
        assert probe["core"] == "pure"
        assert probe["reason"] == (
            "compiled core is stale (http11.py edited since); run `make compile`"
        )
        files = probe["files"]
        assert isinstance(files, dict)
        assert all(str(path).endswith(".py") for path in files.values())

    def test_a_missing_extension_runs_everything_as_python(self, built_copy: Path) -> None:
        for extension in (built_copy / "hypercorn" / "worker").glob("router.*"):
            if extension.suffix != ".py":
                extension.unlink()
        probe = _probe(built_copy)
        assert probe["core"] == "pure"
        assert str(probe["reason"]).startswith("no compiled core for ")


def _fake_build(root: Path, extensions: bool) -> None:
    """A package tree with the compiled modules' sources (and, if asked, stand-ins
    for their extension files): enough for ``check`` to read."""
    for module in compiled.COMPILED:
        source = compiled.source_path(module, root)
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text(f"# {module}\n")
        if extensions:
            source.with_name(source.stem + EXTENSION_SUFFIXES[0]).write_bytes(b"")


def _digests(root: Path) -> dict[str, str]:
    return {
        module: hashlib.sha256(compiled.source_path(module, root).read_bytes()).hexdigest()
        for module in compiled.COMPILED
    }


class TestCheck:
    """``check`` and ``needs_build`` read the build's record against the tree."""

    def test_nothing_built(self, tmp_path: Path) -> None:
        _fake_build(tmp_path, extensions=False)
        assert compiled.check(tmp_path, {}) == "no compiled core was built"
        assert compiled.check(tmp_path, {compiled.ENV: "yes"}) == f"{compiled.ENV}=yes"
        assert compiled.needs_build(tmp_path)

    def test_a_failed_build_is_not_retried_until_a_source_changes(self, tmp_path: Path) -> None:
        _fake_build(tmp_path, extensions=False)
        error = "the C build failed: CompileError:\n  gcc: not found"
        compiled.Record.write(tmp_path, _digests(tmp_path), error=error)
        assert compiled.check(tmp_path, {}) == "the C build failed: CompileError: gcc: not found"
        assert not compiled.needs_build(tmp_path)
        source = compiled.source_path(compiled.COMPILED[0], tmp_path)
        source.write_text("# edited\n")
        assert compiled.needs_build(tmp_path)

    def test_built_fresh_stale_and_for_another_interpreter(self, tmp_path: Path) -> None:
        _fake_build(tmp_path, extensions=True)
        compiled.Record.write(tmp_path, _digests(tmp_path), compiler="mypyc 1.0")
        assert compiled.Record(tmp_path).compiler == "mypyc 1.0"
        assert compiled.check(tmp_path, {}) == ""
        assert compiled.check(tmp_path, {compiled.ENV: "1"}) == f"{compiled.ENV}=1"
        assert not compiled.needs_build(tmp_path)
        compiled.source_path("hypercorn.worker.router", tmp_path).write_text("# edited\n")
        assert compiled.check(tmp_path, {}) == (
            "compiled core is stale (router.py edited since); run `make compile`"
        )
        assert compiled.needs_build(tmp_path)
        for extension in tmp_path.rglob(f"*{EXTENSION_SUFFIXES[0]}"):
            extension.unlink()
        assert compiled.check(tmp_path, {}).startswith("no compiled core for ")

    def test_another_interpreters_build_does_not_vouch_for_this_one(self, tmp_path: Path) -> None:
        # A tree built in place for two interpreters; after an edit, only the
        # other one was rebuilt: this one's extension modules are stale.
        tree, elsewhere = tmp_path / "tree", tmp_path / "elsewhere"
        _fake_build(tree, extensions=True)
        compiled.Record.write(tree, _digests(tree), compiler="mypyc 1.0")
        compiled.source_path("hypercorn.worker.router", tree).write_text("# edited\n")
        compiled.Record.write(elsewhere, _digests(tree), compiler="mypyc 1.0")
        shared = Path("hypercorn", "shared")
        other = tree / shared / "compiled.otherpython-399.txt"
        other.write_bytes((elsewhere / shared / compiled.RECORD).read_bytes())
        assert f"compiled.{sys.implementation.cache_tag}.txt" == compiled.RECORD
        assert compiled.check(tree, {}).startswith("compiled core is stale (router.py")
        assert compiled.needs_build(tree)


def _build(tmp_path: Path, **environ: str) -> Path:
    """``setup.py build_ext`` into ``tmp_path``; the build directory it made."""
    pytest.importorskip("mypyc", reason="the build needs mypy (in the test extra)")
    build_lib = tmp_path / "lib"
    env = {k: v for k, v in os.environ.items() if k != compiled.ENV} | environ
    result = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "-b", str(build_lib), "-t", str(tmp_path / "t")],
        cwd=SRC.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "hypercorn build: pure-Python core (" in result.stderr
    return build_lib


class TestBuildWithoutTheCore:
    """The build never fails for want of the compiled core, and records why."""

    def test_no_extensions_at_build_time(self, tmp_path: Path) -> None:
        build_lib = _build(tmp_path, HYPERCORN_NO_EXTENSIONS="1")
        assert not list(build_lib.rglob(f"*{EXTENSION_SUFFIXES[0]}"))
        reason = "HYPERCORN_NO_EXTENSIONS=1 at build time"
        assert compiled.Record(build_lib).error == reason

    @pytest.mark.slow
    def test_no_working_c_compiler(self, tmp_path: Path) -> None:
        build_lib = _build(tmp_path, CC="/bin/false")
        assert not list(build_lib.rglob(f"*{EXTENSION_SUFFIXES[0]}"))
        assert compiled.Record(build_lib).error.startswith("the C build failed: CompileError")
        # Beside the sources, that build runs the same modules as Python, and says why.
        shutil.copytree(
            SRC / "hypercorn",
            build_lib / "hypercorn",
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("*.so", "compiled*.txt", "__pycache__"),
        )
        probe = _probe(build_lib)
        assert probe["core"] == "pure"
        assert str(probe["reason"]).startswith("the C build failed: CompileError")
