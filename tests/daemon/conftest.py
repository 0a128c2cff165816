from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.daemon.helpers import Daemons


@pytest.fixture
def daemons() -> Iterator[Daemons]:
    tracker = Daemons()
    try:
        yield tracker
    finally:
        tracker.close()
