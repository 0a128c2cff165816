"""The servers compared, each in its own virtual environment.

A ``Peer`` knows how to install itself under ``benchmarks/.venvs/<name>`` and
the command line that serves the benchmark apps with a given number of
workers, plain or over TLS, ASGI or WSGI, and which app module. Every command
serves one worker unless asked otherwise, without access logs, on the address
given. ``Peer.on(python)`` is the same server on another interpreter, in a
venv of its own (``<name>-py3.13``); ``interpreter(version)`` finds one.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENVS = HERE / ".venvs"


@dataclasses.dataclass(frozen=True)
class Serve:
    """What one server process is asked to do."""

    port: int
    workers: int = 1
    wsgi: bool = False
    tls: tuple[str, str] | None = None  # (certfile, keyfile)
    app: str = "apps:app"  # the ASGI app, as ``module:attribute``


@dataclasses.dataclass(frozen=True)
class Python:
    """An interpreter the servers run on."""

    version: str  # "3.13"
    executable: str


def interpreter(version: str) -> Python | None:
    """Python ``version`` ("3.13"): this one, ``python3.13`` on the PATH, or pyenv's."""
    if version == f"{sys.version_info[0]}.{sys.version_info[1]}":
        return Python(version, sys.executable)
    found = shutil.which(f"python{version}")
    if found is not None and subprocess.run([found, "-c", ""], capture_output=True).returncode:
        found = None  # a pyenv shim of a version no pyenv setting selects
    if found is None and shutil.which("pyenv"):
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=False)
        versions = Path(root.stdout.strip(), "versions")
        candidates = sorted(versions.glob(f"{version}.*")) if root.returncode == 0 else []
        found = next((str(c / "bin" / "python") for c in reversed(candidates)), None)
    return Python(version, found) if found else None


@dataclasses.dataclass(frozen=True)
class Peer:
    name: str
    packages: tuple[str, ...]
    command: Callable[[Path, Serve], list[str]]
    asgi: bool = True
    wsgi: bool = False
    h2: bool = False
    websocket: bool = False
    hup: bool = True
    source: Path | None = None  # an editable install's source tree
    python: Python | None = None  # None: the interpreter running the benchmarks

    @property
    def venv(self) -> Path:
        suffix = "" if self.python is None else f"-py{self.python.version}"
        return VENVS / f"{self.name}{suffix}"

    def on(self, python: Python) -> Peer:
        """The same server on ``python`` (itself, for the harness's own)."""
        if python.executable == sys.executable:
            return self
        return dataclasses.replace(self, python=python)

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def install(self) -> None:
        """Create the venv and install the packages, once per package list.

        An editable install's source is byte-compiled on every run, as pip
        compiles the peers' packages when it installs them: without it (and
        with PYTHONDONTWRITEBYTECODE set, as on CI machines) every start and
        every forked worker would compile the server's modules anew.
        """
        stamp = self.venv / ".bench-installed"
        wanted = "\n".join(self.packages)
        if stamp.exists() and stamp.read_text() == wanted:
            self._compile()
            return
        print(f"[setup] {self.name}: {' '.join(self.packages)}", flush=True)
        if not (self.bin / "python").exists():
            python = sys.executable if self.python is None else self.python.executable
            subprocess.run([python, "-m", "venv", str(self.venv)], check=True)
        subprocess.run(
            [str(self.bin / "python"), "-m", "pip", "install", "--quiet", *self.packages],
            check=True,
        )
        stamp.write_text(wanted)
        self._compile()

    def _compile(self) -> None:
        if self.source is not None:
            self._build_core()
            subprocess.run(
                [str(self.bin / "python"), "-m", "compileall", "-q", str(self.source)], check=True
            )

    def _build_core(self) -> None:
        """Ours, installed editable: build the compiled core in place for this venv's
        interpreter whenever its build record says it is missing or stale. The
        editable install builds it once; sources edited since would otherwise
        run as pure Python on every interpreter but the one ``make`` rebuilds."""
        python = str(self.bin / "python")
        check = "import hypercorn.shared.compiled as c; raise SystemExit(c.needs_build())"
        if subprocess.run([python, "-c", check], check=False).returncode == 0:
            return
        print(f"[setup] {self.name}: building the compiled core", flush=True)
        tools = ["mypy", "setuptools"]  # what ``setup.py`` builds it with
        subprocess.run([python, "-m", "pip", "install", "--quiet", *tools], check=True)
        subprocess.run(
            [python, "setup.py", "--quiet", "build_ext", "--inplace"], cwd=ROOT, check=True
        )

    def argv(self, serve: Serve) -> list[str]:
        return self.command(self.bin, serve)


def _hypercorn_family(bin_: Path, serve: Serve) -> list[str]:
    app = "wsgi:apps:wsgi" if serve.wsgi else serve.app
    argv = [str(bin_ / "hypercorn"), "-w", str(serve.workers), "-k", "uvloop",
            "-b", f"127.0.0.1:{serve.port}", "-c", "python:bench_config",
            "--log-level", "warning"]  # fmt: skip
    if serve.tls:
        argv += ["--certfile", serve.tls[0], "--keyfile", serve.tls[1]]
    return [*argv, app]


def _uvicorn(http: str, loop: str, ws: str) -> Callable[[Path, Serve], list[str]]:
    def command(bin_: Path, serve: Serve) -> list[str]:
        return [str(bin_ / "uvicorn"), "--host", "127.0.0.1", "--port", str(serve.port),
                "--workers", str(serve.workers), "--http", http, "--loop", loop, "--ws", ws,
                "--no-access-log", "--log-level", "warning", serve.app]  # fmt: skip

    return command


def _granian(bin_: Path, serve: Serve) -> list[str]:
    argv = [str(bin_ / "granian"), "--interface", "wsgi" if serve.wsgi else "asgi",
            "--host", "127.0.0.1", "--port", str(serve.port), "--workers", str(serve.workers),
            "--no-access-log", "--log-level", "warning"]  # fmt: skip
    if serve.tls:
        argv += ["--ssl-certificate", serve.tls[0], "--ssl-keyfile", serve.tls[1]]
    return [*argv, "apps:wsgi" if serve.wsgi else serve.app]


def _gunicorn(bin_: Path, serve: Serve) -> list[str]:
    return [str(bin_ / "gunicorn"), "-k", "sync", "-w", str(serve.workers),
            "-b", f"127.0.0.1:{serve.port}", "--log-level", "warning", "apps:wsgi"]  # fmt: skip


OURS = "ours"

FRAMEWORK = "fastapi"  # what the framework scenario's app (``framework.py``) needs

PEERS = (
    Peer(OURS, ("-e", f"{ROOT}[uvloop,h3]", FRAMEWORK), _hypercorn_family,
         wsgi=True, h2=True, websocket=True, source=ROOT / "src"),
    Peer("hypercorn", ("hypercorn==0.18.*", "uvloop", FRAMEWORK), _hypercorn_family,
         wsgi=True, h2=True, websocket=True),
    Peer("uvicorn-httptools", ("uvicorn", "httptools", "uvloop", "websockets", FRAMEWORK),
         _uvicorn("httptools", "uvloop", "websockets"), websocket=True),
    Peer("uvicorn-h11", ("uvicorn", "h11", FRAMEWORK), _uvicorn("h11", "asyncio", "none")),
    Peer("granian", ("granian", "uvloop", FRAMEWORK), _granian,
         wsgi=True, h2=True, websocket=True),
    Peer("gunicorn-sync", ("gunicorn",), _gunicorn, asgi=False, wsgi=True),
)  # fmt: skip
"""Ours first: every ratio in the results is ours divided by the peer's figure."""


def baseline(rev: str) -> Peer:
    """Ours as of git revision ``rev``, a peer like the others (before/after figures).

    The tree at ``rev`` is exported with ``git archive`` and installed (not
    editable) in ``.venvs/ours@<rev>``.
    """
    commit = subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    source = VENVS / f"src-{commit}"
    if not (source / "pyproject.toml").exists():
        source.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", commit], cwd=ROOT, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    return Peer(f"ours@{commit}", (f"{source}[uvloop,h3]", FRAMEWORK), _hypercorn_family,
                wsgi=True, h2=True, websocket=True)  # fmt: skip
