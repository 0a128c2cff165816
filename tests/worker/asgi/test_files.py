"""File bodies (``http.response.pathsend``, ``http.response.zerocopysend``) in
``HTTPStream``, against a recording connection: what is offered to the host's
``send_file``, what is read and sent as data instead, how the head is framed,
and what a bad message or a short file does.

The recording host (``test_http.RecordingHost``) writes ``native`` bytes of
each file itself, as the I/O layer's ``sendfile`` would (0: it cannot).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from hypercorn.worker.asgi import files
from hypercorn.worker.asgi.http import ResponseState
from hypercorn.worker.protocol.events import (
    ResponseData,
    ResponseEnded,
    ResponseStarted,
    StreamAborted,
)
from tests.worker.asgi.test_http import RecordingHost, make_stream

pytestmark = pytest.mark.asyncio

START: Any = {"type": "http.response.start", "status": 200, "headers": [(b"x", b"1")]}
CONTENT = bytes(range(256)) * 1024 + b"tail"  # 256 KiB and a bit: several read chunks


@pytest.fixture
def path(tmp_path: Path) -> Path:
    file = tmp_path / "content.bin"
    file.write_bytes(CONTENT)
    return file


def body_of(host: RecordingHost) -> bytes:
    return b"".join(e.data for e in host.flat() if isinstance(e, ResponseData))


def head_of(host: RecordingHost) -> dict[bytes, bytes]:
    start = host.flat()[0]
    assert isinstance(start, ResponseStarted)
    return dict(start.headers)


class TestPathSend:
    async def test_the_file_is_read_and_sent_where_the_host_cannot_send_it(
        self, path: Path
    ) -> None:
        stream, host, _ = make_stream()
        await stream.send(START)
        await stream.send({"type": "http.response.pathsend", "path": str(path)})
        assert host.files == [(0, len(CONTENT))]
        assert head_of(host)[b"content-length"] == b"%d" % len(CONTENT)
        assert body_of(host) == CONTENT
        pieces = [e for e in host.flat() if isinstance(e, ResponseData)]
        assert len(pieces) == -(-len(CONTENT) // files.READ_CHUNK)  # read in pieces
        assert isinstance(host.flat()[-1], ResponseEnded)
        assert stream.state is ResponseState.COMPLETE
        assert stream.body_size == len(CONTENT)

    async def test_what_the_host_sent_itself_is_not_read_again(self, path: Path) -> None:
        stream, host, _ = make_stream()
        host.native = 100_000  # the I/O layer wrote this much, then stopped
        await stream.send(START)
        await stream.send({"type": "http.response.pathsend", "path": str(path)})
        assert body_of(host) == CONTENT[100_000:]
        assert stream.body_size == len(CONTENT)

    async def test_a_file_longer_than_announced_is_sent_up_to_the_announced_length(
        self, path: Path
    ) -> None:
        stream, host, _ = make_stream()
        await stream.send({**START, "headers": [(b"content-length", b"1000")]})
        await stream.send({"type": "http.response.pathsend", "path": str(path)})
        assert host.files == [(0, 1000)]
        assert body_of(host) == CONTENT[:1000]
        assert isinstance(host.flat()[-1], ResponseEnded)

    async def test_head_sends_no_file_bytes(self, path: Path) -> None:
        stream, host, _ = make_stream(method="HEAD")
        await stream.send(START)
        await stream.send({"type": "http.response.pathsend", "path": str(path)})
        assert host.files == [] and body_of(host) == b""
        assert isinstance(host.flat()[-1], ResponseEnded)

    async def test_the_open_file_is_closed_once_sent(self, path: Path) -> None:
        before = set(os.listdir("/proc/self/fd"))
        stream, _, _ = make_stream()
        await stream.send(START)
        await stream.send({"type": "http.response.pathsend", "path": str(path)})
        assert set(os.listdir("/proc/self/fd")) <= before

    @pytest.mark.parametrize(
        ("name", "error"),
        [("missing", FileNotFoundError), ("dir", ValueError), ("fifo", ValueError),
         ("loop", OSError), ("relative", ValueError), (None, TypeError)],
    )  # fmt: skip
    async def test_a_bad_path_raises_before_anything_is_sent(
        self, tmp_path: Path, name: str | None, error: type[Exception]
    ) -> None:
        (tmp_path / "dir").mkdir()
        os.mkfifo(tmp_path / "fifo")  # opening it must not wait for a writer
        (tmp_path / "loop").symlink_to(tmp_path / "loop")
        target: Any = {"relative": "content.bin", None: None}.get(name, str(tmp_path / str(name)))
        stream, host, _ = make_stream()
        await stream.send(START)
        with pytest.raises(error):
            await stream.send({"type": "http.response.pathsend", "path": target})
        assert host.sent == [] and stream.state is ResponseState.STARTED  # a 500 can follow

    async def test_a_file_shorter_than_announced_aborts_the_response(self, path: Path) -> None:
        stream, host, ctx = make_stream()
        logged: list[str] = []

        async def error(message: str, *args: Any) -> None:
            logged.append(message % args)

        ctx.log.error = error  # type: ignore[method-assign]
        await stream.send({**START, "headers": [(b"content-length", b"%d" % (len(CONTENT) + 9))]})
        await stream.send({"type": "http.response.pathsend", "path": str(path)})
        assert body_of(host) == CONTENT
        assert isinstance(host.flat()[-1], StreamAborted)
        assert stream.state is ResponseState.COMPLETE
        assert logged == ["File body of GET / ended 9 bytes short: response aborted"]


class TestZeroCopySend:
    async def test_offset_and_count_pick_the_range(self, path: Path) -> None:
        stream, host, _ = make_stream()
        await stream.send(START)
        with path.open("rb") as file:
            message = {"type": "http.response.zerocopysend", "file": file, "offset": 10}
            await stream.send({**message, "count": 5000})
            assert file.tell() == 0  # an explicit offset leaves the position alone
        assert head_of(host)[b"content-length"] == b"5000"
        assert body_of(host) == CONTENT[10:5010]
        assert stream.state is ResponseState.COMPLETE

    async def test_without_an_offset_it_reads_on_from_the_position_and_moves_it(
        self, path: Path
    ) -> None:
        stream, host, _ = make_stream()
        await stream.send(START)
        with path.open("rb") as file:
            file.seek(100)
            for _ in range(2):
                message = {"type": "http.response.zerocopysend", "file": file.fileno()}
                await stream.send({**message, "count": 50, "more_body": True})
            assert file.tell() == 200
            await stream.send({"type": "http.response.body", "body": b"!"})
        assert b"content-length" not in head_of(host)  # more was to come: chunked
        assert body_of(host) == CONTENT[100:200] + b"!"
        assert stream.state is ResponseState.COMPLETE

    async def test_it_mixes_with_body_messages_and_defaults_to_the_end(self, path: Path) -> None:
        stream, host, _ = make_stream()
        await stream.send(START)
        await stream.send({"type": "http.response.body", "body": b"<", "more_body": True})
        with path.open("rb") as file:
            file.seek(len(CONTENT) - 10)
            await stream.send({"type": "http.response.zerocopysend", "file": file})
        assert body_of(host) == b"<" + CONTENT[-10:]
        assert isinstance(host.flat()[-1], ResponseEnded)

    async def test_a_pipe_is_refused(self) -> None:
        stream, host, _ = make_stream()
        read, write = os.pipe()  # a read would block the loop until the writer wrote
        try:
            await stream.send(START)
            with pytest.raises(ValueError):
                await stream.send({"type": "http.response.zerocopysend", "file": read})
        finally:
            os.close(read)
            os.close(write)
        assert host.sent == []

    async def test_a_count_past_the_end_aborts(self, path: Path) -> None:
        stream, host, ctx = make_stream()
        ctx.log.error = _quiet  # type: ignore[method-assign]
        await stream.send(START)
        with path.open("rb") as file:
            message = {"type": "http.response.zerocopysend", "file": file, "offset": 4}
            await stream.send({**message, "count": len(CONTENT)})
        assert body_of(host) == CONTENT[4:]
        assert isinstance(host.flat()[-1], StreamAborted)

    @pytest.mark.parametrize(
        ("fields", "error"),
        [({"file": "name"}, TypeError), ({"offset": -1}, ValueError),
         ({"count": 1.5}, TypeError), ({"file": 1_000_000}, OSError)],
    )  # fmt: skip
    async def test_bad_fields_raise(
        self, path: Path, fields: dict[str, Any], error: type[Exception]
    ) -> None:
        stream, host, _ = make_stream()
        await stream.send(START)
        with path.open("rb") as file, pytest.raises(error):
            await stream.send({"type": "http.response.zerocopysend", "file": file, **fields})
        assert host.sent == []


async def test_both_are_advertised() -> None:
    stream, _, _ = make_stream()
    assert {"http.response.pathsend", "http.response.zerocopysend"} <= set(
        stream.scope["extensions"]
    )


async def _quiet(message: str, *args: Any) -> None:
    """A logger's ``error`` that keeps the test output clean."""
