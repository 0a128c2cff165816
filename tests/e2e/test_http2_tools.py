"""HTTP/2 against third-party clients: curl, nghttp (server push) and h2load.

The tools come from Debian (``make tools`` installs curl and nghttp2-client).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import trustme

from tests.e2e.conftest import ServerAddress, scaled, server_thread, write_server_cert

pytestmark = pytest.mark.slow

BODY = b"x" * 3000


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/echo":
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
    elif scope["path"] == "/page":
        await send({"type": "http.response.push", "path": "/style.css", "headers": []})
        body = b"<link rel=stylesheet href=/style.css>"
    else:
        body = scope["path"].encode() + b" over " + scope["http_version"].encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run `make tools`")
    return path


def run(*args: str, timeout: float = 30) -> str:
    result = subprocess.run(args, capture_output=True, timeout=scaled(timeout), check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout.decode(errors="replace")


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return write_server_cert(trustme.CA(), tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def plain() -> Iterator[ServerAddress]:
    with server_thread(app, keep_alive_max_requests=1_000_000) as address:
        yield address


@pytest.fixture(scope="module")
def tls(tls_files: dict[str, str]) -> Iterator[ServerAddress]:
    with server_thread(app, keep_alive_max_requests=1_000_000, **tls_files) as address:
        yield address


def curl(*args: str) -> str:
    return run(_tool("curl"), "-sS", "--max-time", "10", "-w", " %{http_version}", *args)


def test_curl_prior_knowledge(plain: ServerAddress) -> None:
    assert curl("--http2-prior-knowledge", f"{plain.url}/a") == "/a over 2 2"


def test_curl_upgrade_h2c(plain: ServerAddress) -> None:
    assert curl("--http2", f"{plain.url}/b") == "/b over 2 2"


def test_curl_alpn_over_tls(tls: ServerAddress) -> None:
    assert curl("-k", "--http2", f"{tls.url}/c") == "/c over 2 2"


def test_curl_post_echo(plain: ServerAddress, tls: ServerAddress) -> None:
    for args in (("--http2-prior-knowledge", f"{plain.url}/echo"), ("-k", f"{tls.url}/echo")):
        assert curl("--data-binary", BODY.decode(), *args) == BODY.decode() + " 2"


def test_nghttp_receives_a_push(plain: ServerAddress) -> None:
    out = run(_tool("nghttp"), "-v", "-n", "-t", "10", f"{plain.url}/page")
    assert "recv PUSH_PROMISE frame" in out, out
    assert "promised_stream_id=2)" in out and ":path: /style.css" in out
    assert re.search(r"recv DATA frame <length=\d+, flags=0x01, stream_id=2>", out), out


@pytest.mark.parametrize("secure", [False, True], ids=["h2c", "h2"])
def test_h2load_has_no_failures(
    secure: bool, request: pytest.FixtureRequest, tls_files: dict[str, str]
) -> None:
    address: ServerAddress = request.getfixturevalue("tls" if secure else "plain")
    out = run(
        _tool("h2load"),
        "-n",
        "5000",
        "-c",
        "16",
        "-m",
        "32",
        "-t",
        "1",
        address.url + "/",
        timeout=90,
    )
    assert ("Application protocol: h2" if secure else "Application protocol: h2c") in out
    assert "5000 succeeded, 0 failed, 0 errored, 0 timeout" in out, out
