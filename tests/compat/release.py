"""Hypercorn 0.18.0's own tests, fetched from the package registry on first use.

The release's source distribution is downloaded with pip (the sdist carries the
tests; the wheel does not), checked against its pinned SHA-256, and unpacked
into a cache beside the virtual environment that runs the tests, so a machine
fetches it once. Nothing of it is committed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VERSION = "0.18.0"
SDIST = f"hypercorn-{VERSION}.tar.gz"
SHA256 = "d63267548939c46b0247dc8e5b45a9947590e35e64ee73a23c074aa3cf88e9da"
REPO = Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    """Where the unpacked release lives: inside the running venv, else ``.cache/``."""
    in_venv = sys.prefix != sys.base_prefix
    return (Path(sys.prefix) if in_venv else REPO / ".cache") / "compat"


def release_tree() -> Path:
    """The unpacked ``hypercorn-0.18.0`` directory, fetched if not cached yet.

    Raises:
        RuntimeError: pip cannot download it, or the file is not the pinned one.
    """
    target = cache_dir() / f"hypercorn-{VERSION}"
    if (target / "tests" / "conftest.py").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        archive = _download(Path(scratch))
        with tarfile.open(archive) as tar:
            tar.extractall(scratch, filter="data")
        unpacked = Path(scratch) / f"hypercorn-{VERSION}"
        shutil.rmtree(target, ignore_errors=True)
        os.replace(unpacked, target)  # whole, or not at all
    return target


def _download(directory: Path) -> Path:
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
        "--no-binary", ":all:", "--dest", str(directory), f"hypercorn=={VERSION}",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    archive = directory / SDIST
    if result.returncode != 0 or not archive.is_file():
        raise RuntimeError(f"cannot download {SDIST}:\n{result.stdout}{result.stderr}")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if digest != SHA256:
        raise RuntimeError(f"{SDIST} has SHA-256 {digest}, expected {SHA256}")
    return archive


if __name__ == "__main__":
    print(release_tree())
