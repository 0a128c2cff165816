"""The ``hypercorn`` command: ``hypercorn [options] module:app``."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence

from hypercorn.shared.cli import PROG, ExitCode, UsageError, config_from_args


def _fail(message: str, code: int) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    from hypercorn.shared.validators import ConfigError

    try:
        config = config_from_args(sys.argv[1:] if argv is None else argv)
    except (UsageError, ConfigError) as error:
        return _fail(str(error), ExitCode.USAGE)
    except SyntaxError as error:
        return _fail(f"invalid Python config file: {error}", ExitCode.USAGE)
    from hypercorn.run import run
    from hypercorn.shared.errors import LifespanFailureError, LifespanTimeoutError, NoAppError
    from hypercorn.shared.sockets import BindError, SocketTypeError

    try:
        return run(config)
    except ConfigError as error:
        return _fail(str(error), ExitCode.USAGE)
    except NoAppError as error:
        return _fail(str(error), ExitCode.APP_LOAD)
    except (BindError, SocketTypeError) as error:
        return _fail(str(error), ExitCode.BIND)
    except (LifespanFailureError, LifespanTimeoutError) as error:
        return _fail(str(error), ExitCode.LIFESPAN)
    except (ImportError, SyntaxError) as error:
        sys.stderr.write(_user_traceback(error))
        return _fail(
            f"cannot import application {config.application_path!r}: {error}", ExitCode.APP_LOAD
        )
    except KeyboardInterrupt:
        return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
