"""Autobahn's WebSocket conformance cases against ``examples/echo.py``.

kosoku (from the ``test`` extra) runs Autobahn|Testsuite's own case files in
fuzzing-client mode. Every case must end OK, NON-STRICT or INFORMATIONAL,
and so must its closing behaviour. The core cases (all but 9.* performance
and 12.*/13.* compression) run in full; from compression, the cases of one
window size each run, which covers the negotiation variants in seconds.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import running_server, scaled

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("kosoku") is None, reason="kosoku (test extra) not installed"
    ),
]

GOOD = {"OK", "NON-STRICT", "INFORMATIONAL"}
ECHO = Path(__file__).parents[2] / "examples" / "echo.py"


def load_echo_app() -> Any:
    spec = importlib.util.spec_from_file_location("hypercorn_example_echo", ECHO)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


async def run_cases(
    tmp_path: Path, include: list[str], exclude: list[str], **settings: Any
) -> dict[str, dict[str, Any]]:
    """Run kosoku against a fresh server; return the report per case."""
    args = [f"-i{case}" for case in include] + [f"-x{case}" for case in exclude]
    async with running_server(load_echo_app(), **settings) as address:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import sys; from kosoku._cli import main; sys.exit(main())",
            "-p",
            "4",
            *args,
            "-o",
            str(tmp_path / "report"),
            f"{address.host}:{address.port}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=tmp_path,
        )
        try:
            output, _ = await asyncio.wait_for(process.communicate(), scaled(150))
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    index = tmp_path / "report" / "index.json"
    assert index.exists(), output.decode(errors="replace")[-2000:]
    data = json.loads(index.read_text())
    return {case: result for agent in data.values() for case, result in agent.items()}


def failures(cases: dict[str, dict[str, Any]]) -> list[str]:
    return [
        f"{case}: {result['behavior']} (close {result.get('behaviorClose')})"
        for case, result in sorted(cases.items())
        if result["behavior"] not in GOOD | {"UNIMPLEMENTED"}
        or result.get("behaviorClose", "OK") not in GOOD
    ]


async def test_core_cases(tmp_path: Path) -> None:
    cases = await run_cases(tmp_path, [], ["9.*", "12.*", "13.*"])
    assert len(cases) >= 240
    assert failures(cases) == []


async def test_compression_cases(tmp_path: Path) -> None:
    # 12.1.* and 13.1.*: every message size of the first parameter set; 13.x.1 the
    # other negotiation offers (no context takeover, window bits).
    include = ["12.1.*", "13.1.*", "13.2.1", "13.3.1", "13.4.1", "13.5.1", "13.6.1", "13.7.1"]
    cases = await run_cases(tmp_path, include, [])
    assert len(cases) >= 30
    assert failures(cases) == []
