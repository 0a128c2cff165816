"""Hypercorn 0.18.0's public-API tests, run against this package.

Every test of the release that fails here must be listed in ``docs/compat.md``
as a deliberate difference, and every test
listed there must still fail: the page and the package agree. The counts the
page gives are checked too.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.compat.release import REPO, release_tree

COMPAT_PAGE = REPO / "docs" / "compat.md"
INI = Path(__file__).with_name("hypercorn-suite.ini")
# The public-API test files of the release (the others drive Hypercorn's internals).
FILES = ["tests/test_utils.py", "tests/test_config.py", "tests/middleware", "tests/test_logging.py"]


def listed_failures() -> set[str]:
    """The test ids (or whole files) in the tables of ``docs/compat.md``."""
    return set(re.findall(r"^\| `(tests/[^`]+)` \|", COMPAT_PAGE.read_text(), re.MULTILINE))


def listed_counts() -> str:
    match = re.search(r"^Result: (.+)\.$", COMPAT_PAGE.read_text(), re.MULTILINE)
    assert match, "docs/compat.md gives no 'Result:' line"
    return match[1]


@pytest.fixture(scope="module")
def outcome() -> subprocess.CompletedProcess[str]:
    tree = release_tree()
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(INI), "--rootdir", str(tree),
         "-p", "no:cacheprovider", "-q", "--tb=no", "-rfE",
         "--continue-on-collection-errors", *FILES],
        cwd=tree, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip


def test_every_failure_is_a_listed_difference(outcome: subprocess.CompletedProcess[str]) -> None:
    failed = set(re.findall(r"^(?:FAILED|ERROR) (\S+)", outcome.stdout, re.MULTILINE))
    assert failed, outcome.stdout + outcome.stderr  # the run reported its failures
    unlisted = failed - listed_failures()
    assert not unlisted, f"not in docs/compat.md: {sorted(unlisted)}\n{outcome.stdout}"


def test_every_listed_difference_still_fails(outcome: subprocess.CompletedProcess[str]) -> None:
    failed = set(re.findall(r"^(?:FAILED|ERROR) (\S+)", outcome.stdout, re.MULTILINE))
    passing = listed_failures() - failed
    assert not passing, f"listed in docs/compat.md but passing now: {sorted(passing)}"


def test_the_page_gives_the_counts(outcome: subprocess.CompletedProcess[str]) -> None:
    summary = outcome.stdout.strip().splitlines()[-1]
    counts = {
        kind.rstrip("s"): int(number)
        for number, kind in re.findall(r"(\d+) (passed|failed|errors?)\b", summary)
    }
    assert counts.get("passed", 0) > 0, outcome.stdout
    ordered = ", ".join(f"{counts[k]} {k}" for k in ("passed", "failed", "error") if k in counts)
    assert listed_counts() == ordered, outcome.stdout
