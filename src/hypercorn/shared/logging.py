"""The server's logger: an access log and an error log built from the config.

Theory of operation. The two logs are the stdlib loggers ``hypercorn.access``
and ``hypercorn.error``, so a logging config (``logconfig``,
``logconfig_dict``) or the application can reach them by name. The logging
module's state is global: building a ``Logger`` replaces the handlers that a
previous one attached to those two loggers (and closes them), and leaves any
other handler alone. Our handlers are recognised by their classes.

The error log always exists (``error_logger`` is never ``None``, so code may
call it unconditionally); with ``errorlog=None`` it has no output of its own.
The access log exists only when ``accesslog`` is set, or when a logging config
gives ``hypercorn.access`` a handler; otherwise ``access_logger`` is ``None``
and ``access`` returns at once.

The async methods (``access``, ``info``, ...) are the Hypercorn API that
subclasses override; their records name the caller's function and line
(``stacklevel=2``), not this module. Code outside an event loop logs through
the stdlib logger directly, ``logger.error_logger.warning(...)``, or writes an
access line with ``access_sync``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

from hypercorn.shared.access_log import AccessLogAtoms
from hypercorn.shared.validators import ConfigError

if TYPE_CHECKING:
    from hypercorn.shared.config import Config

__all__ = ["AccessLogAtoms", "Logger"]

ACCESS_LOGGER_NAME = "hypercorn.access"
ERROR_LOGGER_NAME = "hypercorn.error"
ERROR_LOG_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"
ERROR_LOG_DATEFMT = "%Y-%m-%d %H:%M:%S %z"
ACCESS_LOG_FORMAT = "%(message)s"


class _StandardStreamHandler(logging.StreamHandler[TextIO]):
    """Writes to ``sys.stdout`` or ``sys.stderr`` as they are at each write.

    Looking the stream up per record follows a redirection made after the
    logger was built (daemonizing, test capture).
    """

    def __init__(self, name: str) -> None:
        self._stream_name = name
        super().__init__()

    @property
    def stream(self) -> TextIO:
        stream: TextIO = getattr(sys, self._stream_name)
        return stream

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass  # the stream is always the current standard one


class _LogFileHandler(logging.FileHandler):
    """A log file opened for appending, which ``Logger.reopen_files`` may reopen."""


class _DisabledHandler(logging.NullHandler):
    """Swallows a disabled log's records, which would otherwise reach ``logging.lastResort``."""


_OUR_HANDLERS = (_StandardStreamHandler, _LogFileHandler, _DisabledHandler)


def _handler_for(target: str, stream_name: str) -> logging.Handler:
    if target == "-":
        return _StandardStreamHandler(stream_name)
    try:
        return _LogFileHandler(target, mode="a", encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot open log file {target}: {error.strerror}") from None


def _release(logger: logging.Logger) -> None:
    """Remove and close the handlers a previous ``Logger`` attached to ``logger``."""
    for handler in list(logger.handlers):
        if isinstance(handler, _OUR_HANDLERS):
            logger.removeHandler(handler)
            handler.close()


def _configure(
    name: str,
    target: logging.Logger | str | None,
    stream_name: str,
    level: int,
    formatter: logging.Formatter,
) -> logging.Logger | None:
    """The logger for one log: ``target`` itself, a named logger with a handler, or None."""
    logger = logging.getLogger(name)
    _release(logger)
    if isinstance(target, logging.Logger):
        return target
    if target is None:
        return None
    handler = _handler_for(target, stream_name)
    handler.setFormatter(formatter)
    # The log's own output is its first handler (``logger.handlers[0]``, as in
    # Hypercorn); handlers others attached stay, after it.
    logger.handlers = [handler, *logger.handlers]
    logger.setLevel(level)
    logger.propagate = False
    return logger


def _load_mapping(path: str, kind: str) -> dict[str, Any]:
    import json
    import tomllib

    try:
        with open(path, "rb") as file:
            data: Any = json.load(file) if kind == "json" else tomllib.load(file)
    except OSError as error:
        raise ConfigError(f"cannot read log config file {path}: {error.strerror}") from None
    except (ValueError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"invalid {kind.upper()} in log config file {path}: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"log config file {path} must hold a table/object")
    return data


def _apply_dict(data: Mapping[str, Any], source: str) -> None:
    config = dict(data)
    # Loggers the mapping does not name (the server's, the app's) keep working
    # unless the mapping says otherwise; dictConfig's own default disables them.
    config.setdefault("disable_existing_loggers", False)
    import logging.config

    try:
        logging.config.dictConfig(config)
    except (ValueError, TypeError, AttributeError, ImportError) as error:
        raise ConfigError(f"invalid log config in {source}: {error}") from None


def apply_logconfig(logconfig: str | None, logconfig_dict: Mapping[str, Any] | None) -> None:
    """Apply the user's logging configuration, if any.

    Args:
        logconfig: an ini file for ``logging.config.fileConfig``, or ``json:PATH``
            or ``toml:PATH`` for a ``dictConfig`` mapping stored in a file.
        logconfig_dict: a ``dictConfig`` mapping, applied after ``logconfig``.

    Unlike plain ``dictConfig``, a mapping without ``disable_existing_loggers``
    leaves the loggers it does not name enabled, as ``fileConfig`` is told to.

    Raises:
        ConfigError: the file cannot be read or the configuration is invalid;
            the message names the file.
    """
    if logconfig is not None:
        kind, colon, rest = logconfig.partition(":")
        if colon and kind in {"json", "toml"}:
            _apply_dict(_load_mapping(rest, kind), f"log config file {rest}")
        else:
            if not os.path.isfile(logconfig):
                raise ConfigError(f"cannot read log config file {logconfig}: no such file")
            defaults = {"__file__": logconfig, "here": os.path.dirname(logconfig)}
            import logging.config

            try:
                logging.config.fileConfig(
                    logconfig, defaults=defaults, disable_existing_loggers=False
                )
            except Exception as error:  # fileConfig raises whatever the ini provokes
                raise ConfigError(f"invalid log config file {logconfig}: {error!r}") from None
    if logconfig_dict is not None:
        _apply_dict(logconfig_dict, "logconfig_dict")


class Logger:
    """Access and error logging for the server.

    Args:
        config: the server's config; its ``accesslog``, ``access_log_format``,
            ``errorlog``, ``loglevel``, ``logconfig`` and ``logconfig_dict`` are read.

    Raises:
        ConfigError: a log file cannot be opened or a logging config is invalid.

    Attributes:
        access_logger: the stdlib logger of the access log, or None when disabled.
        error_logger: the stdlib logger of the error log (never None); use it
            to log synchronously.
        access_log_format: the %-format of an access log line.
    """

    def __init__(self, config: Config) -> None:
        self.access_log_format: str = config.access_log_format
        level = logging.getLevelNamesMapping().get(config.loglevel.upper(), logging.INFO)
        if config.debug:
            level = min(level, logging.DEBUG)
        formatter = logging.Formatter(ERROR_LOG_FORMAT, ERROR_LOG_DATEFMT)
        self.access_logger: logging.Logger | None = _configure(
            ACCESS_LOGGER_NAME,
            config.accesslog,
            "stdout",
            logging.INFO,
            logging.Formatter(ACCESS_LOG_FORMAT),
        )
        error_logger = _configure(ERROR_LOGGER_NAME, config.errorlog, "stderr", level, formatter)
        if error_logger is None:
            # Disabled: it keeps its name, so a logging config may still give it handlers.
            error_logger = logging.getLogger(ERROR_LOGGER_NAME)
            error_logger.addHandler(_DisabledHandler())
            error_logger.setLevel(level)
            error_logger.propagate = False
        self.error_logger: logging.Logger = error_logger

        apply_logconfig(config.logconfig, config.logconfig_dict)
        if self.access_logger is None and (config.logconfig or config.logconfig_dict):
            configured = logging.getLogger(ACCESS_LOGGER_NAME)
            if configured.handlers:
                # Access lines are INFO records: a config that names no level still shows them.
                if configured.level == logging.NOTSET:
                    configured.setLevel(logging.INFO)
                self.access_logger = configured

    # ------------------------------------------------------------------ access

    async def access(
        self, request: Mapping[str, Any], response: Mapping[str, Any] | None, request_time: float
    ) -> None:
        """Log one finished request or WebSocket session.

        Args:
            request: the ASGI ``http`` or ``websocket`` scope.
            response: the ``http.response.start`` message, with an optional
                ``int`` ``body_size``; for a WebSocket ``{"status": 101, ...}`` or
                the denial's; None when no response was sent.
            request_time: the duration in seconds.
        """
        logger = self.access_logger
        if logger is not None and logger.isEnabledFor(logging.INFO):
            logger.info(self.access_log_format, self.atoms(request, response, request_time))

    def access_sync(
        self, request: Mapping[str, Any], response: Mapping[str, Any] | None, request_time: float
    ) -> None:
        """``access`` without the coroutine, for callers outside an event loop."""
        logger = self.access_logger
        if logger is not None and logger.isEnabledFor(logging.INFO):
            logger.info(self.access_log_format, self.atoms(request, response, request_time))

    def atoms(
        self, request: Mapping[str, Any], response: Mapping[str, Any] | None, request_time: float
    ) -> Mapping[str, Any]:
        """The values an access log line may use; override to add atoms."""
        return AccessLogAtoms(request, response, request_time)

    # ------------------------------------------------------------------- error

    async def critical(self, message: str, *args: Any, **kwargs: Any) -> None:
        """Log ``message % args`` at CRITICAL level on the error log."""
        kwargs.setdefault("stacklevel", 2)
        self.error_logger.critical(message, *args, **kwargs)

    async def error(self, message: str, *args: Any, **kwargs: Any) -> None:
        """Log ``message % args`` at ERROR level on the error log."""
        kwargs.setdefault("stacklevel", 2)
        self.error_logger.error(message, *args, **kwargs)

    async def warning(self, message: str, *args: Any, **kwargs: Any) -> None:
        """Log ``message % args`` at WARNING level on the error log."""
        kwargs.setdefault("stacklevel", 2)
        self.error_logger.warning(message, *args, **kwargs)

    async def info(self, message: str, *args: Any, **kwargs: Any) -> None:
        """Log ``message % args`` at INFO level on the error log."""
        kwargs.setdefault("stacklevel", 2)
        self.error_logger.info(message, *args, **kwargs)

    async def debug(self, message: str, *args: Any, **kwargs: Any) -> None:
        """Log ``message % args`` at DEBUG level on the error log."""
        kwargs.setdefault("stacklevel", 2)
        self.error_logger.debug(message, *args, **kwargs)

    async def exception(self, message: str, *args: Any, **kwargs: Any) -> None:
        """Log ``message % args`` at ERROR level with the current exception's traceback."""
        kwargs.setdefault("stacklevel", 2)
        self.error_logger.exception(message, *args, **kwargs)

    async def log(self, level: int, message: str, *args: Any, **kwargs: Any) -> None:
        """Log ``message % args`` at ``level`` on the error log."""
        kwargs.setdefault("stacklevel", 2)
        self.error_logger.log(level, message, *args, **kwargs)

    # --------------------------------------------------------------- lifecycle

    def _handlers(self) -> list[logging.Handler]:
        loggers = [self.error_logger]
        if self.access_logger is not None and self.access_logger is not self.error_logger:
            loggers.append(self.access_logger)
        return [handler for logger in loggers for handler in logger.handlers]

    def reopen_files(self) -> None:
        """Reopen the log files (after logrotate moved them; the server does it on USR1).

        Every ``logging.FileHandler`` of the two logs gets a fresh file at its
        path, opened for appending; the old file is flushed and closed.
        """
        for handler in self._handlers():
            if isinstance(handler, logging.FileHandler):
                stream = open(  # noqa: SIM115  (the handler owns and closes it)
                    handler.baseFilename, "a", encoding=handler.encoding, errors=handler.errors
                )
                old = handler.setStream(stream)
                if old is not None:
                    old.close()

    def close(self) -> None:
        """Detach and close the handlers this class attached (at shutdown, in tests)."""
        for name in (ACCESS_LOGGER_NAME, ERROR_LOGGER_NAME):
            _release(logging.getLogger(name))
        for logger in (self.access_logger, self.error_logger):
            if logger is not None:
                _release(logger)

    def __getattr__(self, name: str) -> Any:
        # Hypercorn's Logger forwards other names (``isEnabledFor``, ``handlers``...)
        # to the error logger; apps rely on it.
        if name in {"access_logger", "error_logger"}:
            raise AttributeError(name)
        return getattr(self.error_logger, name)
