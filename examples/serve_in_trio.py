"""Serve an application from your own trio program, as quart-trio's ``run_task`` does.

``python serve_in_trio.py [ADDRESS]`` serves ``hello:app`` until SIGINT or SIGTERM.
"""

import functools
import signal
import sys

import trio
from hello import app

from hypercorn.config import Config
from hypercorn.trio import serve


async def stop_on_signal() -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            return


async def main(bind: str = "127.0.0.1:8000") -> None:
    config = Config()
    config.bind = [bind]
    async with trio.open_nursery() as nursery:
        # start() returns once the app has started and the sockets accept.
        urls = await nursery.start(
            functools.partial(serve, app, config, shutdown_trigger=stop_on_signal)
        )
        print("serving on", *urls, flush=True)
        # The nursery ends when serve does: once a signal came and the
        # open connections are drained.


if __name__ == "__main__":
    trio.run(main, *sys.argv[1:])
