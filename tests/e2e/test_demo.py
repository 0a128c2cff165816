"""``make run``'s demo answers curl."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.cli_server import cli_server

REPO = Path(__file__).resolve().parent.parent.parent


def test_curl_against_the_demo() -> None:
    with cli_server("examples/demo.py:app", "--access-logfile", "-", cwd=REPO) as server:
        result = subprocess.run(
            ["curl", "-sS", "-i", "--max-time", "10", f"{server.url}/hello?x=1"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 0, result.stderr
    head, _, body = result.stdout.partition("\n\n")  # text mode turns CRLF into LF
    assert head.startswith("HTTP/1.1 200")
    assert "x-demo: hypercorn" in head.lower()
    seen = json.loads(body)["request"]
    assert seen["path"] == "/hello" and seen["query_string"] == "x=1"
    assert seen["http_version"] == "1.1" and seen["client"][0] == "127.0.0.1"
