"""The ``hypercorn`` command: ``hypercorn [options] module:app``."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from hypercorn.shared.cli import ExitCode, UsageError, config_from_args, fail, report_error


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    from hypercorn.shared.validators import ConfigError

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        config = config_from_args(args)
    except (UsageError, ConfigError) as error:
        return fail(str(error), ExitCode.USAGE)
    except SyntaxError as error:
        return fail(f"invalid Python config file: {error}", ExitCode.USAGE)
    from hypercorn.run import run

    try:
        # HUP re-reads the config file and the same options.
        return run(config, reload_config=lambda: config_from_args(args))
    except KeyboardInterrupt:
        return ExitCode.OK
    except Exception as error:
        code = report_error(error, config.application_path)
        if code is None:
            raise
        return code


if __name__ == "__main__":
    sys.exit(main())
