"""The scenarios, the figures collected, and the markdown table made of them."""

# ruff: noqa: RUF001  (the table is typeset: en dashes and multiplication signs)

from __future__ import annotations

import dataclasses
import statistics
import time

from loads import Result
from peers import OURS


@dataclasses.dataclass(frozen=True)
class Scenario:
    title: str
    unit: str
    higher_is_better: bool = True


SCENARIOS = {
    "keepalive": Scenario("HTTP/1.1 keep-alive hello (wrk -t1 -c64)", "req/s"),
    "unique": Scenario("HTTP/1.1 keep-alive hello, every head different", "req/s"),
    "framework": Scenario("FastAPI JSON endpoint, keep-alive (wrk -t1 -c64)", "req/s"),
    "close": Scenario("HTTP/1.1 Connection: close hello", "req/s"),
    "big": Scenario("HTTP/1.1 64 KiB responses", "req/s"),
    "file": Scenario("HTTP/1.1 1 MiB file: by pathsend where offered, else streamed", "req/s"),
    "upload": Scenario("HTTP/1.1 1 MiB uploads, read fully", "req/s"),
    "h2c": Scenario("HTTP/2 h2c (h2load -c16 -m32)", "req/s"),
    "h2tls": Scenario("HTTP/2 TLS (h2load -c16 -m32)", "req/s"),
    "websocket": Scenario("WebSocket echo, 16 conns, 32 B round trips", "msg/s"),
    "wsgi": Scenario("WSGI hello (wrk -t1 -c64)", "req/s"),
    "rss": Scenario("worker peak RSS after the keep-alive run", "MiB", False),
    "startup": Scenario("start to first response", "ms", False),
    "hup": Scenario("HUP to last old worker gone, 4 workers", "ms", False),
}


def fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}"


Row = tuple[str, str]
"""A row of the table: (scenario key, the servers' Python version)."""


@dataclasses.dataclass
class Table:
    peers: list[str]
    results: dict[Row, dict[str, list[Result]]] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)

    def add(self, row: Row, peer: str, result: Result) -> None:
        self.results.setdefault(row, {}).setdefault(peer, []).append(result)

    def note(self, text: str) -> None:
        """A line under the table (how a server served a scenario)."""
        if text not in self.notes:
            self.notes.append(text)

    def failed(self) -> bool:
        return any(
            r.failures for by_peer in self.results.values() for rs in by_peer.values() for r in rs
        )

    def _median(self, key: Row, peer: str) -> float | None:
        rs = self.results.get(key, {}).get(peer)
        if not rs or any(r.failures for r in rs):
            return None
        return statistics.median(r.value for r in rs)

    def _cell(self, key: Row, peer: str) -> str:
        rs = self.results.get(key, {}).get(peer)
        if not rs:
            return "—"
        failures = sum(r.failures for r in rs)
        if failures:
            note = next((r.note for r in rs if r.note), "")
            return f"FAILED: {failures} errors" + (f" ({note})" if note else "")
        values = [r.value for r in rs]
        median = statistics.median(values)
        text = fmt(median)
        if len(values) > 1:
            text += f" ({fmt(min(values))}–{fmt(max(values))})"
        ours = self._median(key, OURS)
        if peer != OURS and ours is not None and median:
            text += f" **{ours / median:.2f}×**"
        return text

    def render(self, settings: str) -> tuple[str, list[str]]:
        """The markdown document and one summary line per scenario."""
        peers = [p for p in self.peers if any(p in by_peer for by_peer in self.results.values())]
        out = [
            "# Benchmarks: ours against the peers",
            "",
            f"Run {time.strftime('%Y-%m-%d %H:%M')}: {settings}.",
            "",
            "One worker each, server pinned to CPU 1 and load to CPU 0; rounds interleaved "
            "across servers. Each row ran every server on the Python of its *py* column "
            "(a server that does not install there has no figure). Cells: median (min–max) "
            "over the rounds; **r×** is ours ÷ that peer's median on the same Python (above "
            "1 is ours ahead where higher is better, below 1 where lower is better). A cell "
            "with errors or non-2xx answers is FAILED. Figures are noisy on a shared 2-CPU "
            "machine: compare them only within one run.",
            "",
            "| scenario | py | unit | better | " + " | ".join(peers) + " |",
            "|---|---|---|---|" + "---|" * len(peers),
        ]
        lines = []
        pythons = list(dict.fromkeys(python for _, python in self.results))
        for key, scenario in SCENARIOS.items():
            for python in pythons:
                row = (key, python)
                if row not in self.results:
                    continue
                better = "higher" if scenario.higher_is_better else "lower"
                cells = [self._cell(row, peer) for peer in peers]
                out.append(
                    f"| {scenario.title} | {python} | {scenario.unit} | {better} | "
                    + " | ".join(cells)
                    + " |"
                )
                parts = [
                    f"{peer} {self._cell(row, peer).replace('**', '')}"
                    for peer in peers
                    if peer in self.results[row]
                ]
                lines.append(
                    f"{scenario.title}, Python {python} [{scenario.unit}, {better} is better]: "
                    + "; ".join(parts)
                )
        if self.notes:
            out += ["", *(f"- {note}" for note in self.notes)]
        out += ["", "## Summary", "", *(f"- {line}" for line in lines), ""]
        return "\n".join(out), lines
