"""Options for the whole suite.

``--core=compiled`` or ``--core=pure`` states which serving core the run must
be testing (``make test`` runs the suite once each way);
``tests/shared/test_compiled.py`` fails when another one was loaded.
``--worker-classes=asyncio`` runs the end-to-end tests that take a worker
class on that class alone (the pure-Python pass: ``io.py``, the one compiled
I/O layer, serves asyncio and uvloop alike, and the other modules it
compiles are the same on every class).
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--core",
        choices=("compiled", "pure"),
        default=None,
        help="fail unless the serving core under test is the compiled one or the pure-Python one",
    )
    parser.addoption(
        "--worker-classes",
        default=None,
        help="comma-separated worker classes the end-to-end tests run on (default: each one)",
    )
