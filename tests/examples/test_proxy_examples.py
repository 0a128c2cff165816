"""The guide's nginx and haproxy configurations, run in front of the server.

The example files are used as written, with only their addresses moved to
free ports on loopback (and, for nginx, wrapped in the few lines of a whole
``nginx.conf`` that keep its pid, logs and temporary files in the test's
directory).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from tests.cli_server import TIMEOUT_SCALE, CLIServer, cli_server, stop
from tests.e2e.test_proxies import _need, run_proxy

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

pytestmark = pytest.mark.asyncio

NGINX_MAIN = """\
{user}worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/error.log warn;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {run}/body; proxy_temp_path {run}/proxy;
  fastcgi_temp_path {run}/fastcgi; uwsgi_temp_path {run}/uwsgi; scgi_temp_path {run}/scgi;
  include {run}/hypercorn.conf;
}}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _hypercorn(cwd: Path, *args: str, ready_port: int) -> Iterator[None]:
    """``python -m hypercorn ARGS`` on the binds its config names; stopped at the end."""
    process = subprocess.Popen(
        [sys.executable, "-m", "hypercorn", *args],
        cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        CLIServer(process, "127.0.0.1", ready_port).wait_ready()
        yield
    finally:
        stop(process)


def _moved(text: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        assert old in text, f"the example no longer has {old!r}"
        text = text.replace(old, new)
    return text


async def test_nginx_example_proxies_requests_and_websockets(tmp_path: Path) -> None:
    nginx = _need("nginx")
    port = _free_port()
    with (
        cli_server("websocket_echo:app", cwd=EXAMPLES) as websocket_server,
        cli_server("proxy_fix:app", cwd=EXAMPLES) as server,
    ):
        example = (EXAMPLES / "nginx/hypercorn.conf").read_text()
        conf = _moved(example, {"127.0.0.1:8000": f"127.0.0.1:{server.port}",
                                "listen 80;": f"listen 127.0.0.1:{port};"})  # fmt: skip
        # The same server block once more, for a WebSocket backend on another port.
        ws_port = _free_port()
        ws_block = conf[conf.index("server {") :].replace("http://hypercorn", "http://ws")
        ws_block = ws_block.replace(f"listen 127.0.0.1:{port};", f"listen 127.0.0.1:{ws_port};")
        conf += f"\nupstream ws {{ server 127.0.0.1:{websocket_server.port}; }}\n{ws_block}"
        (tmp_path / "hypercorn.conf").write_text(conf)
        user = "user root;\n" if os.geteuid() == 0 else ""
        (tmp_path / "nginx.conf").write_text(NGINX_MAIN.format(user=user, run=tmp_path))
        argv = [nginx, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"]
        async with run_proxy(argv, port, tmp_path / "nginx.out"):
            async with httpx.AsyncClient(timeout=5 * TIMEOUT_SCALE) as client:
                responses = [await client.get(f"http://127.0.0.1:{port}/") for _ in range(3)]
            assert [r.text for r in responses] == ["Hello, world!\n"] * 3
            async with websockets.connect(
                f"ws://127.0.0.1:{ws_port}/", open_timeout=5 * TIMEOUT_SCALE
            ) as websocket:
                await websocket.send("through nginx")
                reply = await asyncio.wait_for(websocket.recv(), 5 * TIMEOUT_SCALE)
            assert reply == "through nginx"


async def test_haproxy_example_with_the_proxy_protocol_config(tmp_path: Path) -> None:
    haproxy = _need("haproxy")
    plain, proxied, front = _free_port(), _free_port(), _free_port()
    toml = _moved((EXAMPLES / "proxy_protocol.toml").read_text(),
                  {"127.0.0.1:8000": f"127.0.0.1:{plain}",
                   "127.0.0.1:8001": f"127.0.0.1:{proxied}"})  # fmt: skip
    (tmp_path / "proxy_protocol.toml").write_text(toml)
    cfg = _moved((EXAMPLES / "haproxy/haproxy.cfg").read_text(),
                 {"bind :80": f"bind 127.0.0.1:{front}",
                  "127.0.0.1:8001": f"127.0.0.1:{proxied}"})  # fmt: skip
    (tmp_path / "haproxy.cfg").write_text(cfg)
    # The demo app shows the client it was given; the file's binds are served as written.
    with _hypercorn(tmp_path, "-c", "proxy_protocol.toml", "--chdir", str(EXAMPLES), "demo:app",
                    ready_port=plain):  # fmt: skip
        argv = [haproxy, "-db", "-f", str(tmp_path / "haproxy.cfg")]
        async with run_proxy(argv, front, tmp_path / "haproxy.out"):
            reader, writer = await asyncio.open_connection("127.0.0.1", front)
            local_port = writer.get_extra_info("sockname")[1]
            writer.write(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            data = await asyncio.wait_for(reader.read(), 5 * TIMEOUT_SCALE)
            writer.close()
        # The client the server saw is this connection's end, not haproxy's.
        body = json.loads(data.partition(b"\r\n\r\n")[2])
        assert body["request"]["client"] == ["127.0.0.1", local_port]
        # A connection without the header on the PROXY bind is closed unanswered.
        reader, writer = await asyncio.open_connection("127.0.0.1", proxied)
        writer.write(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        assert await asyncio.wait_for(reader.read(), 5 * TIMEOUT_SCALE) == b""
        writer.close()
