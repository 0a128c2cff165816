"""The guide's code examples (``examples/``), each run the way the guide runs it.

Applications are served by the real command (``tests/cli_server.py``: a
socket the test owns, passed as ``fd://N``) and asked with real clients;
config files are loaded the way ``-c`` loads them and then served.
"""

from __future__ import annotations

import asyncio
import configparser
import contextlib
import logging
import os
import shlex
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme
import websockets

from hypercorn.config import Config
from hypercorn.shared.cli import config_from_args
from hypercorn.shared.logging import Logger
from tests.cli_server import TIMEOUT_SCALE, CLIServer, cli_server, stop
from tests.e2e.conftest import write_server_cert

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _get(url: str, **kwargs: object) -> httpx.Response:
    return httpx.get(url, timeout=5 * TIMEOUT_SCALE, **kwargs)  # type: ignore[arg-type]


def test_hello() -> None:
    with cli_server("hello:app", cwd=EXAMPLES) as server:
        response = _get(server.url)
    assert (response.status_code, response.text) == (200, "Hello, world!\n")


def test_serve_in_loop_serves_until_a_signal() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    host, port = listener.getsockname()
    process = subprocess.Popen(
        [sys.executable, "serve_in_loop.py", f"fd://{listener.fileno()}"],
        cwd=EXAMPLES, pass_fds=[listener.fileno()],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    listener.close()
    try:
        CLIServer(process, host, port).wait_ready()
        assert _get(f"http://{host}:{port}/").text == "Hello, world!\n"
    finally:
        code = stop(process)
    assert code == 0  # SIGTERM set the shutdown trigger; the program ended cleanly


def test_serve_in_trio_serves_until_a_signal() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    host, port = listener.getsockname()
    process = subprocess.Popen(
        [sys.executable, "serve_in_trio.py", f"fd://{listener.fileno()}"],
        cwd=EXAMPLES, pass_fds=[listener.fileno()],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    listener.close()
    try:
        CLIServer(process, host, port).wait_ready()
        assert _get(f"http://{host}:{port}/").text == "Hello, world!\n"
    finally:
        code = stop(process)
        assert process.stdout is not None
        out = process.stdout.read()
        process.stdout.close()
    assert code == 0  # SIGTERM ended the trigger; serve and the program ended cleanly
    assert out.startswith("serving on http://127.0.0.1:")  # what task_status.started gave


def test_trio_app_with_two_trio_workers() -> None:
    with cli_server("trio_app:app", "-k", "trio", "-w", "2", cwd=EXAMPLES) as server:
        response = httpx.post(server.url, content=b"ping", timeout=5 * TIMEOUT_SCALE)
        assert response.text == "Hello from trio! ping\n"

        async def talk() -> str:
            url = server.url.replace("http", "ws", 1) + "/ws"
            async with websockets.connect(url, open_timeout=5 * TIMEOUT_SCALE) as ws:
                await ws.send("hi")
                return str(await asyncio.wait_for(ws.recv(), 5 * TIMEOUT_SCALE))

        assert asyncio.run(talk()) == "echo: hi"


def test_hypercorn_toml_serves_with_its_access_log() -> None:
    config = Config.from_toml(EXAMPLES / "hypercorn.toml")
    assert (config.bind, config.workers, config.graceful_timeout) == (["0.0.0.0:8000"], 4, 30.0)
    assert (config.accesslog, config.errorlog, config.loglevel) == ("-", "-", "INFO")
    # Served by a master as the file says, on the test's socket and with one worker.
    with cli_server("hello:app", "-c", "hypercorn.toml", "-w", "1", cwd=EXAMPLES) as server:
        assert _get(server.url + "/logged").status_code == 200
        server.process.send_signal(signal.SIGTERM)
        out, _ = server.process.communicate(timeout=15 * TIMEOUT_SCALE)
    assert '"GET /logged 1.1" 200' in out


def test_python_config_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "9000")
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    config = Config.from_pyfile(EXAMPLES / "hypercorn_conf.py")
    assert (config.bind, config.workers) == (["0.0.0.0:9000"], 3)
    assert (config.max_requests, config.max_requests_jitter) == (10_000, 1_000)
    monkeypatch.chdir(EXAMPLES)
    assert config_from_args(["-c", "file:hypercorn_conf.py", "hello:app"]).workers == 3


@contextlib.contextmanager
def _listeners(count: int) -> Iterator[list[socket.socket]]:
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        sockets.append(sock)
    try:
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def test_tls_toml_with_the_redirect(tmp_path: Path) -> None:
    config = Config.from_toml(EXAMPLES / "tls.toml")
    assert (config.bind, config.insecure_bind, config.quic_bind) == (
        ["0.0.0.0:443"], ["0.0.0.0:80"], ["0.0.0.0:443"],
    )  # fmt: skip
    ca = trustme.CA()
    files = write_server_cert(ca, tmp_path)
    # The file's settings, with a test certificate and the test's sockets.
    with _listeners(2) as (secure, plain):
        process = subprocess.Popen(
            [sys.executable, "-m", "hypercorn", "-c", "tls.toml", "--certfile", files["certfile"],
             "--keyfile", files["keyfile"], "--bind", f"fd://{secure.fileno()}",
             "--insecure-bind", f"fd://{plain.fileno()}", "--quic-bind", "127.0.0.1:0",
             "redirect_to_https:app"],
            cwd=EXAMPLES, pass_fds=[secure.fileno(), plain.fileno()],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        secure_port, plain_port = secure.getsockname()[1], plain.getsockname()[1]
    try:
        CLIServer(process, "127.0.0.1", plain_port).wait_ready()
        redirect = _get(f"http://127.0.0.1:{plain_port}/a?b=1")
        assert redirect.status_code == 307
        assert redirect.headers["location"] == "https://example.com/a?b=1"
        context = ssl.create_default_context()
        ca.configure_trust(context)
        with httpx.Client(http2=True, verify=context, timeout=5 * TIMEOUT_SCALE) as client:
            response = client.get(f"https://127.0.0.1:{secure_port}/")
        assert (response.http_version, response.text) == ("HTTP/2", "Hello, world!\n")
        assert response.headers["alt-svc"].startswith('h3=":')
    finally:
        stop(process)


@pytest.mark.asyncio
async def test_websocket_echo() -> None:
    with cli_server("websocket_echo:app", cwd=EXAMPLES) as server:
        url = f"ws://{server.host}:{server.port}/"
        async with websockets.connect(url, open_timeout=5 * TIMEOUT_SCALE) as websocket:
            await websocket.send("text")
            assert await websocket.recv() == "text"
            await websocket.send(b"\x00bytes")
            assert await websocket.recv() == b"\x00bytes"


def test_wsgi_app_detected_and_forced() -> None:
    for path in ("wsgi_app:application", "wsgi:wsgi_app:application"):
        with cli_server(path, cwd=EXAMPLES) as server:
            response = httpx.post(server.url + "/items", content=b"12345", timeout=5)
        assert response.text == "POST /items, 5 bytes\n"


@pytest.mark.asyncio
async def test_proxy_fix_trusts_one_hop() -> None:
    sys.path.insert(0, str(EXAMPLES))
    try:
        import proxy_fix
    finally:
        sys.path.remove(str(EXAMPLES))
    seen: list[dict[str, object]] = []

    async def recorder(scope: dict[str, object], receive: object, send: object) -> None:
        seen.append(scope)

    proxy_fix.app.app = recorder  # what the example's middleware hands on
    scope = {
        "type": "http", "scheme": "http", "client": ("10.0.0.2", 5000), "server": None,
        "headers": [(b"x-forwarded-for", b"203.0.113.9, 198.51.100.7"),
                    (b"x-forwarded-proto", b"https")],
        "path": "/", "raw_path": b"/", "query_string": b"", "root_path": "",
        "method": "GET", "http_version": "1.1", "asgi": {"version": "3.0"},
    }  # fmt: skip
    await proxy_fix.app(scope, None, None)
    # The entry the one trusted proxy appended; the client's own claim is ignored.
    assert seen[0]["client"] == ("198.51.100.7", 0) and seen[0]["scheme"] == "https"


def test_access_log_toml_writes_gunicorns_request_line(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    with cli_server(
        "hello:app", "-c", "access_log.toml", "--access-logfile", str(log), cwd=EXAMPLES
    ) as server:
        assert _get(server.url + "/items?page=2").status_code == 200
    line = log.read_text()
    assert '"GET /items?page=2 HTTP/1.1" 200 14 "-" "python-httpx/' in line
    assert line.startswith("127.0.0.1:") and line.rstrip().split()[-1].startswith("0.0")


def test_logging_toml(capsys: pytest.CaptureFixture[str]) -> None:
    config = Config.from_mapping(logconfig=f"toml:{EXAMPLES / 'logging.toml'}")
    logger = Logger(config)
    try:
        logger.error_logger.info("from the example")
        err = capsys.readouterr().err
    finally:
        logger.close()
        logging.getLogger("hypercorn.error").handlers.clear()
    assert err.rstrip().endswith(" INFO hypercorn.error: from the example")


def test_supervisord_program() -> None:
    parser = configparser.ConfigParser(inline_comment_prefixes=(";",))
    parser.read(EXAMPLES / "supervisord/hypercorn.conf")
    program = parser["program:hypercorn"]
    command = shlex.split(program["command"])
    assert command[0].endswith("/hypercorn")
    config = config_from_args(command[1:])
    # supervisord must wait longer than the master's graceful stop before KILL.
    assert int(program["stopwaitsecs"]) > config.graceful_timeout
    assert program["stopsignal"] == "TERM" and not config.daemon


def test_init_script_defaults() -> None:
    script = '. init.d/default-hypercorn; printf "%s\\n" "$APP" "$HYPERCORN_OPTS" "$PIDFILE"'
    result = subprocess.run(
        ["sh", "-c", script], cwd=EXAMPLES, capture_output=True, text=True, timeout=30,
        env={"PATH": os.environ["PATH"]},
    )  # fmt: skip
    app, options, pidfile = result.stdout.splitlines()
    config = config_from_args([*shlex.split(options), "--pid", pidfile, app])
    assert config.workers == 4 and config.application_path == "app:app"
