"""HTTP/3 is an optional extra: without aioquic the server serves HTTP/1.1 and HTTP/2,
and a QUIC listener is refused with a clear error."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_server import TIMEOUT_SCALE

# Runs the command line with aioquic unimportable, as on an install without [h3].
LAUNCHER = """
import sys
sys.modules["aioquic"] = None
from hypercorn.__main__ import main
sys.exit(main())
"""

APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"no quic here"})
"""


def _write(tmp_path: Path) -> None:
    (tmp_path / "launch.py").write_text(LAUNCHER)
    (tmp_path / "plainapp.py").write_text(APP)


def test_serves_without_aioquic(tmp_path: Path) -> None:
    _write(tmp_path)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    process = subprocess.Popen(
        [sys.executable, "launch.py", "-w", "0", "-b", f"fd://{listener.fileno()}", "plainapp:app"],
        cwd=tmp_path,
        pass_fds=[listener.fileno()],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        with socket.create_connection(listener.getsockname(), timeout=10 * TIMEOUT_SCALE) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"no quic here")
    finally:
        listener.close()
        process.terminate()
        _, stderr = process.communicate(timeout=15 * TIMEOUT_SCALE)
    assert b"aioquic" not in stderr


def test_quic_bind_without_aioquic_is_a_clear_error(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    _write(tmp_path)
    cert = trustme.CA().issue_cert("localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    result = subprocess.run(
        [sys.executable, "launch.py", "-w", "0", "--certfile", "cert.pem", "--keyfile",
         "key.pem", "-b", "127.0.0.1:0", "--quic-bind", "127.0.0.1:0", "plainapp:app"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60 * TIMEOUT_SCALE,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("hypercorn: error: quic_bind needs HTTP/3 support"), result.stderr
    assert "install hypercorn[h3]" in last and "Traceback" not in result.stderr
