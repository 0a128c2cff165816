"""``--reload``: an edit reloads the workers the rolling way, debounced."""

from __future__ import annotations

import http.client
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


def test_a_config_file_outside_the_app_is_watched_and_read_again(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    config = tmp_path_factory.mktemp("etc") / "hypercorn.toml"
    config.write_text("include_server_header = true\n")
    with master(tmp_path, "--reload", "-c", str(config), workers=2) as server:
        wait_for(lambda: "Watching" in server.log(), 5, "the watcher")
        assert _server_header(server.port) == "hypercorn-h11"
        (tmp_path / "notes.txt").write_text("not watched")  # beside the app: not a *.py
        config.write_text("include_server_header = false\n")
        wait_for(lambda: _server_header(server.port) is None, 10, "the new config served")
        wait_for(lambda: "Reload complete" in server.log(), 10, "the reload to complete")
        assert server.log().count("Reloading (files changed)") == 1


def _server_header(port: int) -> str | None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        response.read()
        return response.getheader("server")
    finally:
        connection.close()
