"""``AsyncioWSGIMiddleware``: a WSGI application as an ASGI one, inside an ASGI stack.

``TrioWSGIMiddleware``, Hypercorn's name for it under trio, is the same class:
it runs on either (under trio the application runs in ``trio.to_thread``).

It is the server's own WSGI adapter (``shared.wrappers.WSGIWrapper``): the
request body is read on the loop up to ``max_body_size`` (past it: 413), the
application runs in a thread pool and its response is sent back as it is
produced, with back-pressure. WebSocket scopes are closed; the lifespan scope
is answered on the application's behalf.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hypercorn.shared.wrappers import WSGIWrapper

if TYPE_CHECKING:
    from hypercorn.typing import WSGIFramework

__all__ = ["MAX_BODY_SIZE", "AsyncioWSGIMiddleware", "TrioWSGIMiddleware"]

MAX_BODY_SIZE = 2**16
"""The default largest request body, in bytes, given to the WSGI application."""


class AsyncioWSGIMiddleware(WSGIWrapper):
    """Serve a WSGI application as an ASGI 3 application.

    Example, a Flask app mounted beside an ASGI one::

        app = DispatcherMiddleware({"/legacy": AsyncioWSGIMiddleware(flask_app), "": asgi_app})
    """

    def __init__(self, wsgi_app: WSGIFramework, max_body_size: int = MAX_BODY_SIZE) -> None:
        """Wrap ``wsgi_app``.

        Args:
            wsgi_app: the WSGI (PEP 3333) application.
            max_body_size: the largest request body in bytes; a larger one is
                answered 413 without calling the application.
        """
        super().__init__(wsgi_app, max_body_size)
        self.wsgi_app = wsgi_app

    def __repr__(self) -> str:
        return f"AsyncioWSGIMiddleware({self.wsgi_app!r}, max_body_size={self.max_body_size})"


TrioWSGIMiddleware = AsyncioWSGIMiddleware
