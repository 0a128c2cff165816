"""The tiny applications every server in the benchmarks serves.

``app`` is one ASGI application for every HTTP and WebSocket scenario, routed
on the path so that each server runs the same code:

- ``/``        13 bytes, ``Hello, world!``;
- ``/64k``     a 64 KiB body;
- ``/upload``  reads the request body fully, answers with its length;
- ``/file``    the file ``BENCH_FILE`` names: by ``http.response.pathsend``
               where the server offers it, else read and streamed in 64 KiB
               pieces, as Starlette's ``FileResponse`` does; the
               ``x-sent-by`` header says which;
- WebSocket    echoes every message back.

``wsgi`` is the WSGI hello. ``framework.py`` holds the FastAPI app.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

HELLO = b"Hello, world!"
BIG = b"x" * (64 * 1024)

_HELLO_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
}
_HELLO_BODY = {"type": "http.response.body", "body": HELLO}
_BIG_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"application/octet-stream"), (b"content-length", b"65536")],
}
_BIG_BODY = {"type": "http.response.body", "body": BIG}


CHUNK = 64 * 1024


async def send_file(scope: dict[str, Any], send: Any) -> None:
    path = os.environ["BENCH_FILE"]
    by_path = "http.response.pathsend" in scope.get("extensions", {})
    headers = [
        (b"content-type", b"application/octet-stream"),
        (b"content-length", b"%d" % os.stat(path).st_size),
        (b"x-sent-by", b"pathsend" if by_path else b"app"),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if by_path:
        await send({"type": "http.response.pathsend", "path": path})
        return
    with open(path, "rb") as file:  # blocking reads of a page-cached file, as servers do
        while chunk := file.read(CHUNK):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    kind = scope["type"]
    if kind == "http":
        path = scope["path"]
        if path == "/file":
            await send_file(scope, send)
        elif path == "/64k":
            await send(_BIG_START)
            await send(_BIG_BODY)
        elif path == "/upload":
            size = 0
            more = True
            while more:
                message = await receive()
                size += len(message.get("body", b""))
                more = message.get("more_body", False)
            body = b"%d" % size
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/plain"),
                        (b"content-length", b"%d" % len(body)),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
        else:
            await send(_HELLO_START)
            await send(_HELLO_BODY)
    elif kind == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                return
            if message.get("bytes") is not None:
                await send({"type": "websocket.send", "bytes": message["bytes"]})
            else:
                await send({"type": "websocket.send", "text": message["text"]})
    elif kind == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


hello = app  # the name the first harness used


def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [HELLO]
