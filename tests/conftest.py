"""Options for the whole suite.

``--core=compiled`` or ``--core=pure`` states which serving core the run must
be testing (``make test`` runs the suite once each way);
``tests/shared/test_compiled.py`` fails when another one was loaded.
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
