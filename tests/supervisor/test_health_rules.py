"""The rules of ``/livez``, ``/readyz`` and the drain, as tables: no process, no clock."""

from __future__ import annotations

import pytest

from hypercorn.supervisor.health import Drain, Readiness, Snapshot, liveness, readiness

R = Readiness


@pytest.mark.parametrize(
    ("snapshot", "expected", "says"),
    [
        (Snapshot(alive=2, ready=2, target=2), R.READY, "ready: 2 of 2 worker(s) serving"),
        (Snapshot(alive=3, ready=3, target=2), R.READY, "ready: 3 of 2"),  # mid-reload overlap
        (Snapshot(alive=0, ready=0, target=2), R.STARTING, "starting: 0 of 2 worker(s) ready"),
        (Snapshot(alive=2, ready=1, target=2), R.STARTING, "starting: 1 of 2"),  # one replaced
        (Snapshot(alive=2, ready=2, target=3), R.STARTING, "2 of 3"),  # TTIN
        (Snapshot(2, 2, 2, degraded="a reload was refused"), R.DEGRADED,
         "degraded: a reload was refused; 2 of 2 worker(s) serving the last good code"),
        (Snapshot(2, 2, 2, draining=True), R.DRAINING, "draining: out of rotation"),
        # A drain outranks degraded and starting: the operator asked for it.
        (Snapshot(2, 1, 2, draining=True, degraded="x"), R.DRAINING, "1 of 2"),
        (Snapshot(2, 1, 2, degraded="x"), R.DEGRADED, "degraded: x"),
        (Snapshot(2, 2, 2, draining=True, stopping=True), R.STOPPING, "stopping"),
    ],
)  # fmt: skip
def test_readiness(snapshot: Snapshot, expected: Readiness, says: str) -> None:
    state, text = readiness(snapshot)
    assert state is expected
    assert says in text


@pytest.mark.parametrize(
    ("snapshot", "alive"),
    [
        (Snapshot(alive=0, ready=0, target=2), False),
        (Snapshot(alive=1, ready=0, target=2), True),  # booting still counts: the loop runs
        (Snapshot(alive=2, ready=2, target=2, stopping=True), True),
    ],
)
def test_liveness(snapshot: Snapshot, alive: bool) -> None:
    assert liveness(snapshot)[0] is alive


def test_term_without_delay_stops_at_once() -> None:
    drain = Drain()
    assert drain.terminate(100.0, 0.0) == 100.0
    assert drain.stop_due(100.0) and drain.draining


def test_term_waits_the_delay_and_a_second_term_does_not() -> None:
    drain = Drain()
    assert drain.terminate(100.0, 5.0) == 105.0
    assert not drain.stop_due(104.9) and drain.stop_due(105.0)
    assert drain.terminate(101.0, 5.0) == 101.0  # the second TERM
    assert drain.stop_due(101.0)


def test_term_after_a_drain_counts_the_time_already_drained() -> None:
    drain = Drain()
    assert drain.begin(100.0)
    assert not drain.begin(101.0)  # one drain at a time, from its start
    assert drain.drained(105.0, 5.0) and not drain.drained(104.0, 5.0)
    assert drain.terminate(103.0, 5.0) == 105.0
    assert drain.terminate(110.0, 5.0) == 110.0


def test_a_reload_ends_a_drain_but_not_a_scheduled_stop() -> None:
    drain = Drain()
    drain.begin(100.0)
    drain.end()
    assert not drain.draining and not drain.drained(200.0, 0.0)
    drain.terminate(200.0, 5.0)
    drain.end()
    assert drain.draining and drain.stop_at == 205.0
