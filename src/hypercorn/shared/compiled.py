"""Which build of the serving core runs: its compiled modules, or their Python source.

Theory of operation
-------------------
The modules named in ``COMPILED`` are the serving core's hot path. When the
package is built (``setup.py``), mypyc compiles each of them to a C extension
module placed beside its ``.py``, from that same typed source, and the build
writes a record beside this module (``compiled.cpython-311.txt``: one per
interpreter, as the extension modules are) with the SHA-256 of every source
it compiled. Python imports an extension module in preference to
the ``.py`` beside it, so the compiled core runs by default.

``hypercorn/__init__.py`` calls ``select()`` before any of these modules is
imported. It keeps the extension modules only when every one of them is there
for this interpreter and every source still matches the record; otherwise it
puts a finder in front of ``sys.meta_path`` that loads each of them from its
``.py`` instead. The choice is all or nothing: compiled modules call one
another's classes and functions natively, so a mix of the two cannot run.
The reasons for the pure-Python core, in the order they are checked:

- ``HYPERCORN_NO_EXTENSIONS`` is set (to anything but ``""`` or ``"0"``);
- the build made no extension modules (no C compiler, the variable set at
  build time, another interpreter than the one built for);
- a source was edited after the build (a stale extension would run the old
  code, silently): ``make compile`` rebuilds them.

``CORE`` and ``REASON`` say what was chosen; ``hypercorn --version`` and the
server's start-up line print ``describe()``.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType

COMPILED = (
    "hypercorn.worker.protocol.events",
    "hypercorn.worker.protocol.http11",
    "hypercorn.worker.protocol.http11_chunked",
    "hypercorn.worker.protocol.http11_head",
    "hypercorn.worker.protocol.http11_response",
    "hypercorn.worker.protocol.connection",
    "hypercorn.worker.protocol.ws_frames",
    "hypercorn.worker.protocol.ws",
    "hypercorn.worker.protocol.ws_h2",
    "hypercorn.worker.protocol.h2_frames",
    "hypercorn.worker.protocol.h2_hpack",
    "hypercorn.worker.protocol.h2_headers",
    "hypercorn.worker.protocol.h2_limits",
    "hypercorn.worker.protocol.h2_streams",
    "hypercorn.worker.protocol.h2_output",
    "hypercorn.worker.protocol.h2_session",
    "hypercorn.worker.protocol.h2_responses",
    "hypercorn.worker.protocol.h2",
    "hypercorn.worker.router",
    "hypercorn.worker.asgi.http",
    "hypercorn.worker.asgi.websocket",
    "hypercorn.worker.io",
    "hypercorn.worker.listener",
    "hypercorn.worker.connection_info",
    "hypercorn.worker.context",
    "hypercorn.shared.header_rules",
    "hypercorn.shared.metrics",
    "hypercorn.shared.wsgi",
    "hypercorn.shared.wsgi_environ",
)
"""The modules mypyc compiles (``setup.py`` reads this tuple)."""

RECORD = f"compiled.{sys.implementation.cache_tag}.txt"
"""The build's record for this interpreter, beside this module (a tree built in
place for two interpreters holds two, so that one build never vouches for the
other's extension modules): one ``key value`` line each for
``compiler`` (or the ``error`` that kept the build from compiling), and a
``source MODULE SHA256`` line for each source as the build read it."""

ENV = "HYPERCORN_NO_EXTENSIONS"

_ROOT = Path(__file__).resolve().parent.parent.parent  # the directory holding ``hypercorn``

CORE = "pure"
"""``"compiled"`` or ``"pure"``, once ``select()`` has run."""
REASON = "not selected yet"
"""Why the pure-Python core runs (empty for the compiled core)."""
COMPILER = ""
"""What built the compiled core, from the record (e.g. ``mypyc 2.4.1``)."""


def disabled(environ: Mapping[str, str] = os.environ) -> bool:
    """True if ``HYPERCORN_NO_EXTENSIONS`` asks for the pure-Python core."""
    return environ.get(ENV, "") not in ("", "0")


def source_path(module: str, root: Path = _ROOT) -> Path:
    """The ``.py`` file of a module of this package."""
    return root.joinpath(*module.split(".")).with_suffix(".py")


def source_digest(path: Path) -> str:
    """SHA-256 of a source file, as the build records it."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _extension(module: str, root: Path) -> Path | None:
    base = root.joinpath(*module.split("."))
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = base.with_name(base.name + suffix)
        if candidate.is_file():
            return candidate
    return None


class Record:
    """The build's record (``RECORD``), as read; empty if there is none."""

    def __init__(self, root: Path) -> None:
        self.compiler = self.error = ""
        self.sources: dict[str, str] = {}
        try:
            text = (root / "hypercorn" / "shared" / RECORD).read_text()
        except OSError:
            return
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "source":
                module, _, digest = value.partition(" ")
                self.sources[module] = digest
            elif key == "compiler":
                self.compiler = value
            elif key == "error":
                self.error = value

    @staticmethod
    def write(root: Path, sources: dict[str, str], compiler: str = "", error: str = "") -> None:
        """Write a record (the build does, once it knows what it made)."""
        lines = ["# The compiled core's build (hypercorn/shared/compiled.py reads it)."]
        lines += [f"error {' '.join(error.split())}"] if error else [f"compiler {compiler}"]
        lines += [f"source {module} {digest}" for module, digest in sorted(sources.items())]
        path = root / "hypercorn" / "shared" / RECORD
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")


def _edited(record: Record, root: Path) -> list[str]:
    """The compiled modules' files whose source differs from the one the build saw."""
    sources = record.sources
    return [
        path.name
        for module in COMPILED
        if (path := source_path(module, root)).is_file()
        and sources.get(module) != source_digest(path)
    ]


def check(root: Path = _ROOT, environ: Mapping[str, str] = os.environ) -> str:
    """Why the compiled core cannot run from ``root``, or ``""`` if it can.

    Args:
        root: the directory that holds the ``hypercorn`` package.
        environ: the environment to read ``HYPERCORN_NO_EXTENSIONS`` from.
    """
    if disabled(environ):
        return f"{ENV}={environ[ENV]}"
    record = Record(root)
    if record.error:
        return record.error
    if not record.sources:
        return "no compiled core was built"
    if any(_extension(module, root) is None for module in COMPILED):
        version = ".".join(map(str, sys.version_info[:2]))
        return f"no compiled core for {sys.implementation.name} {version}"
    edited = _edited(record, root)
    if edited:
        return f"compiled core is stale ({', '.join(edited)} edited since); run `make compile`"
    return ""


def needs_build(root: Path = _ROOT) -> bool:
    """True if a build in place would make something new: none was made, or a
    compiled module's source changed since (whether that build compiled or not)."""
    record = Record(root)
    return not record.sources or bool(_edited(record, root))


class SourceFinder:
    """Loads the compiled modules from their ``.py`` files."""

    def __init__(self, modules: Sequence[str]) -> None:
        self.modules = frozenset(modules)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.modules:
            return None
        name = fullname.rpartition(".")[2] + ".py"
        for entry in path or sys.path:
            candidate = os.path.join(entry, name)
            if os.path.isfile(candidate):
                return importlib.util.spec_from_file_location(fullname, candidate)
        return None


def select() -> None:
    """Choose the core for this process (see the module doc); runs once, on import of
    ``hypercorn``, before any compiled module is imported."""
    global CORE, REASON, COMPILER
    if any(isinstance(finder, SourceFinder) for finder in sys.meta_path):
        return
    REASON = check()
    if REASON:
        CORE = "pure"
        sys.meta_path.insert(0, SourceFinder(COMPILED))
    else:
        CORE = "compiled"
        COMPILER = Record(_ROOT).compiler or "mypyc"


def describe() -> str:
    """One line for ``--version`` and the start-up log: which core runs, and why."""
    if CORE == "compiled":
        return f"compiled core ({COMPILER})"
    return f"pure Python ({REASON})"


def stale() -> bool:
    """True if compiled modules exist but are older than their sources (worth a warning)."""
    return CORE == "pure" and REASON.startswith("compiled core is stale")
