"""The usage examples of the specification, run as scripts, print what their comments say.

Each example is the specification's text unchanged (its indentation, lost in
the specification's rendering, restored), written to a file and run with this
interpreter in a temporary working directory.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_server import TIMEOUT_SCALE

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 60 * TIMEOUT_SCALE

LOADING = """\
from hypercorn.utils import load_application, wrap_app

# Load application from module path
try:
    app = load_application("myproject.wsgi:application", wsgi_max_body_size=16*1024*1024)
    print(f"Loaded application: {app}")
except Exception as e:
    print(f"Failed to load application: {e}")

# Wrap application automatically
wrapped_app = wrap_app(app, wsgi_max_body_size=16*1024*1024)
print(f"Wrapped application: {wrapped_app}")

# Check application type
from hypercorn.utils import is_asgi
if is_asgi(app):
    print("Application is ASGI-compatible")
else:
    print("Application is WSGI-compatible")
"""

WATCHING = """\
import time
from hypercorn.utils import files_to_watch, check_for_updates

# Get files to monitor
watch_files = files_to_watch()
print(f"Monitoring {len(watch_files)} files for changes")

# Check for changes periodically
while True:
    if check_for_updates(watch_files):
        print("Files changed - restarting server")
        # Trigger server restart
        break
    time.sleep(1)
"""

PID_FILE = """\
import os
from hypercorn.utils import write_pid_file

# Write PID file for process management
try:
    write_pid_file("/var/run/hypercorn.pid")
    print(f"PID {os.getpid()} written to file")
except Exception as e:
    print(f"Failed to write PID file: {e}")
"""

ADDRESSES = """\
import socket
from hypercorn.utils import parse_socket_addr, repr_socket_addr

# Parse different address types
ipv4_addr = ("192.168.1.100", 8000)
ipv6_addr = ("::1", 8000, 0, 0)

parsed_ipv4 = parse_socket_addr(socket.AF_INET, ipv4_addr)
parsed_ipv6 = parse_socket_addr(socket.AF_INET6, ipv6_addr)

# Create string representations
ipv4_str = repr_socket_addr(socket.AF_INET, ipv4_addr)
ipv6_str = repr_socket_addr(socket.AF_INET6, ipv6_addr)

print(f"IPv4: {ipv4_str}")  # "192.168.1.100:8000"
print(f"IPv6: {ipv6_str}")  # "[::1]:8000"
"""

HEADERS = """\
from hypercorn.utils import build_and_validate_headers, filter_pseudo_headers

# Build headers from various formats
headers_dict = {"content-type": "text/html", "server": "hypercorn"}
headers_list = [("content-type", "text/html"), ("server", "hypercorn")]

validated_headers = build_and_validate_headers(headers_dict)
print(f"Validated headers: {validated_headers}")

# Filter HTTP/2 pseudo-headers
http2_headers = [
    (b":method", b"GET"),
    (b":path", b"/test"),
    (b"user-agent", b"test-client"),
    (b":authority", b"example.com")
]

filtered = filter_pseudo_headers(http2_headers)
print(f"Filtered headers: {filtered}")  # Only user-agent remains
"""

SUPPRESS = """\
from hypercorn.utils import suppress_body

# Check if body should be suppressed
cases = [
    ("HEAD", 200),  # HEAD requests - suppress
    ("GET", 204),   # No Content - suppress
    ("GET", 304),   # Not Modified - suppress
    ("GET", 200),   # Normal GET - don't suppress
    ("POST", 201),  # Normal POST - don't suppress
]

for method, status in cases:
    should_suppress = suppress_body(method, status)
    print(f"{method} {status}: {'suppress' if should_suppress else 'include'} body")
"""

SERVER_NAMES = """\
from hypercorn.config import Config
from hypercorn.utils import valid_server_name

# Configure server names
config = Config()
config.server_names = ["example.com", "*.example.com", "api.service.local"]

# Mock request object (simplified)
class MockRequest:
    def __init__(self, host):
        self.headers = {"host": host}

# Validate different server names
test_hosts = ["example.com", "api.example.com", "invalid.com", "api.service.local"]
for host in test_hosts:
    request = MockRequest(host)
    is_valid = valid_server_name(config, request)
    print(f"{host}: {'valid' if is_valid else 'invalid'}")
"""

WSGI_PROJECT = """\
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello from myproject"]
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(REPO / "src")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_example(source: str, cwd: Path, name: str = "example.py") -> list[str]:
    """Run ``source`` as a script in ``cwd``; its stdout lines."""
    script = cwd / name
    script.write_text(source)
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=_env(),
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout.splitlines()


def test_loading_and_wrapping(tmp_path: Path) -> None:
    (tmp_path / "myproject").mkdir()
    (tmp_path / "myproject" / "__init__.py").write_text("")
    (tmp_path / "myproject" / "wsgi.py").write_text(WSGI_PROJECT)
    lines = run_example(LOADING, tmp_path)
    assert len(lines) == 3
    assert re.fullmatch(
        r"Loaded application: WSGIWrapper\(<function application at 0x[0-9a-f]+>, "
        r"max_body_size=16777216\)",
        lines[0],
    )
    # The loaded application is already wrapped: wrapping it again keeps it.
    assert lines[1] == lines[0].replace("Loaded", "Wrapped")
    # The wrapper is itself an ASGI application (the server calls it the ASGI way).
    assert lines[2] == "Application is ASGI-compatible"


def test_loading_failure_is_reported(tmp_path: Path) -> None:
    source = LOADING.split("# Wrap application automatically")[0]
    lines = run_example(source, tmp_path)
    assert lines == [
        "Failed to load application: Cannot load application from "
        "'myproject.wsgi:application': module 'myproject.wsgi' not found."
    ]


def _read_line(process: subprocess.Popen[str], deadline: float) -> str:
    assert process.stdout is not None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.1)
        if ready:
            return process.stdout.readline()
    raise TimeoutError("the example printed nothing in time")


def test_file_watching_notices_a_change(tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(WATCHING)
    process = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        first = _read_line(process, deadline)
        match = re.fullmatch(r"Monitoring (\d+) files for changes\n", first)
        assert match and int(match.group(1)) > 10
        # The running script is an imported module (__main__): it is watched.
        later = time.time() + 5
        os.utime(script, (later, later))
        assert _read_line(process, deadline) == "Files changed - restarting server\n"
        assert process.wait(TIMEOUT) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(TIMEOUT)
        for stream in (process.stdout, process.stderr):
            assert stream is not None
            stream.close()


@pytest.fixture
def var_run_pid() -> Iterator[Path]:
    """Leave /var/run/hypercorn.pid as it was found."""
    path = Path("/var/run/hypercorn.pid")
    saved = path.read_bytes() if path.exists() else None
    yield path
    if saved is None:
        path.unlink(missing_ok=True)
    else:
        path.write_bytes(saved)


def test_pid_file(tmp_path: Path, var_run_pid: Path) -> None:
    lines = run_example(PID_FILE, tmp_path)
    assert len(lines) == 1
    if os.access(var_run_pid.parent, os.W_OK):
        match = re.fullmatch(r"PID (\d+) written to file", lines[0])
        assert match
        assert var_run_pid.read_text() == f"{match.group(1)}\n"
    else:
        assert lines[0].startswith("Failed to write PID file: [Errno 13] Permission denied")


def test_addresses(tmp_path: Path) -> None:
    assert run_example(ADDRESSES, tmp_path) == ["IPv4: 192.168.1.100:8000", "IPv6: [::1]:8000"]


def test_headers(tmp_path: Path) -> None:
    assert run_example(HEADERS, tmp_path) == [
        "Validated headers: [(b'content-type', b'text/html'), (b'server', b'hypercorn')]",
        "Filtered headers: [(b'user-agent', b'test-client')]",
    ]


def test_suppress_body(tmp_path: Path) -> None:
    assert run_example(SUPPRESS, tmp_path) == [
        "HEAD 200: suppress body",
        "GET 204: suppress body",
        "GET 304: suppress body",
        "GET 200: include body",
        "POST 201: include body",
    ]


def test_server_names(tmp_path: Path) -> None:
    assert run_example(SERVER_NAMES, tmp_path) == [
        "example.com: valid",
        "api.example.com: valid",
        "invalid.com: invalid",
        "api.service.local: valid",
    ]
