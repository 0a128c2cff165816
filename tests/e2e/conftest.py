"""Run a real server on 127.0.0.1, port 0, for a test.

``running_server(app, **settings)`` serves in the test's own event loop (use
an async client); ``server_thread(app, **settings)`` serves from a thread with
its own loop or trio run (use a blocking client). Both yield a
``ServerAddress`` (a ``(host, port)`` tuple with ``url``), stop the server
gracefully on exit, and re-raise whatever the server raised. Settings are
``Config`` attribute names; ``bind`` defaults to 127.0.0.1:0.

The worker class is ``worker_class`` when a test gives it, else the one of the
``worker_class`` fixture: a module that uses it (``pytestmark =
pytest.mark.usefixtures("worker_class")``) runs each test once per class in
``WORKER_CLASSES``, or per class its ``worker_classes(...)`` marker names
(of those, only the ones ``--worker-classes`` lists, when given).
``running_server`` serves an asyncio worker in the test's loop, and any other
from a thread; an app that must run under each class waits with ``anyio``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, Literal, NamedTuple

import anyio
import pytest
import trio
import trustme

from hypercorn.config import Config
from hypercorn.utils import wrap_app
from hypercorn.worker import loop as worker_loop
from hypercorn.worker.serve import WorkerHooks, serve_sockets
from hypercorn.worker.trio_serve import serve_trio
from tests.cli_server import TIMEOUT_SCALE

Mode = Literal["asgi", "wsgi"] | None

WORKER_CLASSES = ("asyncio", "uvloop", "trio")
_default_class = ["asyncio"]  # what the ``worker_class`` fixture chose


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "worker_class" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("worker_classes")
        classes = marker.args if marker is not None else WORKER_CLASSES
        chosen = metafunc.config.getoption("--worker-classes")
        if chosen is not None:
            classes = tuple(name for name in classes if name in chosen.split(","))
        metafunc.parametrize("worker_class", classes, indirect=True)


@pytest.fixture
def worker_class(request: pytest.FixtureRequest) -> Iterator[str]:
    """The worker class this run of the test serves with (one run per class)."""
    _default_class.append(request.param)
    try:
        yield request.param
    finally:
        _default_class.pop()


class ServerAddress(NamedTuple):
    host: str
    port: int
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


def scaled(seconds: float) -> float:
    """A timeout scaled for slow machines (HYPERCORN_TEST_TIMEOUT_SCALE)."""
    return seconds * TIMEOUT_SCALE


class Flag:
    """A flag an app sets or waits for under any worker class, and a test awaits or
    sets: the app may run in another thread (a ``threading.Event`` inside)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self, timeout: float | None = None) -> None:
        """From the test: wait (``scaled(5)`` seconds by default) or fail."""
        waited = await asyncio.to_thread(
            self._event.wait, scaled(5) if timeout is None else timeout
        )
        assert waited, "the flag was not set in time"

    async def app_wait(self) -> None:
        """From an app, in its own loop: wait until the test sets the flag."""
        while not self._event.is_set():
            await anyio.sleep(0.005)


def make_config(**settings: Any) -> Config:
    settings.setdefault("bind", ["127.0.0.1:0"])
    settings.setdefault("errorlog", None)
    settings.setdefault("worker_class", _default_class[-1])
    return Config.from_mapping(settings)


def _address(config: Config, sock: socket.socket) -> ServerAddress:
    host, port = sock.getsockname()[:2]
    return ServerAddress(host, port, "https" if config.ssl_enabled else "http")


@contextlib.asynccontextmanager
async def serving(app: Any, config: Config, *, mode: Mode = None) -> AsyncIterator[ServerAddress]:
    """Serve ``app`` with ``config`` until the block exits: an asyncio worker in the
    running loop, any other from a thread."""
    if config.worker_class != "asyncio":
        server = config_thread(app, config, mode=mode)
        # Started and stopped off the test's loop, which the test's clients still use.
        address = await asyncio.to_thread(server.__enter__)
        try:
            yield address
        except BaseException as error:
            if not await asyncio.to_thread(server.__exit__, type(error), error, None):
                raise
        else:
            await asyncio.to_thread(server.__exit__, None, None, None)
        return
    sockets = config.create_sockets()
    address = _address(config, sockets.all()[0])
    stop = asyncio.Event()
    ready = asyncio.Event()
    task = asyncio.create_task(
        serve_sockets(
            wrap_app(app, config.wsgi_max_body_size, mode),
            config,
            sockets,
            shutdown_trigger=stop.wait,
            hooks=WorkerHooks(ready=ready.set),
        )
    )
    try:
        ready_wait = asyncio.create_task(ready.wait())
        await asyncio.wait({task, ready_wait}, timeout=scaled(10), return_when="FIRST_COMPLETED")
        ready_wait.cancel()
        if task.done():
            task.result()  # startup failed: raise its error
        assert ready.is_set(), "server did not start in time"
        yield address
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, scaled(config.graceful_timeout + 10))
        finally:
            sockets.close()


@contextlib.asynccontextmanager
async def running_server(
    app: Any, *, mode: Mode = None, **settings: Any
) -> AsyncIterator[ServerAddress]:
    """Serve ``app`` with ``Config`` settings; yield its address (see ``serving``)."""
    async with serving(app, make_config(**settings), mode=mode) as address:
        yield address


def server_thread(
    app: Any, *, mode: Mode = None, **settings: Any
) -> contextlib.AbstractContextManager[ServerAddress]:
    """Serve ``app`` from a thread with its own loop (``worker_class`` picks it)."""
    return config_thread(app, make_config(**settings), mode=mode)


@contextlib.contextmanager
def config_thread(app: Any, config: Config, *, mode: Mode = None) -> Iterator[ServerAddress]:
    """Serve ``app`` with ``config`` from a thread with its own loop or trio run."""
    sockets = config.create_sockets()
    address = _address(config, sockets.all()[0])
    ready = threading.Event()
    stop_box: list[Callable[[], object]] = []  # stops the server, from any thread
    errors: list[BaseException] = []
    wrapped = wrap_app(app, config.wsgi_max_body_size, mode)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        stop_box.append(lambda: loop.call_soon_threadsafe(stop.set))
        hooks = WorkerHooks(ready=ready.set)
        await serve_sockets(wrapped, config, sockets, shutdown_trigger=stop.wait, hooks=hooks)

    async def trio_main() -> None:
        stop = trio.Event()
        token = trio.lowlevel.current_trio_token()
        stop_box.append(lambda: token.run_sync_soon(stop.set))
        hooks = WorkerHooks(ready=ready.set)
        await serve_trio(wrapped, config, sockets, shutdown_trigger=stop.wait, hooks=hooks)

    def target() -> None:
        try:
            if config.worker_class == "trio":
                trio.run(trio_main)
            else:
                worker_loop.run(main(), config.worker_class)
        except BaseException as error:
            errors.append(error)
        finally:
            ready.set()

    thread = threading.Thread(target=target, name="hypercorn-test-server")
    thread.start()
    try:
        assert ready.wait(scaled(10)), "server did not start in time"
        if errors:
            raise errors[0]
        yield address
    finally:
        if stop_box:
            with contextlib.suppress(RuntimeError):  # the loop may just have closed
                stop_box[0]()
        thread.join(scaled(config.graceful_timeout + 10))
        sockets.close()
        assert not thread.is_alive(), "server thread did not stop"
    if errors:
        raise errors[0]


async def open_raw(address: ServerAddress) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw TCP connection to the server."""
    return await asyncio.wait_for(asyncio.open_connection(address.host, address.port), scaled(5))


async def read_response(
    reader: asyncio.StreamReader, *, no_body: bool = False
) -> tuple[bytes, bytes]:
    """Read one response (head, body) framed by content-length or chunked encoding.

    ``no_body`` for a response that has none whatever its headers say (HEAD).
    """
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), scaled(5))
    if no_body:
        return head, b""
    lines = head.lower().split(b"\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length:")), None
    )
    if length is not None:
        return head, await asyncio.wait_for(reader.readexactly(length), scaled(5))
    if any(line.startswith(b"transfer-encoding:") and b"chunked" in line for line in lines):
        body = b""
        while True:
            size_line = await asyncio.wait_for(reader.readuntil(b"\r\n"), scaled(5))
            size = int(size_line.split(b";")[0], 16)
            chunk = await asyncio.wait_for(reader.readexactly(size + 2), scaled(5))
            if size == 0:
                return head, body
            body += chunk[:-2]
    return head, b""


async def close_raw(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await asyncio.wait_for(writer.wait_closed(), scaled(5))


def write_server_cert(ca: trustme.CA, directory: Path) -> dict[str, str]:
    """A certificate for 127.0.0.1 and localhost issued by ``ca``, written with
    its key to ``directory``: the ``certfile`` and ``keyfile`` settings."""
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    cert.private_key_pem.write_to_path(str(keyfile))
    certfile.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    return {"certfile": str(certfile), "keyfile": str(keyfile)}


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """A certificate authority the tests' clients can trust."""
    return trustme.CA()


@pytest.fixture
def tls_files(ca: trustme.CA, tmp_path: Path) -> dict[str, str]:
    """``certfile`` and ``keyfile`` settings for a server ``ca`` vouches for."""
    return write_server_cert(ca, tmp_path)
