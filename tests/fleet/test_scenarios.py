"""Fleet scenarios: a roll host by host, a host killed, a broken deploy, WebSockets in a roll.

Three hosts, each our master with 2 workers, behind haproxy (active checks on
``/readyz``) and nginx (passive health), under a paced load of 400 req/s from
the balancer's namespace. The scenarios share one fleet and run in order; each
leaves every host ready and in rotation. Each prints its figures.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from tests.fleet.fleet import CHECK_MS, DRAIN_DELAY, HAPROXY_PORT, NGINX_PORT, Fleet
from tests.supervisor.harness import scaled, wait_for

RATE = 400
CONNECTIONS = 14  # the load client's: 12 keep-alive, 2 new per request (clients.py)


def after(fleet: Fleet, changes: str, name: str, state: str, since: float) -> float:
    """When ``name`` first reached ``state`` after ``since`` (waits for it, bounded)."""
    log = fleet.watch.haproxy if changes == "haproxy" else fleet.watch.masters
    return wait_for(lambda: fleet.watch.first(log, name, state, since), 20,
                    f"{changes} to see {name} {state}")  # fmt: skip


def settled(fleet: Fleet) -> None:
    for host in fleet.hosts:
        fleet.wait_health(host.name, "ready")
    wait_for(lambda: len(fleet.in_rotation()) == 3, 10, "all hosts in rotation")


def roll_one(fleet: Fleet, name: str, version: str, haproxy: bool) -> dict[str, float]:
    """drain -> deploy + HUP (ctl reload) -> ready -> (haproxy) back in rotation."""
    start = time.monotonic()
    drained = fleet.ctl(name, "drain")
    assert drained.returncode == 0, drained.stdout + drained.stderr
    figures = {"ctl_drain_s": time.monotonic() - start}
    draining = after(fleet, "master", name, "draining", start)
    if haproxy:  # from the master's withdrawal (seen within 20 ms) to haproxy's DOWN
        figures["out_s"] = after(fleet, "haproxy", name, "DOWN", start) - draining
    fleet.deploy(name, version)
    reloaded = fleet.ctl(name, "reload")
    assert reloaded.returncode == 0, reloaded.stdout + reloaded.stderr
    ready = after(fleet, "master", name, "ready", start)
    figures["reload_s"] = ready - start - figures["ctl_drain_s"]
    if haproxy:
        figures["back_in_s"] = after(fleet, "haproxy", name, "UP", ready) - ready
    figures["end"] = max(ready, ready + figures.get("back_in_s", 0.0))
    return figures


def responses_after(result: dict[str, Any], moment: float) -> Counter[str]:
    return Counter(version for at, outcome, version, _ in result["timeline"]
                   if at > moment and not outcome)  # fmt: skip


def report(name: str, result: dict[str, Any], **figures: Any) -> None:
    rate = result["sent"] / result["seconds"]
    print(f"\nFLEET {name}: sent {result['sent']} failed {len(result['failures'])} "
          f"({rate:.0f} req/s over {result['seconds']:.1f} s); "
          + "; ".join(f"{k} {v}" for k, v in figures.items()))  # fmt: skip


def roll(fleet: Fleet, version: str, port: int, haproxy: bool, label: str) -> None:
    settled(fleet)
    with fleet.client("load", port, rate=RATE) as load:
        load.wait_sent(RATE)
        steps = {}
        for host in fleet.hosts:
            steps[host.name] = roll_one(fleet, host.name, version, haproxy)
        # Every host serves ``version`` now, whatever the load's result: the
        # next scenarios start from it.
        fleet.version = version
        end = max(step["end"] for step in steps.values())
        load.wait_sent(RATE)
        result = load.stop()
    rounded = {name: {k: round(v, 2) for k, v in step.items() if k != "end"}
               for name, step in steps.items()}  # fmt: skip
    report(label, result, steps=rounded)
    assert result["failures"] == [], result["failures"][:5]
    assert result["sent"] / result["seconds"] >= 300
    after_roll = responses_after(result, end)
    assert set(after_roll) == {version} and after_roll[version] >= RATE // 2, after_roll
    if haproxy:
        for step in steps.values():
            assert step["out_s"] < DRAIN_DELAY  # out of rotation before the drain ended


def test_rolling_deploy_through_haproxy_fails_no_request(fleet: Fleet) -> None:
    roll(fleet, "v2", HAPROXY_PORT, haproxy=True, label="roll/haproxy")


def test_a_host_killed_is_taken_out_and_back(fleet: Fleet) -> None:
    settled(fleet)
    before = fleet.haproxy_stats()["BACKEND"]
    with fleet.client("load", HAPROXY_PORT, rate=RATE) as load:
        load.wait_sent(RATE)
        killed_at = time.monotonic()
        fleet.kill9("h2")
        out = after(fleet, "haproxy", "h2", "DOWN", killed_at)
        load.wait_sent(RATE)
        restarted = time.monotonic()
        fleet.start_master("h2")
        starting = after(fleet, "master", "h2", "starting", restarted)
        ready = after(fleet, "master", "h2", "ready", starting)
        back = after(fleet, "haproxy", "h2", "UP", ready)
        load.wait_sent(RATE)
        result = load.stop()
    stats = fleet.haproxy_stats()["BACKEND"]
    retries = int(stats["wretr"]) - int(before["wretr"])
    redispatched = int(stats["wredis"]) - int(before["wredis"])
    failed = len(result["failures"])
    report("kill -9/haproxy", result, out_s=round(out - killed_at, 2),
           restart_to_ready_s=round(ready - restarted, 2), back_in_s=round(back - ready, 2),
           haproxy_retries=retries, haproxy_redispatches=redispatched)  # fmt: skip
    # Out within fall (2) checks, plus the interval's phase and a check's own time.
    assert out - killed_at < scaled(3 * CHECK_MS / 1000 + 0.25)
    # A request in flight on the killed host is replayed by haproxy (retry-on
    # conn-failure empty-response); only one whose response had started could fail,
    # at most one per client connection.
    assert failed <= CONNECTIONS, result["failures"]
    served = Counter(host for at, outcome, _, host in result["timeline"] if at > back + 0.5)
    assert fleet.host("h2").address in served, served


def test_a_broken_deploy_stays_on_one_host_on_the_old_code(fleet: Fleet) -> None:
    settled(fleet)
    old = fleet.version
    with fleet.client("load", HAPROXY_PORT, rate=RATE) as load:
        load.wait_sent(RATE)
        start = time.monotonic()
        fleet.deploy("h3", "broken")
        refused = fleet.ctl("h3", "reload")
        assert refused.returncode == 1, refused.stdout
        degraded = after(fleet, "master", "h3", "degraded", start)
        out = after(fleet, "haproxy", "h3", "DOWN", start)
        status = fleet.ctl("h3", "status")
        served = {fleet.direct("h3").split()[0] for _ in range(6)}  # out of rotation, still up
        load.wait_sent(RATE)
        fleet.deploy("h3", old)
        fixed = fleet.ctl("h3", "reload")
        assert fixed.returncode == 0, fixed.stdout
        ready = after(fleet, "master", "h3", "ready", degraded)
        back = after(fleet, "haproxy", "h3", "UP", ready)
        load.wait_sent(RATE)
        result = load.stop()
    report("broken deploy/haproxy", result, degraded_to_out_s=round(out - degraded, 2),
           fixed_ready_to_back_in_s=round(back - ready, 2))  # fmt: skip
    assert "degraded, 2/2 workers ready" in status.stdout
    assert "SyntaxError" in fleet.log("h3")
    assert served == {old}, served
    assert result["failures"] == []
    assert set(responses_after(result, start)) == {old}  # nothing of the broken code


def test_websockets_close_1001_only_on_the_host_being_rolled(fleet: Fleet) -> None:
    settled(fleet)
    names = {host.address: host.name for host in fleet.hosts}
    with fleet.client("ws", HAPROXY_PORT, count=6) as ws:
        records = ws.wait(lambda p: len(p) == 6, "6 WebSockets open")
        where = Counter(names[r["host"]] for r in records)
        assert set(where) == {"h1", "h2", "h3"}, where
        rolled: set[str] = set()
        for host in fleet.hosts:
            roll_one(fleet, host.name, "v3", haproxy=True)
            rolled.add(host.name)
            records = ws.wait(
                lambda p: all(r["code"] is not None for r in p if names[r["host"]] in rolled),
                f"the WebSockets on {host.name} closed",
            )  # fmt: skip
            codes = {(names[r["host"]], r["code"]) for r in records}
            assert codes == {(h, 1001 if h in rolled else None) for h in where}, codes
    fleet.version = "v3"
    print(
        f"\nFLEET websockets/haproxy: {dict(where)} per host, each closed 1001 "
        "when its host rolled, the others open"
    )


def test_rolling_deploy_through_nginx_fails_no_request(fleet: Fleet) -> None:
    roll(fleet, "v4", NGINX_PORT, haproxy=False, label="roll/nginx")
