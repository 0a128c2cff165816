"""The layer rules of the design, checked on the source's imports."""

from __future__ import annotations

import ast
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_server import CLIServer, stop

SRC = Path(__file__).resolve().parent.parent / "src" / "hypercorn"
APP = (
    "async def app(scope, receive, send):\n"
    "    if scope['type'] != 'http':\n"
    "        return\n"
    "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
    "    await send({'type': 'http.response.body', 'body': b'ok'})\n"
)


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


# Above the protocols, what every loop family runs: it reaches its loop only
# through ``shared/eventloop.py``'s ``EventLoop``, never asyncio or trio itself.
LOOP_AGNOSTIC = [
    *_modules("worker/asgi"),
    *(SRC / "worker" / name for name in ("context.py", "router.py", "waiters.py")),
    SRC / "shared" / "wsgi.py",
    SRC / "middleware" / "dispatcher.py",
]


@pytest.mark.parametrize("path", LOOP_AGNOSTIC, ids=lambda p: p.name)
def test_streams_context_and_lifespan_name_no_loop_library(path: Path) -> None:
    bad = {name for name in _imports(path) if name.split(".")[0] in {"asyncio", "trio", "anyio"}}
    assert not bad, f"{path.name} imports {bad}"


# What ``shared`` may import of the package: itself, and the two modules that
# import nothing of ours (the package's ``__init__`` for the version, and the
# ASGI types).
SHARED_MAY_IMPORT = ("hypercorn.shared", "hypercorn.typing", "hypercorn")


@pytest.mark.parametrize("path", _modules("shared"), ids=lambda p: p.name)
def test_shared_imports_nothing_above_it(path: Path) -> None:
    bad = {
        name
        for name in _imports(path)
        if name.split(".")[0] == "hypercorn"
        and name not in SHARED_MAY_IMPORT
        and not name.startswith("hypercorn.shared.")
    }
    assert not bad, f"{path.name} imports {bad}"


def test_what_shared_may_import_imports_nothing_of_ours() -> None:
    # The package's ``__init__`` chooses the serving core through ``shared.compiled``
    # before anything else is imported; that module imports nothing of ours.
    allowed = {SRC / "__init__.py": {"hypercorn.shared"}}
    for leaf in (SRC / "__init__.py", SRC / "typing.py", SRC / "shared" / "compiled.py"):
        ours = {n for n in _imports(leaf) if n.split(".")[0] == "hypercorn"}
        assert ours <= allowed.get(leaf, set()), leaf.name


def _function_level_imports(path: Path) -> tuple[set[str], set[str]]:
    """The modules ``path`` imports at module level, and those it imports inside functions."""
    tree = ast.parse(path.read_text(), filename=str(path))
    inside: set[str] = set()
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(function):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    inside.add(node.module)
                elif isinstance(node, ast.Import):
                    inside.update(alias.name for alias in node.names)
    return _imports(path) - inside, inside


@pytest.mark.parametrize("path", _modules("supervisor"), ids=lambda p: p.name)
def test_supervisor_imports_the_worker_only_through_its_entry_point(path: Path) -> None:
    """Never at module level (the master would load it), and only ``worker.serve``."""
    top, inside = _function_level_imports(path)
    assert not {n for n in top if n.startswith("hypercorn.worker")}, path.name
    assert {n for n in inside if n.startswith("hypercorn.worker")} <= {"hypercorn.worker.serve"}


def test_the_master_process_never_loads_the_worker(tmp_path: Path) -> None:
    """Run a real master with one worker, serve a request, stop it: the master's own
    ``sys.modules`` (written at its exit) holds no ``hypercorn.worker`` module."""
    (tmp_path / "app.py").write_text(APP)
    report = tmp_path / "modules"
    script = (
        "import atexit, os, sys\n"
        "master = os.getpid()\n"
        "def report():\n"
        "    if os.getpid() == master:\n"
        f"        open({str(report)!r}, 'w').write('\\n'.join(sorted(sys.modules)))\n"
        "atexit.register(report)\n"
        "from hypercorn.__main__ import main\n"
        "sys.exit(main())\n"
    )
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    host, port = listener.getsockname()
    with open(tmp_path / "log", "w") as log:
        master = subprocess.Popen(
            [sys.executable, "-c", script, "-w", "1", "-b", f"fd://{listener.fileno()}",
             "app:app"],
            cwd=tmp_path, pass_fds=[listener.fileno()], stdout=log, stderr=log, text=True,
        )  # fmt: skip
    listener.close()
    try:
        CLIServer(master, host, port).wait_ready(30)
    finally:
        code = stop(master)
    assert code == 0, (tmp_path / "log").read_text()
    modules = report.read_text().split()
    assert "hypercorn.supervisor.arbiter" in modules  # it was the master that reported
    assert [m for m in modules if m.startswith("hypercorn.worker")] == []


@pytest.mark.parametrize(
    "path", [p for p in SRC.rglob("*.py") if p.name != "__main__.py"], ids=lambda p: p.name
)
def test_nothing_imports_the_command_line_entry_point(path: Path) -> None:
    """``hypercorn.__main__`` is the outermost layer: what it does is reached by a
    command (``python -m hypercorn``), never by an import (``ctl start`` included)."""
    bad = {name for name in _imports(path) if name == "hypercorn.__main__"}
    assert not bad, f"{path.relative_to(SRC)} imports {bad}"
