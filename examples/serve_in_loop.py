"""Serve an application from your own asyncio program, as Quart's ``run_task`` does.

``python serve_in_loop.py [ADDRESS]`` serves ``hello:app`` until SIGINT or SIGTERM.
"""

import asyncio
import signal
import sys

from hello import app

from hypercorn.asyncio import serve
from hypercorn.config import Config


async def main(bind: str = "127.0.0.1:8000") -> None:
    config = Config()
    config.bind = [bind]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    # Returns once stop is set and the open connections are drained.
    await serve(app, config, shutdown_trigger=stop.wait)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
