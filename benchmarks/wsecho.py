"""A bounded WebSocket echo client: C connections x N round trips of S bytes.

Each connection sends one masked binary message, waits for its echo, checks
it byte for byte, and sends the next, N times; then it closes. Prints one line
``messages=M errors=E seconds=T`` (round trips completed, failures, wall
time). Kept lean (an ``asyncio.Protocol``, one prebuilt frame) so that the
client is not what is measured; uses uvloop when it is importable.

    python wsecho.py HOST PORT [-c 16] [-n 2000] [-s 32] [--timeout 60]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import sys
import time


class _Echo(asyncio.Protocol):
    def __init__(self, frame: bytes, expected: bytes, count: int, done: asyncio.Future[int]):
        self.frame = frame
        self.expected = expected
        self.left = count
        self.done = done
        self.buf = b""
        self.upgraded = False
        self.transport: asyncio.Transport | None = None
        self.completed = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        key = base64.b64encode(os.urandom(16))
        self.transport.write(
            b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        assert self.transport is not None
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self._finish(False)
                return
            self.upgraded = True
            buf = buf[end + 4 :]
            self.transport.write(self.frame)
        size = len(self.expected)
        while len(buf) >= size:
            if buf[:size] != self.expected:
                self._finish(False)
                return
            buf = buf[size:]
            self.completed += 1
            self.left -= 1
            if not self.left:
                self._finish(True)
                return
            self.transport.write(self.frame)
        self.buf = buf

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(self.completed)

    def _finish(self, ok: bool) -> None:
        assert self.transport is not None
        if ok:
            self.transport.write(b"\x88\x82\x00\x00\x00\x00\x03\xe8")  # close 1000, zero mask
        if not self.done.done():
            self.done.set_result(self.completed)
        self.transport.close()


async def _run(host: str, port: int, conns: int, count: int, size: int) -> tuple[int, int]:
    loop = asyncio.get_running_loop()
    payload = os.urandom(size)
    assert size < 126
    mask = b"\x00\x00\x00\x00"  # a zero mask leaves the payload as it is
    frame = bytes((0x82, 0x80 | size)) + mask + payload
    expected = bytes((0x82, size)) + payload
    futures = [loop.create_future() for _ in range(conns)]
    for future in futures:
        await loop.create_connection(
            lambda future=future: _Echo(frame, expected, count, future), host, port
        )
    done = await asyncio.gather(*futures)
    return sum(done), sum(1 for n in done if n != count)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("-c", type=int, default=16)
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("-s", type=int, default=32)
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()
    runner = asyncio.run
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        pass
    start = time.perf_counter()
    try:
        messages, failed = runner(
            asyncio.wait_for(_run(args.host, args.port, args.c, args.n, args.s), args.timeout)
        )
    except (OSError, TimeoutError) as exc:
        print(f"messages=0 errors={args.c} seconds=0 ({exc!r})")
        return 1
    seconds = time.perf_counter() - start
    print(f"messages={messages} errors={failed} seconds={seconds:.4f}")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
