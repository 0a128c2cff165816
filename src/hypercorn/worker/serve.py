"""One worker: serve an application on listening sockets until told to stop.

Theory of operation
-------------------
``serve_sockets`` is the worker's life, in order:

1. lifespan startup (a failure or timeout raises, and nothing is served);
2. one ``Listener`` (the worker's own accept loop, ``worker/listener.py``)
   per listening socket, each creating an ``HTTPConnection`` per accepted
   connection (TLS on the secure sockets, with ALPN limited to the protocols
   this worker speaks), and one ``QuicServer`` per QUIC socket (HTTP/3, see
   ``worker/udp.py``);
3. wait for the shutdown trigger: the caller's awaitable, a
   ``multiprocessing.Event`` watched by polling, and/or SIGINT/SIGTERM, or
   the worker's request limit (checked as each connection is accepted and
   each request starts, so it stops accepting at once, within the batch: see
   ``WorkerContext``);
4. graceful shutdown: close the listeners (stop accepting), let each
   connection close after its current response or, when idle, after one more
   request or a short grace (see ``worker/io.py``), wait up to
   ``graceful_timeout`` for in-flight requests and app tasks, then abort what
   is left;
5. lifespan shutdown.

If the worker is cancelled or fails at any point after step 1, steps 4 (at
once, without the grace period) and 5 still run, so no socket, transport or
task outlives ``serve_sockets``.

The steps are the same on every loop: what is the loop family's (its
listeners, UDP sockets, the shutdown wait with its signals) comes from a
``WorkerIO``, asyncio's (``AsyncioIO``, the default) or trio's
(``worker/trio_serve.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import ssl
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from hypercorn.shared.addresses import repr_socket_addr
from hypercorn.shared.apploading import load_application, wrap_app
from hypercorn.shared.errors import ShutdownError
from hypercorn.shared.eventloop import EventLoop, Future, settle
from hypercorn.shared.shutdown import check_multiprocess_shutdown_event
from hypercorn.shared.statsd import StatsdLogger
from hypercorn.shared.validators import ConfigError
from hypercorn.worker import loop as worker_loop
from hypercorn.worker.asgi.lifespan import Lifespan, LifespanState
from hypercorn.worker.context import WorkerContext
from hypercorn.worker.io import HTTPConnection
from hypercorn.worker.listener import Listener
from hypercorn.worker.protocol.connection import SERVED_ALPN_PROTOCOLS
from hypercorn.worker.proxy_binds import ProxyBinds

if TYPE_CHECKING:
    import socket
    from multiprocessing.synchronize import Event as MPEvent

    from hypercorn.config import Config
    from hypercorn.shared.sockets import Sockets
    from hypercorn.typing import ASGIFramework, Framework
    from hypercorn.worker.udp import QuicServer

ShutdownTrigger = Callable[..., Awaitable[Any]]

_SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass(frozen=True, slots=True)
class WorkerHooks:
    """How a worker reports to the process that runs it (each one optional).

    Attributes:
        ready: called once the app started and the sockets are served.
        heartbeat: called from the event loop every ``heartbeat_interval``
            seconds while serving, and once more after the last connection
            closed, with the number of requests served so far.
        heartbeat_interval: seconds between heartbeats.
        request_limit: requests after which the worker stops by itself.
        limit_reached: called with the count once the limit is reached, as the
            worker stops accepting.
        metrics: called just before each heartbeat (and once more after the
            last connection closed) with the worker's counters
            (``WorkerCounters.values``).
    """

    ready: Callable[[], None] | None = None
    heartbeat: Callable[[int], None] | None = None
    heartbeat_interval: float = 1.0
    request_limit: int | None = None
    limit_reached: Callable[[int], None] | None = None
    metrics: Callable[[list[int]], None] | None = None


NO_HOOKS = WorkerHooks()


async def serve(
    app: Framework,
    config: Config,
    *,
    shutdown_trigger: ShutdownTrigger | None = None,
    mode: Literal["asgi", "wsgi"] | None = None,
) -> None:
    """Serve ``app`` in the running event loop until shutdown.

    Binds ``config``'s listeners, runs the app's lifespan, and serves until
    ``shutdown_trigger()`` returns (or raises ``ShutdownError``); without a
    trigger, until SIGINT or SIGTERM when called in the main thread, else until
    cancelled. Then shuts down gracefully.

    Args:
        app: an ASGI or WSGI application.
        config: the server's settings.
        shutdown_trigger: an async callable whose return starts shutdown.
        mode: ``"asgi"`` or ``"wsgi"`` to force how ``app`` is called.

    Raises:
        BindError: a listener cannot be created.
        LifespanFailureError, LifespanTimeoutError: the app's startup failed.
    """
    wrapped = wrap_app(app, config.wsgi_max_body_size, mode)
    sockets = config.create_sockets()
    try:
        await serve_sockets(
            wrapped,
            config,
            sockets,
            shutdown_trigger=shutdown_trigger,
            handle_signals=shutdown_trigger is None,
        )
    finally:
        sockets.close()


def run_worker(
    config: Config,
    sockets: Sockets,
    shutdown_event: MPEvent | None = None,
    *,
    hooks: WorkerHooks = NO_HOOKS,
    shutdown_fd: int | None = None,
) -> int:
    """Load ``config.application_path`` and serve it on ``sockets`` in a new event loop.

    The loop is asyncio's, uvloop's or trio's per ``config.worker_class``. Serving
    stops gracefully when ``shutdown_event`` is set, when ``shutdown_fd`` becomes
    readable, or on SIGINT/SIGTERM when this is the main thread.

    Args:
        config: the server's settings.
        sockets: the listening sockets (already bound); they are closed on return.
        shutdown_event: a ``multiprocessing.Event`` that, once set, stops the worker.
        hooks: how the worker reports to the process that runs it.
        shutdown_fd: a descriptor (the master's channel) whose readability, data
            or end-of-file, stops the worker.

    Returns:
        The exit code, 0.

    Raises:
        NoAppError: the application cannot be found.
        LifespanFailureError, LifespanTimeoutError: the app's startup failed.
        ConfigError: the worker class or the TLS settings cannot be used.
    """
    assert config.application_path is not None, "config.application_path is not set"
    app = load_application(config.application_path, config.wsgi_max_body_size)
    if config.worker_class == "trio":
        from hypercorn.worker.trio_serve import run_trio

        run_trio(app, config, sockets, shutdown_event, hooks, shutdown_fd)
        return 0
    trigger: ShutdownTrigger | None = None
    if shutdown_event is not None:
        trigger = functools.partial(
            check_multiprocess_shutdown_event, shutdown_event, asyncio.sleep
        )
    elif shutdown_fd is not None:
        trigger = functools.partial(_readable, shutdown_fd)
    main = serve_sockets(
        app,
        config,
        sockets,
        shutdown_trigger=trigger,
        handle_signals=True,
        hooks=hooks,
    )
    worker_loop.run(main, config.worker_class, debug=config.debug)
    return 0


async def _readable(fd: int) -> None:
    """Return once ``fd`` is readable (without reading it)."""
    loop = asyncio.get_running_loop()
    readable: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not readable.done():
            readable.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await readable
    finally:
        loop.remove_reader(fd)


async def serve_sockets(
    app: ASGIFramework,
    config: Config,
    sockets: Sockets,
    *,
    shutdown_trigger: ShutdownTrigger | None = None,
    handle_signals: bool = False,
    hooks: WorkerHooks = NO_HOOKS,
    io: WorkerIO | None = None,
) -> None:
    """Serve an (already wrapped) app on ``sockets`` until shutdown; see the module doc.

    Args:
        app: the ASGI application (wrapped by ``wrap_app``).
        config: the server's settings.
        sockets: listening sockets; the listeners close them when they stop.
        shutdown_trigger: an async callable whose return starts shutdown.
        handle_signals: also stop on SIGINT/SIGTERM (main thread only).
        hooks: how the worker reports to the process that runs it.
        io: the loop family's I/O layer; asyncio's (the running loop) by default.

    Raises:
        LifespanFailureError, LifespanTimeoutError: the app's startup or shutdown failed.
    """
    if io is None:
        io = AsyncioIO()
    loop = io.loop
    # As Hypercorn does: statsd_host with the default logger class means StatsdLogger.
    config.set_statsd_logger_class(StatsdLogger)
    state: dict[str, Any] = {}
    lifespan = Lifespan(app, config, state, loop)
    try:
        await lifespan.startup()
    except BaseException:
        with io.cleanup_scope():
            if lifespan.state is LifespanState.STARTED:  # cancelled as startup completed
                with contextlib.suppress(Exception):
                    await lifespan.shutdown()
            else:
                await lifespan.close()
        raise
    ctx = WorkerContext(app, config, loop, state)
    servers: list[Listener] = []
    quic: list[QuicServer] = []
    beat: _Heartbeat | None = None
    drained = False
    limit_hit: Future[None] = loop.create_future()

    def stop_at_limit() -> None:
        # Synchronously, from the request that reached it: no accept in between.
        for server in servers:
            server.close()
        for endpoint in quic:
            endpoint.shutdown()
        ctx.begin_drain()  # as a reload does: no request on a kept-alive connection lost
        if hooks.limit_reached is not None:
            hooks.limit_reached(ctx.requests_served)
        settle(limit_hit)

    try:
        servers = await _start_servers(ctx, sockets, io)
        quic = await _start_quic(ctx, sockets, io)
        if hooks.request_limit is not None:
            ctx.limit_requests(hooks.request_limit, stop_at_limit)
        if hooks.ready is not None:
            hooks.ready()
        if hooks.heartbeat is not None:
            beat = _Heartbeat(ctx, hooks.heartbeat, hooks.heartbeat_interval, hooks.metrics)
        await io.wait_for_shutdown(shutdown_trigger, handle_signals, limit_hit)
        for server in servers:
            server.close()
        for endpoint in quic:
            endpoint.shutdown()
        ctx.begin_drain()
        if not await ctx.wait_idle(config.graceful_timeout):
            await config.log.info(
                "graceful timeout: closing %d connection(s), cancelling %d task(s)",
                len(ctx.connections),
                len(ctx.tasks),
            )
        drained = True
    finally:
        if beat is not None:
            beat.stop()
        for server in servers:
            server.close()
        ctx.draining = True
        with io.cleanup_scope():
            await ctx.abort()
            if beat is not None:
                beat.send()  # the final counts, so the master's totals miss nothing
            for endpoint in quic:
                endpoint.close()
            if drained:
                await lifespan.shutdown()
            else:
                with contextlib.suppress(Exception):
                    await lifespan.shutdown()


async def _start_servers(ctx: WorkerContext, sockets: Sockets, io: WorkerIO) -> list[Listener]:
    config = ctx.config
    ssl_context = _ssl_context(config) if sockets.secure_sockets else None
    listeners = [(sock, True) for sock in sockets.secure_sockets]
    listeners += [(sock, False) for sock in sockets.insecure_sockets]
    binds = ProxyBinds(config) if config.proxy_protocol else None
    with_header = binds.choose(listeners) if binds is not None else [False] * len(listeners)
    servers: list[Listener] = []
    try:
        for (sock, secure), proxied in zip(listeners, with_header, strict=True):
            address = repr_socket_addr(sock.family, sock.getsockname())
            trusted = binds.trusted if binds is not None and proxied else None
            factory = functools.partial(HTTPConnection, ctx, secure=secure, proxy=trusted)
            server = io.listener(
                ctx,
                sock,
                factory,
                ssl_context=ssl_context if secure else None,
                batch=config.backlog,
            )
            servers.append(server)
            scheme = "https" if secure else "http"
            if proxied:
                address += " (PROXY protocol)"
            await config.log.info("Running on %s://%s (CTRL + C to quit)", scheme, address)
    except BaseException:
        for server in servers:
            server.close()
        raise
    return servers


async def _start_quic(ctx: WorkerContext, sockets: Sockets, io: WorkerIO) -> list[QuicServer]:
    """Serve HTTP/3 on each QUIC socket (needs the TLS certificate)."""
    config = ctx.config
    if not sockets.quic_sockets or config.certfile is None:
        return []
    # HTTP/3 is an optional extra: only a server with a QUIC listener needs aioquic.
    try:
        from hypercorn.worker.protocol.h3_endpoint import (
            QuicEndpoint,
            TLSFiles,
            quic_configuration,
        )
        from hypercorn.worker.udp import QuicServer
    except ImportError as error:
        raise ConfigError(
            f"quic_bind needs HTTP/3 support ({error.name} is missing): install hypercorn[h3]"
        ) from None
    configuration = quic_configuration(
        TLSFiles(
            config.certfile,
            config.keyfile,
            config.keyfile_password,
            config.ca_certs,
            None if config.verify_mode is None else int(config.verify_mode),
        )
    )
    servers: list[QuicServer] = []
    try:
        for sock in sockets.quic_sockets:
            endpoint = QuicEndpoint(config, configuration)
            server = QuicServer(ctx, endpoint)
            await io.open_datagram(server, sock)
            servers.append(server)
            address = repr_socket_addr(sock.family, sock.getsockname())
            await config.log.info("Running on https://%s (QUIC) (CTRL + C to quit)", address)
    except BaseException:
        for server in servers:
            server.close()
        raise
    return servers


class _Heartbeat:
    """Calls ``callback(requests_served)`` on a loop timer, after ``metrics(counters)``
    when given; no task of its own."""

    def __init__(
        self,
        ctx: WorkerContext,
        callback: Callable[[int], None],
        interval: float,
        metrics: Callable[[list[int]], None] | None = None,
    ) -> None:
        self._ctx = ctx
        self._callback = callback
        self._interval = interval
        self._metrics = metrics
        self._handle = ctx.loop.call_soon(self._beat)

    def _beat(self) -> None:
        self._handle = self._ctx.loop.call_later(self._interval, self._beat)
        self.send()

    def send(self) -> None:
        ctx = self._ctx
        if self._metrics is not None:
            self._metrics(ctx.counters.values(len(ctx.connections)))
        self._callback(ctx.requests_served)

    def stop(self) -> None:
        self._handle.cancel()


def _ssl_context(config: Config) -> ssl.SSLContext | None:
    context = config.create_ssl_context()
    if context is not None:
        # Offer only what this worker speaks: a client that negotiated a
        # protocol we do not serve would be answered in the wrong one.
        offered = [name for name in config.alpn_protocols if name in SERVED_ALPN_PROTOCOLS]
        context.set_alpn_protocols(offered or list(SERVED_ALPN_PROTOCOLS))
    return context


class WorkerIO(Protocol):
    """What serving needs of a loop family's I/O layer: asyncio's is ``AsyncioIO``,
    trio's is in ``worker/trio_io.py``."""

    loop: EventLoop
    """The running loop."""

    def listener(
        self,
        ctx: WorkerContext,
        sock: socket.socket,
        factory: Callable[[], HTTPConnection],
        *,
        ssl_context: ssl.SSLContext | None,
        batch: int,
    ) -> Listener:
        """Start the accept loop of one listening socket (see ``Listener``)."""
        ...

    async def open_datagram(self, server: QuicServer, sock: socket.socket) -> None:
        """Start feeding ``server`` the datagrams of the UDP socket ``sock``."""

    async def wait_for_shutdown(
        self, trigger: ShutdownTrigger | None, handle_signals: bool, limit_hit: Future[None]
    ) -> None:
        """Return once the trigger returns (or raises ``ShutdownError``), SIGINT or
        SIGTERM arrives (with ``handle_signals``, in the main thread only) or
        ``limit_hit`` is set."""

    def cleanup_scope(self) -> contextlib.AbstractContextManager[object]:
        """Where the cleanup of a cancelled worker can still wait (each wait is bounded)."""
        ...


class AsyncioIO:
    """The asyncio (and uvloop) I/O layer: ``worker/io.py`` and ``worker/listener.py``."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.loop: EventLoop = self._loop

    @staticmethod
    def listener(
        ctx: WorkerContext,
        sock: socket.socket,
        factory: Callable[[], HTTPConnection],
        *,
        ssl_context: ssl.SSLContext | None,
        batch: int,
    ) -> Listener:
        return Listener(ctx, sock, factory, ssl_context=ssl_context, batch=batch)

    async def open_datagram(self, server: QuicServer, sock: socket.socket) -> None:
        await self._loop.create_datagram_endpoint(lambda: server, sock=sock)

    @staticmethod
    def cleanup_scope() -> contextlib.AbstractContextManager[object]:
        return contextlib.nullcontext()  # asyncio's cancellation is delivered once

    async def wait_for_shutdown(
        self, trigger: ShutdownTrigger | None, handle_signals: bool, limit_hit: Future[None]
    ) -> None:
        loop = self._loop
        signalled = asyncio.Event()
        installed: list[signal.Signals] = []
        if handle_signals and threading.current_thread() is threading.main_thread():
            for signum in _SHUTDOWN_SIGNALS:
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(signum, signalled.set)
                    installed.append(signum)
        try:
            await _first_of(loop, trigger, signalled, installed, limit_hit)
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)


async def _first_of(
    loop: asyncio.AbstractEventLoop,
    trigger: ShutdownTrigger | None,
    signalled: asyncio.Event,
    installed: list[signal.Signals],
    limit_hit: Future[None],
) -> None:
    async def hit() -> None:
        await limit_hit

    # Without a limit, this one waits until cancelled.
    waiters: list[asyncio.Future[Any]] = [loop.create_task(hit())]
    try:
        if installed:
            waiters.append(loop.create_task(signalled.wait()))
        if trigger is not None:
            waiters.append(asyncio.ensure_future(trigger()))
        done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for waiter in done:
            with contextlib.suppress(ShutdownError):
                waiter.result()
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
