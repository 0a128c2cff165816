"""The installed distribution named ``hypercorn`` is this product."""

from __future__ import annotations

import ast
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import hypercorn

REPO = Path(__file__).resolve().parent.parent


def test_imported_package_is_ours() -> None:
    assert Path(hypercorn.__file__).resolve().is_relative_to(REPO / "src")
    assert hypercorn.__product__ == "hypercorn-server"


def test_distribution_version_is_above_every_earlier_release() -> None:
    from packaging.version import Version

    version = importlib.metadata.version("hypercorn")
    assert version == hypercorn.__version__
    assert Version(version) >= Version("1.0.0.dev0") > Version("0.18.99")


def test_console_script_and_module_entry_point() -> None:
    for command in (
        [sys.executable, "-m", "hypercorn", "--version"],
        [str(Path(sys.executable).parent / "hypercorn"), "--version"],
    ):
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"hypercorn {hypercorn.__version__}, ")


def test_frameworks_resolve_to_this_distribution() -> None:
    requirement = next(
        r for r in importlib.metadata.requires("quart") or [] if r.startswith("hypercorn")
    )
    from packaging.requirements import Requirement

    assert Requirement(requirement).specifier.contains(hypercorn.__version__, prereleases=True)


def test_runtime_dependencies_are_the_ones_the_code_imports() -> None:
    """h11 is the reference the HTTP/1.1 reader is tested against, not a runtime need."""
    from packaging.requirements import Requirement

    runtime = {
        Requirement(r).name
        for r in importlib.metadata.requires("hypercorn") or []
        if "extra ==" not in r
    }
    assert "h11" not in runtime
    tests_only = {"h11"}
    for path in (REPO / "src" / "hypercorn").rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = (
                [alias.name for alias in node.names] if isinstance(node, ast.Import)
                else [node.module] if isinstance(node, ast.ImportFrom) and node.module
                else []
            )  # fmt: skip
            assert not {n.split(".")[0] for n in names} & tests_only, path
