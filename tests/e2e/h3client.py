"""A small HTTP/3 client on aioquic (as a library), for the tests.

``h3_connect(port)`` yields an ``H3Client`` connected to 127.0.0.1:port over
QUIC (certificate not verified). ``request`` sends one request and returns a
``Response`` with the interim (1xx) heads, the final head, the body, the
trailers and the body's arrival in chunks; ``websocket`` opens an RFC 9220
extended CONNECT and returns the stream's id; ``ws_send``/``ws_receive`` speak
WebSocket frames on it (wsproto, client side, with no HTTP handshake).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import wsproto.connection
import wsproto.events
from aioquic._buffer import Buffer, BufferReadError
from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, FrameType, H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived, PushPromiseReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, QuicEvent, StreamDataReceived, StreamReset

from tests.e2e.conftest import scaled

Headers = list[tuple[bytes, bytes]]
SERVER_CONTROL_STREAM = 3  # the first server-initiated unidirectional stream


@dataclass
class Response:
    status: int = 0
    headers: Headers = field(default_factory=list)
    interim: list[Headers] = field(default_factory=list)
    body: bytes = b""
    chunks: list[bytes] = field(default_factory=list)
    trailers: Headers = field(default_factory=list)
    reset: int | None = None
    pushes: list[Headers] = field(default_factory=list)

    def header(self, name: bytes) -> bytes | None:
        return next((v for n, v in self.headers if n == name), None)


class _Stream:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.response = Response()
        self.done: asyncio.Future[Response] = loop.create_future()
        self.data: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.head: asyncio.Future[Response] = loop.create_future()


class H3Client(QuicConnectionProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self._control = b""  # the server's control stream, raw
        self.streams: dict[int, _Stream] = {}
        self.terminated: asyncio.Future[ConnectionTerminated] = self._loop.create_future()
        self.goaway = False

    @property
    def goaway_ids(self) -> list[int]:
        """The ids of the GOAWAY frames on the server's control stream (aioquic skips them)."""
        buf = Buffer(data=self._control)
        ids: list[int] = []
        with contextlib.suppress(BufferReadError):
            buf.pull_uint_var()  # the stream type
            while not buf.eof():
                frame_type, length = buf.pull_uint_var(), buf.pull_uint_var()
                payload = buf.pull_bytes(length)
                if frame_type == FrameType.GOAWAY:
                    ids.append(Buffer(data=payload).pull_uint_var())
        return ids

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, StreamDataReceived) and event.stream_id == SERVER_CONTROL_STREAM:
            self._control += event.data
        if isinstance(event, ConnectionTerminated) and not self.terminated.done():
            self.terminated.set_result(event)
            for stream in self.streams.values():
                for future in (stream.done, stream.head):
                    if not future.done():
                        future.set_exception(ConnectionError("connection terminated"))
                        future.exception()  # raised to whoever awaits it; never logged
                stream.data.put_nowait(None)
        if isinstance(event, StreamReset) and (stream := self.streams.get(event.stream_id)):
            stream.response.reset = event.error_code
            if not stream.done.done():
                stream.done.set_result(stream.response)
            stream.data.put_nowait(None)
        for h3_event in self.h3.handle_event(event):
            self._h3_event(h3_event)

    def _h3_event(self, event: H3Event) -> None:
        stream = self.streams.get(getattr(event, "stream_id", -1))
        if isinstance(event, PushPromiseReceived):
            parent = self.streams.get(event.stream_id)
            if parent is not None:
                parent.response.pushes.append(list(event.headers))
            return
        if stream is None:
            return
        response = stream.response
        if isinstance(event, HeadersReceived):
            status = dict(event.headers).get(b":status")
            if status is not None and status.startswith(b"1"):
                response.interim.append(list(event.headers))
            elif response.status == 0:
                response.status = int(status or 0)
                response.headers = [(n, v) for n, v in event.headers if not n.startswith(b":")]
                if not stream.head.done():
                    stream.head.set_result(response)
            else:
                response.trailers = list(event.headers)
        elif isinstance(event, DataReceived) and event.data:
            response.body += event.data
            response.chunks.append(event.data)
            stream.data.put_nowait(event.data)
        if getattr(event, "stream_ended", False):
            stream.data.put_nowait(None)
            if not stream.done.done():
                stream.done.set_result(response)

    def open(
        self,
        method: str,
        path: str,
        headers: Headers | None = None,
        *,
        end: bool = True,
        **pseudo: bytes,
    ) -> int:
        stream_id = self._quic.get_next_available_stream_id()
        self.streams[stream_id] = _Stream(self._loop)
        head = [
            (b":method", method.encode()),
            (b":scheme", b"https"),
            (b":authority", pseudo.pop("authority", b"localhost")),
            (b":path", path.encode()),
            *[(b":" + k.encode(), v) for k, v in pseudo.items()],
            *(headers or []),
        ]
        self.h3.send_headers(stream_id, head, end_stream=end)
        self.transmit()
        return stream_id

    def send_body(self, stream_id: int, data: bytes, end: bool) -> None:
        self.h3.send_data(stream_id, data, end_stream=end)
        self.transmit()

    async def response(self, stream_id: int, timeout: float = 10) -> Response:
        return await asyncio.wait_for(self.streams[stream_id].done, scaled(timeout))

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: Headers = ()
    ) -> Response:
        stream_id = self.open(method, path, list(headers), end=not body)
        if body:
            self.send_body(stream_id, body, True)
        return await self.response(stream_id)

    # -- WebSocket over HTTP/3 (RFC 9220) --------------------------------------

    async def websocket(self, path: str) -> tuple[int, Response]:
        stream_id = self.open(
            "CONNECT",
            path,
            [(b"sec-websocket-version", b"13")],
            end=False,
            protocol=b"websocket",
        )
        response = await asyncio.wait_for(self.streams[stream_id].head, scaled(10))
        self._ws[stream_id] = wsproto.connection.Connection(
            wsproto.connection.ConnectionType.CLIENT
        )
        return stream_id, response

    @property
    def _ws(self) -> dict[int, wsproto.connection.Connection]:
        if not hasattr(self, "_ws_conns"):
            self._ws_conns: dict[int, wsproto.connection.Connection] = {}
        return self._ws_conns

    def ws_send(self, stream_id: int, event: wsproto.events.Event) -> None:
        self.send_body(stream_id, self._ws[stream_id].send(event), False)

    async def ws_receive(self, stream_id: int) -> wsproto.events.Event:
        ws = self._ws[stream_id]
        while True:
            for event in ws.events():
                return event
            data = await asyncio.wait_for(self.streams[stream_id].data.get(), scaled(10))
            if data is None:
                raise ConnectionError("stream ended")
            ws.receive_data(data)


def client_configuration(**kwargs: Any) -> QuicConfiguration:
    configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, **kwargs)
    configuration.verify_mode = ssl.CERT_NONE
    return configuration


@contextlib.asynccontextmanager
async def h3_connect(port: int, **kwargs: Any) -> AsyncIterator[H3Client]:
    """An HTTP/3 connection to 127.0.0.1:port (handshake done)."""
    async with asyncio.timeout(scaled(10)):
        manager = connect(
            "127.0.0.1",
            port,
            configuration=client_configuration(**kwargs),
            create_protocol=H3Client,
            wait_connected=True,
        )
        client = await manager.__aenter__()
    try:
        assert isinstance(client, H3Client)
        yield client
    finally:
        async with asyncio.timeout(scaled(10)):
            await manager.__aexit__(None, None, None)
