"""``run(config)``: what the ``hypercorn`` command runs.

With ``workers`` >= 1 a master process binds the listeners and supervises
that many worker processes (``hypercorn.supervisor.arbiter``). With
``workers=0`` one worker serves in the calling process, with no master: the
listeners are bound here, the PID file written, and the worker serves until
it is told to stop (SIGINT or SIGTERM).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Sequence

from hypercorn.config import Config
from hypercorn.shared import compiled
from hypercorn.shared.sockets import Sockets, systemd_sockets
from hypercorn.supervisor.pidfile import check_pid_file, remove_pid_file, write_pid_file
from hypercorn.supervisor.upgrade import inherited_from, inherited_sockets


def run(
    config: Config,
    *,
    reload_config: Callable[[], Config] | None = None,
    watch_files: Sequence[str] = (),
) -> int:
    """Serve ``config.application_path`` with ``config``; returns an exit code.

    Args:
        config: the settings, with ``application_path`` set.
        reload_config: builds a fresh ``Config`` when the master reloads (HUP);
            without it a reload restarts the workers with the same settings.
        watch_files: files ``--reload`` watches besides the application's
            (the config file).

    Raises:
        BindError: a listener cannot be created.
        ConfigError: the TLS settings cannot be loaded.
        NoAppError: the application cannot be found (``workers=0``).
        LifespanFailureError: the application's startup failed (``workers=0``).
        AlreadyRunningError: a live hypercorn owns the PID file.
    """
    if config.pid_path is not None and inherited_from() is None:
        # Before binding: a running server holds the port. (--daemon checked it already.)
        check_pid_file(config.pid_path, warn=not config.daemon)
    config.create_ssl_context()  # fail early, before binding, on a bad certificate
    sockets = inherited_sockets() or _inherited_sockets(config) or config.create_sockets()
    _log_core(config)  # once the configuration is known to be servable
    if config.workers >= 1:
        from hypercorn.supervisor.arbiter import Arbiter

        if config.preload_app:
            from hypercorn.utils import load_application

            assert config.application_path is not None
            load_application(config.application_path, config.wsgi_max_body_size)
        try:
            return Arbiter(config, sockets, reload_config, watch_files).run()
        finally:
            sockets.close()
    from hypercorn.worker.serve import run_worker

    for name in ("metrics_bind", "health_bind"):
        if getattr(config, name):
            config.log.error_logger.warning(
                "%s is served by the master process: ignored with workers=0", name
            )
    try:
        if config.pid_path is not None:
            write_pid_file(config.pid_path)
        try:
            return run_worker(config, sockets)
        finally:
            if config.pid_path is not None:
                remove_pid_file(config.pid_path)
    finally:
        sockets.close()


def _log_core(config: Config) -> None:
    """Say which serving core runs; a stale compiled one is a warning (see ``compiled``)."""
    from hypercorn import __version__

    level = logging.WARNING if compiled.stale() else logging.INFO
    config.log.error_logger.log(level, "hypercorn %s, %s", __version__, compiled.describe())


def _inherited_sockets(config: Config) -> Sockets | None:
    """systemd's socket-activated listeners, which then replace ``bind``."""
    inherited = systemd_sockets()
    if not inherited:
        return None
    stream = [s for s in inherited if s.type == socket.SOCK_STREAM]
    datagram = [s for s in inherited if s.type == socket.SOCK_DGRAM]
    if config.ssl_enabled:
        return Sockets(secure_sockets=stream, quic_sockets=datagram)
    return Sockets(insecure_sockets=stream)
