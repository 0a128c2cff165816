"""Behind proxies: the PROXY protocol on raw sockets, a real nginx and a real haproxy.

nginx and haproxy (Debian packages; ``make tools`` installs them) run in the
foreground on loopback, with their configs, pid and logs in the test's tmp
dir. Each proxy connects to the server from 127.0.0.2, so the server's direct
peer differs from the real client (127.0.0.1): the address the application
reports tells which one it was given.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from hypercorn.config import Config
from hypercorn.middleware import ProxyFixMiddleware
from hypercorn.shared.validators import ConfigError
from tests.e2e.conftest import (
    close_raw,
    make_config,
    read_response,
    running_server,
    scaled,
    serving,
)
from tests.worker.protocol.test_proxy import v2_inet

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.usefixtures("worker_class"),
    pytest.mark.worker_classes("asyncio", "trio"),
]

PROXY_SOURCE = "127.0.0.2"
REQUEST = b"GET /client HTTP/1.1\r\nhost: x\r\n\r\n"


class App:
    """Reports the scope's client; echoes a WebSocket message with it."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            assert (await receive())["type"] == "websocket.connect"
            await send({"type": "websocket.accept"})
            message = await receive()
            await send(
                {"type": "websocket.send", "text": f"{message['text']} {scope['client'][0]}"}
            )
            await send({"type": "websocket.close", "code": 1000})
            return
        if scope["type"] != "http":
            return
        client = scope["client"]
        body = f"{client[0]}:{client[1]}".encode() if client else b"-"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


class PeerRecorder:
    """Notes the direct peer of each request before the inner app (and middleware) runs."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.peers: list[tuple[str, int]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in {"http", "websocket"}:
            self.peers.append(scope["client"])
        await self.app(scope, receive, send)


async def exchange(host: str, port: int, data: bytes, *, source: str | None = None) -> bytes:
    """Send ``data`` on a new connection; the response body, or b"" if the server closed."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, local_addr=(source, 0) if source else None),
        scaled(5),
    )
    try:
        writer.write(data)
        try:
            _, body = await read_response(reader)
        except asyncio.IncompleteReadError as error:
            assert error.partial == b"", error.partial
            return b""
        return body
    finally:
        await close_raw(writer)


# ------------------------------------------------------------ PROXY protocol, raw


async def test_proxy_protocol_v1_and_v2_give_the_client_address() -> None:
    settings = {"proxy_protocol": ["*"], "forwarded_allow_ips": ["127.0.0.1"]}
    async with running_server(App(), **settings) as server:
        v1 = b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n"
        assert await exchange(server.host, server.port, v1 + REQUEST) == b"192.0.2.7:56324"
        v2 = v2_inet("2001:db8::7", "2001:db8::1", 4711, 443)
        assert await exchange(server.host, server.port, v2 + REQUEST) == b"2001:db8::7:4711"
        # A LOCAL header (a health check) keeps the connection's own address.
        local = v2_inet("0.0.0.0", "0.0.0.0", 0, 0)
        local = local[:12] + b"\x20" + local[13:]
        assert (await exchange(server.host, server.port, local + REQUEST)).startswith(b"127.0.0.1:")


@pytest.mark.parametrize(
    ("allowed", "data"),
    [
        (["127.0.0.1"], REQUEST),  # a trusted peer without a header
        (["127.0.0.1"], b"PROXY TCP4 192.0.2.7 198.51.100.1 1\r\n" + REQUEST),  # malformed
        (["10.0.0.0/8"], b"PROXY TCP4 192.0.2.7 198.51.100.1 1 2\r\n" + REQUEST),  # untrusted
    ],
    ids=["no-header", "malformed", "untrusted-peer"],
)
async def test_a_connection_without_a_valid_trusted_header_is_closed(
    allowed: list[str], data: bytes
) -> None:
    async with running_server(App(), proxy_protocol=["*"], forwarded_allow_ips=allowed) as server:
        assert await exchange(server.host, server.port, data) == b""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_only_the_chosen_bind_expects_the_header() -> None:
    plain, proxied = _free_port(), _free_port()
    config = make_config(
        bind=[f"127.0.0.1:{plain}", f"127.0.0.1:{proxied}"],
        proxy_protocol=[f"localhost:{proxied}"],
    )
    header = b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 80\r\n"
    async with serving(App(), config):
        assert (await exchange("127.0.0.1", plain, REQUEST)).startswith(b"127.0.0.1:")
        assert await exchange("127.0.0.1", proxied, REQUEST) == b""
        assert await exchange("127.0.0.1", proxied, header + REQUEST) == b"192.0.2.7:56324"


async def test_a_tls_bind_cannot_be_chosen(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    cert = authority.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "cert.pem"))
    port = _free_port()
    config = make_config(
        bind=[f"127.0.0.1:{port}"],
        certfile=str(tmp_path / "cert.pem"),
        keyfile=str(tmp_path / "cert.pem"),
        proxy_protocol=[f"127.0.0.1:{port}"],
    )
    with pytest.raises(ConfigError, match="TLS"):
        async with serving(App(), config):
            pass


# ------------------------------------------------------------ real proxies


def _need(program: str) -> str:
    path = shutil.which(program) or shutil.which(program, path="/usr/sbin:/usr/local/sbin")
    if path is None:
        pytest.skip(f"{program} is not installed (make tools installs it)")
    return path


async def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + scaled(10)
    while True:
        assert process.poll() is None, f"proxy exited: {log.read_text(errors='replace')}"
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            assert loop.time() < deadline, "proxy did not start listening in time"
            await asyncio.sleep(0.05)
            continue
        await close_raw(writer)
        return


@contextlib.asynccontextmanager
async def run_proxy(argv: list[str], port: int, log: Path) -> AsyncIterator[None]:
    """Run a proxy in the foreground until the block ends; its output goes to ``log``."""
    with log.open("wb") as output:
        process = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT)
    try:
        await _wait_listening(port, process, log)
        yield
    finally:
        process.terminate()
        try:
            process.wait(scaled(10))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(scaled(10))


NGINX_CONF = """\
{user}worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log {run}/access.log;
  client_body_temp_path {run}/body; proxy_temp_path {run}/proxy;
  fastcgi_temp_path {run}/fastcgi; uwsgi_temp_path {run}/uwsgi; scgi_temp_path {run}/scgi;
  map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}
  upstream hypercorn {{
    server 127.0.0.1:{backend};
    keepalive 16;
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://hypercorn;
      proxy_http_version 1.1;
      proxy_bind {source};
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
    }}
  }}
}}
"""


async def test_behind_nginx(tmp_path: Path) -> None:
    nginx = _need("nginx")
    app = PeerRecorder(ProxyFixMiddleware(App(), trusted_hops=1))
    port = _free_port()
    async with running_server(app) as server:
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf = NGINX_CONF.format(
            user=user, run=tmp_path, backend=server.port, port=port, source=PROXY_SOURCE
        )
        (tmp_path / "nginx.conf").write_text(conf)
        argv = [nginx, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"]
        async with run_proxy(argv, port, tmp_path / "nginx.out"):
            url = f"http://127.0.0.1:{port}/client"
            async with httpx.AsyncClient(timeout=scaled(5)) as client:
                # The client's own X-Forwarded-For is kept by nginx but not trusted.
                spoofed = {"x-forwarded-for": "203.0.113.66"}
                bodies = [(await client.get(url, headers=spoofed)).text for _ in range(10)]
            assert all(body.startswith("127.0.0.1:") for body in bodies), bodies
            assert {peer[0] for peer in app.peers} == {PROXY_SOURCE}
            # Upstream keep-alive: ten requests over far fewer connections.
            assert len(set(app.peers)) <= 2, app.peers

            async with websockets.connect(
                f"ws://127.0.0.1:{port}/ws", open_timeout=scaled(5)
            ) as websocket:
                await websocket.send("hello")
                reply = await asyncio.wait_for(websocket.recv(), scaled(5))
            assert reply == "hello 127.0.0.1"


HAPROXY_CFG = """\
global
  maxconn 256
  pidfile {run}/haproxy.pid
defaults
  mode http
  option http-keep-alive
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  timeout tunnel 30s
frontend public
  bind 127.0.0.1:{port}
  default_backend hypercorn
backend hypercorn
  server s1 127.0.0.1:{backend} send-proxy-v2 source {source}
"""


async def test_behind_haproxy_sending_proxy_protocol_v2(tmp_path: Path) -> None:
    haproxy = _need("haproxy")
    app = PeerRecorder(App())
    port = _free_port()
    settings = {"proxy_protocol": ["*"], "forwarded_allow_ips": [PROXY_SOURCE]}
    async with running_server(app, **settings) as server:
        cfg = HAPROXY_CFG.format(run=tmp_path, port=port, backend=server.port, source=PROXY_SOURCE)
        (tmp_path / "haproxy.cfg").write_text(cfg)
        argv = [haproxy, "-db", "-f", str(tmp_path / "haproxy.cfg")]
        async with run_proxy(argv, port, tmp_path / "haproxy.out"):
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port), scaled(5)
            )
            try:
                own = writer.get_extra_info("sockname")
                for _ in range(2):  # keep-alive: the same client on one connection
                    writer.write(REQUEST)
                    _, body = await read_response(reader)
                    assert body == f"127.0.0.1:{own[1]}".encode()
            finally:
                await close_raw(writer)
            assert {peer[0] for peer in app.peers} == {"127.0.0.1"}

            async with websockets.connect(
                f"ws://127.0.0.1:{port}/ws", open_timeout=scaled(5)
            ) as websocket:
                await websocket.send("hi")
                assert await asyncio.wait_for(websocket.recv(), scaled(5)) == "hi 127.0.0.1"

        # Straight to the bind, without the header: refused, as from an untrusted peer.
        assert await exchange(server.host, server.port, REQUEST, source=PROXY_SOURCE) == b""
        header = b"PROXY TCP4 192.0.2.7 198.51.100.1 1 2\r\n"
        assert await exchange(server.host, server.port, header + REQUEST) == b""


async def test_settings_reach_the_config() -> None:
    config = Config.from_mapping(proxy_protocol="*", forwarded_allow_ips="127.0.0.1, 10.0.0.0/8")
    assert config.proxy_protocol == ["*"]
    assert config.forwarded_allow_ips == ["127.0.0.1", "10.0.0.0/8"]
    with pytest.raises(ConfigError, match="forwarded_allow_ips"):
        Config.from_mapping(forwarded_allow_ips="10.0.0.0/33")
