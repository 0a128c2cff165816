"""The layer rules of the design, checked on the source's imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "hypercorn"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(package: str) -> list[Path]:
    return sorted((SRC / package).rglob("*.py"))


def test_every_layer_has_modules() -> None:
    assert _modules("shared") and _modules("worker/protocol")


@pytest.mark.parametrize("path", _modules("worker/protocol"), ids=lambda p: p.name)
def test_protocol_layer_does_no_io(path: Path) -> None:
    forbidden = {"asyncio", "socket", "ssl", "selectors", "threading"}
    bad = {name for name in _imports(path) if name.split(".")[0] in forbidden}
    assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize("path", _modules("shared"), ids=lambda p: p.name)
def test_shared_imports_neither_supervisor_nor_worker(path: Path) -> None:
    bad = {
        name
        for name in _imports(path)
        if name.startswith(("hypercorn.supervisor", "hypercorn.worker"))
    }
    assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize("path", _modules("worker"), ids=lambda p: p.name)
def test_worker_does_not_import_supervisor(path: Path) -> None:
    bad = {name for name in _imports(path) if name.startswith("hypercorn.supervisor")}
    assert not bad, f"{path.name} imports {bad}"


def test_protocol_libraries_stay_inside_the_protocol_layer() -> None:
    libraries = {"h11", "h2", "wsproto", "aioquic", "hpack", "hyperframe"}
    outside = [p for p in SRC.rglob("*.py") if "worker/protocol" not in p.as_posix()]
    offenders = {
        p.relative_to(SRC).as_posix(): names
        for p in outside
        if (names := {n for n in _imports(p) if n.split(".")[0] in libraries})
    }
    assert not offenders
