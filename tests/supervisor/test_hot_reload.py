"""``--reload``: an edit reloads the workers the rolling way, debounced."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.supervisor.harness import APP, Load, master, wait_for


@pytest.mark.slow
def test_edit_is_served_within_two_seconds_and_a_burst_reloads_once(tmp_path: Path) -> None:
    with master(tmp_path, "--reload", workers=4) as server:
        wait_for(lambda: "Watching" in server.log(), 5, "the watcher")
        with Load(server.port, rate=200, max_seconds=60) as load:
            load.wait_sent(200)
            edited = time.monotonic()
            (tmp_path / "app.py").write_text(APP.replace('"v1"', '"v2"'))
            wait_for(lambda: server.get()[1].startswith("v2"), 2, "the edit served")
            served_after = time.monotonic() - edited
            wait_for(lambda: "Reload complete" in server.log(), 10, "the reload to complete")
            load.wait_sent(load.result.sent + 200)
            result = load.stop()
        assert result.failures == [], result.failures[:10]
        assert server.log().count("Reloading (files changed)") == 1

        for i in range(50):  # a burst of writes
            (tmp_path / "app.py").write_text(APP.replace('"v1"', f'"v{i + 3}"'))
        wait_for(lambda: server.log().count("Reload complete") == 2, 10, "one more reload")
        assert all(server.get()[1].startswith("v52") for _ in range(8))
        assert server.log().count("Reloading (files changed)") == 2
        print(f"\n--reload: edit served after {served_after:.2f} s, {result.sent} requests, "
              f"{len(result.failures)} failed")  # fmt: skip
