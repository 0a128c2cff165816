"""Build the compiled serving core with mypyc; everything else is in pyproject.toml.

The modules named in ``hypercorn.shared.compiled.COMPILED`` are compiled to C
extension modules from their own typed source (no second copy of the logic).
The build never fails for want of them: without a C compiler, without mypyc,
or with ``HYPERCORN_NO_EXTENSIONS=1`` set, the package is built without them
and the same modules run as Python. Either way the build says which it made,
and writes ``hypercorn/shared/compiled.<interpreter>.txt``, the record the package checks
at import (see ``hypercorn/shared/compiled.py``).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"
MYPY_OPTIONS = [
    "--config-file=",
    "--strict",
    "--ignore-missing-imports",  # the build needs no third-party package installed
    "--follow-imports=silent",  # only the compiled modules are checked here
    "--no-incremental",
]


def _load_compiled() -> ModuleType:
    """``hypercorn/shared/compiled.py``, loaded alone: the package is not importable
    here (its dependencies may not be installed)."""
    path = SRC / "hypercorn" / "shared" / "compiled.py"
    spec = importlib.util.spec_from_file_location("hypercorn_shared_compiled", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


COMPILED = _load_compiled()
MODULES: list[str] = list(COMPILED.COMPILED)


def say(message: str) -> None:
    print(f"hypercorn build: {message}", file=sys.stderr, flush=True)


class BuildCore(build_ext):
    """Compile the core, or build without it if that is not possible here."""

    error = ""

    def finalize_options(self) -> None:
        # Here rather than at the top of setup.py, so that the steps that only
        # read the metadata do not run mypy.
        if self.distribution.ext_modules == [PLACEHOLDER]:
            self.distribution.ext_modules = self._extensions()
        super().finalize_options()
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1

    def run(self) -> None:
        if self.extensions:
            try:
                super().run()
            except Exception as exc:  # no C compiler, or it failed: build pure
                self.error = f"the C build failed: {type(exc).__name__}: {str(exc)[:200]}"
                self._remove_outputs()
        self._write_record()

    def _extensions(self) -> list[Extension]:
        if COMPILED.disabled():
            self.error = "HYPERCORN_NO_EXTENSIONS=1 at build time"
            return []
        try:
            from mypyc.build import mypycify
        except ImportError as exc:
            self.error = f"mypyc is not installed: {exc}"
            return []
        paths = [str(Path("src", *module.split(".")).with_suffix(".py")) for module in MODULES]
        previous = os.getcwd()
        os.chdir(HERE)  # mypyc names its sources relative to the project
        try:
            extensions: list[Extension] = mypycify(
                [*MYPY_OPTIONS, *paths],
                opt_level="3",
                group_name="hypercorn",
                target_dir=str(Path("build", "mypyc")),
            )
        except (Exception, SystemExit) as exc:  # a type error stops mypyc with SystemExit
            self.error = f"mypyc could not compile it: {type(exc).__name__}: {exc}"
            return []
        finally:
            os.chdir(previous)
        for extension in extensions:
            extension.sources = [str(HERE / source) for source in extension.sources]
            extension.include_dirs = [str(HERE / path) for path in extension.include_dirs]
        return extensions

    def _remove_outputs(self) -> None:
        for extension in self.extensions:
            path = Path(self.get_ext_fullpath(extension.name))
            path.unlink(missing_ok=True)

    def _write_record(self) -> None:
        sources = {
            module: COMPILED.source_digest(COMPILED.source_path(module, SRC)) for module in MODULES
        }
        root = SRC if self.inplace else Path(self.build_lib)
        if self.error:
            say(f"pure-Python core ({self.error})")
            COMPILED.Record.write(root, sources, error=self.error)
        else:
            import mypy.version

            compiler = f"mypyc {mypy.version.__version__}"
            say(f"compiled core: {len(MODULES)} modules compiled by {compiler}")
            COMPILED.Record.write(root, sources, compiler=compiler)


# A stand-in that tells setuptools the distribution has extension modules (so
# that build_ext runs and the wheel is tagged for this platform); ``BuildCore``
# replaces it with mypyc's when it runs, so that metadata-only steps skip mypy.
PLACEHOLDER = Extension("hypercorn.shared._core", sources=[])

setup(
    ext_modules=[PLACEHOLDER],
    cmdclass={"build_ext": BuildCore},
)
