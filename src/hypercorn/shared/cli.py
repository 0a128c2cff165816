"""The command line, built from the settings table.

Every setting with flags in ``shared/settings.py`` becomes an option; the
config file (``-c``) is read first and options given on the command line
override it. Errors a user can fix (a bad flag, a bad value, an unknown key,
an unloadable certificate, a port in use, an app that cannot be found) end
the command with one line on stderr and a distinct exit code, never a
traceback of the server's own code.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

from hypercorn.shared.settings import SETTINGS, Setting
from hypercorn.shared.validators import ConfigError

PROG = "hypercorn"


class ExitCode:
    """Exit codes of the ``hypercorn`` command (documented in the README)."""

    OK = 0
    FAILURE = 1  # an unexpected error
    USAGE = 2  # bad flags, bad configuration, unusable certificate
    BOOT_FAILURE = 3  # workers kept failing to boot
    APP_LOAD = 4  # the application could not be imported or found
    BIND = 5  # a listener could not be created (port in use, permission)
    LIFESPAN = 6  # the application's lifespan startup failed or timed out
    ALREADY_RUNNING = 7  # a live hypercorn owns the PID file


class UsageError(Exception):
    """A command-line mistake; the message is shown as is."""


class AlreadyRunningError(Exception):
    """A live hypercorn already owns the PID file."""

    def __init__(self, path: str, pid: int) -> None:
        self.path = path
        self.pid = pid
        super().__init__(f"already running (pid {pid}, PID file {path})")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _default_text(setting: Setting) -> str:
    """`` (default: X)`` for the help of a setting whose default says something."""
    value = setting.initial()
    if setting.action == "store_true" or value is None or value in ("", []):
        return ""
    if isinstance(value, list):
        value = ", ".join(str(item) for item in value)
    return f" (default: {value})"


def _add_setting(parser: argparse.ArgumentParser, setting: Setting) -> None:
    help_text = setting.doc.replace("%", "%%")
    if setting.action == "store_true":
        parser.add_argument(
            *setting.flags,
            dest=setting.name,
            action="store_true",
            default=argparse.SUPPRESS,
            help=help_text,
        )
        return
    action = "append" if setting.action == "append" else "store"
    metavar = setting.metavar or setting.name.upper()
    repeat = " Repeatable." if action == "append" else ""
    parser.add_argument(
        *setting.flags,
        dest=setting.name,
        action=action,
        default=argparse.SUPPRESS,
        metavar=metavar,
        help=help_text + repeat + _default_text(setting).replace("%", "%%"),
    )
    for flag in setting.deprecated_flags:
        parser.add_argument(
            flag,
            dest=f"deprecated:{flag}:{setting.name}",
            default=argparse.SUPPRESS,
            metavar=metavar,
            help=f"Deprecated alias of {setting.flags[0]}.",
        )


def build_parser() -> argparse.ArgumentParser:
    """The ``hypercorn`` argument parser."""
    from hypercorn import __version__
    from hypercorn.shared import compiled

    parser = _Parser(
        prog=PROG,
        description="Serve an ASGI or WSGI application over HTTP/1.1, HTTP/2, "
        "WebSockets and HTTP/3.",
    )
    parser.add_argument(
        "application",
        help="The application as module:attribute (also mode:module:attribute, "
        "path/to/file.py:attribute, module:factory()).",
    )
    parser.add_argument(
        "-c",
        "--config",
        default=None,
        metavar="CONFIG",
        help="A TOML config file, or `file:path.py` (a Python file), or `python:module`.",
    )
    parser.add_argument(
        "--cert-reqs",
        dest="verify_mode",
        default=argparse.SUPPRESS,
        help="Deprecated alias of --verify-mode, as an integer.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}, {compiled.describe()}"
    )
    for setting in SETTINGS:
        if setting.flags:
            _add_setting(parser, setting)
    return parser


def load_config_source(source: str | None) -> Any:
    """Load the ``-c`` config: TOML file, ``file:`` Python file or ``python:`` module."""
    from hypercorn.shared.config import Config

    if source is None:
        return Config()
    if source.startswith("python:"):
        return Config.from_object(source[len("python:") :])
    if source.startswith("file:"):
        return Config.from_pyfile(source[len("file:") :])
    return Config.from_toml(source)


def config_file(argv: Sequence[str]) -> str | None:
    """The file behind ``-c`` in ``argv`` (absolute), for ``--reload`` to watch.

    Returns:
        The TOML or Python file, the file of a ``python:`` module, or None
        without ``-c`` (or for a module that is not a file).

    Raises:
        UsageError: the command line is malformed.
    """
    source: str | None = build_parser().parse_args(list(argv)).config
    if source is None:
        return None
    if source.startswith("python:"):
        module = source[len("python:") :].split(":")[0]
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            return None
        origin = spec.origin if spec is not None else None
        return origin if origin is not None and os.path.isfile(origin) else None
    return os.path.abspath(source.removeprefix("file:"))


def config_from_args(argv: Sequence[str]) -> Any:
    """Parse ``argv`` into a ``Config`` with ``application_path`` set.

    Raises:
        UsageError: the command line is malformed.
        ConfigError: a value or config file is invalid.
    """
    args = vars(build_parser().parse_args(list(argv)))
    config = load_config_source(args.pop("config"))
    config.application_path = args.pop("application")
    for key, value in args.items():
        if key.startswith("deprecated:"):
            _, flag, key = key.split(":")
            new_flag = next(s.flags[0] for s in SETTINGS if s.name == key)
            print(f"{PROG}: warning: {flag} is deprecated, use {new_flag}", file=sys.stderr)
        try:
            setattr(config, key, value)
        except ConfigError as error:
            flags = "/".join(_FLAGS.get(key, (key,)))
            raise UsageError(f"argument {flags}: {error}") from None
    return config


_FLAGS: dict[str, tuple[str, ...]] = {s.name: s.flags for s in SETTINGS if s.flags}


def fail(message: str, code: int) -> int:
    """Print ``hypercorn: error: message`` on stderr; returns ``code``.

    One write with its newline: ``print`` writes the end apart, and with
    ``PYTHONUNBUFFERED`` each is its own system call, so a worker stopped
    between the two left the master's last line glued to its own.
    """
    sys.stderr.write(f"{PROG}: error: {message}\n")
    sys.stderr.flush()
    return code


def _user_traceback(error: BaseException) -> str:
    """The traceback of an error raised by the user's code, without the server's frames."""
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if "/hypercorn/" not in frame.filename and "importlib" not in frame.filename
    ]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)]
    return "".join(lines + traceback.format_exception_only(type(error), error))


def describe_error(
    error: BaseException, application_path: str | None, importing: bool = False
) -> tuple[int, str, str]:
    """What the command says about ``error``: ``(exit code, traceback, message)``.

    Args:
        error: the error.
        application_path: the application, as the user named it.
        importing: ``error`` was raised while importing the application
            (``load_application``): any exception is then said as a failed
            import, with the user's code's part of its traceback.

    Returns:
        The exit code; the traceback to show (the user's code's part only;
        empty when the message says it all); the one-line message, without the
        ``hypercorn: error:`` prefix. An error no user can fix is
        ``ExitCode.FAILURE``, with its whole traceback.
    """
    from hypercorn.shared.errors import LifespanFailureError, LifespanTimeoutError, NoAppError
    from hypercorn.shared.sockets import BindError, SocketTypeError

    codes: list[tuple[type[BaseException] | tuple[type[BaseException], ...], int]] = [
        (AlreadyRunningError, ExitCode.ALREADY_RUNNING),
        (ConfigError, ExitCode.USAGE),
        (NoAppError, ExitCode.APP_LOAD),
        ((BindError, SocketTypeError), ExitCode.BIND),
        ((LifespanFailureError, LifespanTimeoutError), ExitCode.LIFESPAN),
    ]
    for kinds, code in codes:
        if isinstance(error, kinds):
            return code, "", str(error)
    message = f"cannot import application {application_path!r}: {error}"
    if isinstance(error, ImportError | SyntaxError):
        return ExitCode.APP_LOAD, _user_traceback(error), message
    if importing:
        message = f"cannot import application {application_path!r}: {type(error).__name__}: {error}"
        return ExitCode.FAILURE, _user_traceback(error), message
    whole = "".join(traceback.format_exception(error))
    return ExitCode.FAILURE, whole, f"{type(error).__name__}: {error}"


def report_error(error: BaseException, application_path: str | None) -> int | None:
    """Print a user-fixable error the way the command does; returns its exit code.

    Used by the command itself and by each worker process, so that a worker
    that cannot load the application says so in the same words.

    Returns:
        The exit code, or None when ``error`` is not one a user can fix (the
        caller then shows it with its full traceback).
    """
    code, detail, message = describe_error(error, application_path)
    if code == ExitCode.FAILURE:
        return None
    sys.stderr.write(detail)
    return fail(message, code)
