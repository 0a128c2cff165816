"""Test doubles that make the I/O layer deterministic: a transport in memory
and an event loop on a virtual clock (trio's memory streams and autojump
``MockClock`` are the model).

``VirtualClockLoop`` is a real asyncio loop whose ``time()`` only moves when
nothing is ready to run: it then jumps to the next timer. So ``await
asyncio.sleep(5)`` returns at once, after every timer due in those five
virtual seconds has fired in order, and a test reads what the connection did
at any instant without sleeping.
"""

from __future__ import annotations

import asyncio
from typing import Any


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """An asyncio loop on a virtual clock that jumps to the next timer when idle."""

    def __init__(self) -> None:
        super().__init__()
        self._virtual_now = 1000.0

    def time(self) -> float:
        return self._virtual_now

    def _run_once(self) -> None:
        ready: Any = self._ready  # type: ignore[attr-defined]
        if not ready and not self._stopping:  # type: ignore[attr-defined]
            scheduled: Any = self._scheduled  # type: ignore[attr-defined]
            due = [handle.when() for handle in scheduled if not handle.cancelled()]
            if due:
                self._virtual_now = max(self._virtual_now, min(due))
        super()._run_once()  # type: ignore[misc]


class FakeTransport:
    """An ``asyncio.Transport`` in memory: what the server wrote, and how it closed."""

    def __init__(self, *, peer: tuple[str, int] = ("192.0.2.1", 40000)) -> None:
        self.written: list[bytes] = []
        self.eof_written = False
        self.closed = False
        self.aborted = False
        self.reading = True
        self.peer = peer
        self.protocol: asyncio.Protocol | None = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": self.peer}.get(name, default)

    def take(self) -> bytes:
        """Return (and forget) what the server wrote."""
        data = b"".join(self.written)
        self.written.clear()
        return data

    def write(self, data: bytes) -> None:
        assert not self.closed and not self.eof_written, "write after close"
        self.written.append(data)

    def writelines(self, pieces: list[bytes]) -> None:
        """One call, one write: what the kernel would take in one ``writev``."""
        self.write(b"".join(pieces))

    def write_eof(self) -> None:
        self.eof_written = True

    def can_write_eof(self) -> bool:
        return True

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.protocol is not None:
                asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def abort(self) -> None:
        self.aborted = True
        self.close()

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Flow control is driven by the test through pause_writing/resume_writing."""

    def get_write_buffer_size(self) -> int:
        return 0
