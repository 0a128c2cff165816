"""``run(config)``: what the ``hypercorn`` command runs.

Until the master process arrives, every configuration is served by one
worker in the calling process: the listeners are bound here, the PID file
written, and the worker serves until it is told to stop (SIGINT or SIGTERM).
"""

from __future__ import annotations

import contextlib
import os

from hypercorn.config import Config
from hypercorn.shared.files import write_pid_file


def run(config: Config) -> int:
    """Serve ``config.application_path`` with ``config``; returns an exit code.

    Raises:
        BindError: a listener cannot be created.
        ConfigError: the TLS settings cannot be loaded.
        NoAppError: the application cannot be found.
        LifespanFailureError: the application's startup failed.
    """
    from hypercorn.worker.serve import run_worker

    if config.workers > 1:
        config.log.error_logger.warning(
            "workers=%d: serving from one process until the master process is available",
            config.workers,
        )
    config.create_ssl_context()  # fail early, before binding, on a bad certificate
    sockets = config.create_sockets()
    try:
        if config.pid_path is not None:
            write_pid_file(config.pid_path)
        try:
            return run_worker(config, sockets)
        finally:
            if config.pid_path is not None:
                _remove_pid_file(config.pid_path)
    finally:
        sockets.close()


def _remove_pid_file(path: str) -> None:
    """Remove the PID file only while it still names this process."""
    with contextlib.suppress(OSError, ValueError):
        with open(path) as file:
            if int(file.read().strip()) != os.getpid():
                return
        os.remove(path)
