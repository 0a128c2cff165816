"""``--metrics-bind``: the master's Prometheus endpoint, summed over real workers."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from tests.supervisor.harness import APP, master, request, scaled, wait_for

# The harness app, with a path that answers 404.
METRICS_APP = APP.replace(
    '    body = f"{VERSION} {os.getpid()}".encode()\n',
    '    body = f"{VERSION} {os.getpid()}".encode()\n'
    '    if path == "/missing":\n'
    '        await send({"type": "http.response.start", "status": 404,\n'
    '                    "headers": [(b"content-length", b"0")]})\n'
    '        await send({"type": "http.response.body"})\n'
    "        return\n",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> tuple[str, dict[str, Metric]]:
    """GET /metrics; returns the raw text and the parsed families by name."""
    with socket.create_connection(("127.0.0.1", port), timeout=scaled(10)) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):  # the endpoint closes after its response
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    assert b"content-type: text/plain; version=0.0.4" in head
    text = body.decode()
    return text, {family.name: family for family in text_string_to_metric_families(text)}


def value(families: dict[str, Metric], family: str, sample: str, **labels: str) -> float:
    for item in families[family].samples:
        if item.name == sample and item.labels == labels:
            return float(item.value)
    raise AssertionError(f"no sample {sample} {labels} in {family}")


def by_status(families: dict[str, Metric]) -> dict[str, float]:
    return {
        item.labels["status"]: item.value
        for item in families["hypercorn_requests"].samples
        if item.name == "hypercorn_requests_total"
    }


def test_counters_match_the_requests_and_survive_a_reload(tmp_path: Path) -> None:
    port = free_port()
    args = ("--metrics-bind", f"127.0.0.1:{port}")
    with master(tmp_path, *args, workers=2, app_source=METRICS_APP) as server:
        _, families = scrape(port)
        assert value(families, "hypercorn_reloads", "hypercorn_reloads_total") == 0
        for path, expected in [("/", 200)] * 7 + [("/missing", 404)] * 3:
            assert request(server.port, path)[0] == expected

        def carried() -> tuple[str, dict[str, Metric]] | None:
            text, families = scrape(port)
            counts = by_status(families)
            return (text, families) if counts["2xx"] >= 7 and counts["4xx"] >= 3 else None

        text, families = wait_for(carried, 10, "the heartbeats to carry the counts")
        assert by_status(families) == {"1xx": 0, "2xx": 7, "3xx": 0, "4xx": 3, "5xx": 0}
        histogram = "hypercorn_request_duration_seconds"
        assert value(families, histogram, f"{histogram}_count") == 10
        assert value(families, histogram, f"{histogram}_bucket", le="+Inf") == 10
        assert 0 < value(families, histogram, f"{histogram}_sum") < scaled(10)
        bounds = [s.value for s in families[histogram].samples if s.name.endswith("_bucket")]
        assert bounds == sorted(bounds)  # cumulative
        assert value(families, "hypercorn_workers", "hypercorn_workers") == 2
        assert value(families, "hypercorn_worker_restarts", "hypercorn_worker_restarts_total") == 0
        assert "# TYPE hypercorn_request_duration_seconds histogram" in text
        print("\n" + text)

        old = server.workers()
        server.kill(signal.SIGHUP)
        wait_for(lambda: not (old & server.workers()), 30, "every old worker gone")
        server.wait_ready(2)
        _, families = scrape(port)
        assert value(families, "hypercorn_reloads", "hypercorn_reloads_total") == 1
        # The old workers' counts are kept: nothing goes backwards.
        assert by_status(families) == {"1xx": 0, "2xx": 7, "3xx": 0, "4xx": 3, "5xx": 0}
        assert value(families, histogram, f"{histogram}_count") == 10

        assert request(server.port, "/")[0] == 200
        wait_for(lambda: by_status(scrape(port)[1])["2xx"] == 8, 10, "the new worker's count")

        # A worker killed from outside is a restart; its counts stay in the totals.
        os.kill(next(iter(server.workers())), signal.SIGKILL)
        restarts = "hypercorn_worker_restarts"

        def restarted() -> bool:
            families = scrape(port)[1]
            return value(families, restarts, f"{restarts}_total") == 1

        wait_for(restarted, 10, "the restart to be counted")
        assert by_status(scrape(port)[1])["2xx"] == 8


def test_other_paths_and_methods(tmp_path: Path) -> None:
    sock_path = tmp_path / "metrics.sock"
    with master(tmp_path, "--metrics-bind", f"unix:{sock_path}", workers=1):
        for raw, status in [
            (b"GET /other HTTP/1.1\r\n\r\n", b"404"),
            (b"POST /metrics HTTP/1.1\r\ncontent-length: 0\r\n\r\n", b"405"),
            (b"nonsense\r\n\r\n", b"400"),
            (b"GET /metrics?x=1 HTTP/1.0\r\n\r\n", b"200"),
        ]:
            with socket.socket(socket.AF_UNIX) as client:
                client.settimeout(scaled(10))
                client.connect(str(sock_path))
                client.sendall(raw)
                data = b""
                while chunk := client.recv(65536):
                    data += chunk
            assert data.split(b" ", 2)[1] == status, (raw, data[:80])
    assert not sock_path.exists()
