"""The ``hypercorn`` command: ``hypercorn [options] module:app``, and ``hypercorn ctl ...``.

``ctl`` as the first word is reserved for the control commands (see
``hypercorn.supervisor.control``); an application module named ``ctl`` is
written ``ctl:app``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from hypercorn.shared.cli import (
    ExitCode,
    UsageError,
    config_file,
    config_from_args,
    fail,
    report_error,
)

if TYPE_CHECKING:
    from hypercorn.config import Config

CONTROL_WORD = "ctl"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    from hypercorn.shared.validators import ConfigError

    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == [CONTROL_WORD]:
        from hypercorn.supervisor.control import main as control

        return control(args[1:])
    try:
        config = config_from_args(args)
        watch = config_file(args) if config.use_reloader else None  # before any --chdir
        if config.daemon and config.workers == 0:
            raise UsageError("--daemon needs a master: --workers 1 or more")
    except (UsageError, ConfigError) as error:
        return fail(str(error), ExitCode.USAGE)
    except SyntaxError as error:
        return fail(f"invalid Python config file: {error}", ExitCode.USAGE)
    code: int = ExitCode.FAILURE
    try:
        _prepare(config)
        from hypercorn.run import run

        # HUP re-reads the config file and the same options.
        code = run(
            config,
            reload_config=lambda: config_from_args(args),
            watch_files=[watch] if watch is not None else [],
        )
    except KeyboardInterrupt:
        code = ExitCode.OK
    except Exception as error:
        reported = report_error(error, config.application_path)
        if reported is None:
            raise
        code = reported
    finally:
        from hypercorn.supervisor.daemon import current_link

        if (link := current_link()) is not None:
            link.exited(code)  # the launcher is still waiting: tell it how this ended
    return code


def _prepare(config: Config) -> None:
    """``chdir``, then ``--daemon``: detach (or, after a USR2 upgrade, only relay stdio).

    Raises:
        AlreadyRunningError: a live hypercorn owns the PID file (checked before
            detaching, so the error shows where the command was typed).
        OSError: the directory cannot be entered.
    """
    from hypercorn.supervisor.daemon import daemonize, relay_stdio
    from hypercorn.supervisor.pidfile import check_pid_file
    from hypercorn.supervisor.upgrade import inherited_from

    if config.pid_path is not None:
        # Relative to where the command was typed, whatever --chdir says.
        config.pid_path = os.path.abspath(config.pid_path)
    if config.chdir is not None:
        os.chdir(config.chdir)
    if not config.daemon:
        return
    if inherited_from() is not None:
        relay_stdio(config)  # already detached; the old master's relay goes with it
        return
    if config.pid_path is not None:
        check_pid_file(config.pid_path)
    daemonize(config)


if __name__ == "__main__":
    sys.exit(main())
