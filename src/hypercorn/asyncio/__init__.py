"""Serve an application inside the caller's asyncio event loop.

``serve`` is what frameworks call to run a server in a loop they own (Quart's
``app.run_task``, FastAPI and Starlette programs that manage their own loop)::

    import asyncio
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    asyncio.run(serve(app, Config()))
"""

from __future__ import annotations

from hypercorn.worker.serve import serve

__all__ = ["serve"]
