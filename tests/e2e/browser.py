"""Headless Chromium driven by playwright-core (npm), for the browser tests.

Chromium comes from Debian (``make tools``); playwright-core from ``.tools/node``
(``make tools``), or else npm installs it into a cache directory on first use.
A test writes a small Node.js driver that prints one JSON line last; ``run_driver``
runs it and returns that line, parsed.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import scaled

ROOT = Path(__file__).parents[2]
TOOLS_NODE = Path(os.environ.get("HYPERCORN_NODE_DIR", ROOT / ".tools" / "node"))
CACHE_NODE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hypercorn-node"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

available = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and shutil.which("node")),
    reason="chromium and node not installed (make tools)",
)


async def node_dir() -> Path:
    """A directory with playwright-core in node_modules, installing it if needed."""
    for candidate in (TOOLS_NODE, CACHE_NODE):
        if (candidate / "node_modules" / "playwright-core").is_dir():
            return candidate
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("playwright-core not installed and npm missing (make tools)")
    CACHE_NODE.mkdir(parents=True, exist_ok=True)
    process = await asyncio.create_subprocess_exec(
        npm, "install", "--no-audit", "--no-fund", "--silent", "--prefix", str(CACHE_NODE),
        "playwright-core",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), scaled(300))
    assert process.returncode == 0, err.decode()[-2000:]
    return CACHE_NODE


async def run_driver(tmp_path: Path, source: str, *args: str) -> dict[str, Any]:
    """Run the Node.js ``source`` with ``args`` (then Chromium's path); return its last line."""
    modules = await node_dir()
    script = tmp_path / "driver.cjs"
    script.write_text(source)
    process = await asyncio.create_subprocess_exec(
        "node",
        str(script),
        *args,
        CHROMIUM,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=modules,
        env={**os.environ, "NODE_PATH": str(modules / "node_modules")},
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), scaled(90))
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    lines = out.decode().strip().splitlines()
    assert lines, err.decode()[-2000:]
    result: dict[str, Any] = json.loads(lines[-1])
    return result
