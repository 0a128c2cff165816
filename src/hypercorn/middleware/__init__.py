"""ASGI middleware to put around an application.

* ``DispatcherMiddleware`` (also ``AsyncioDispatcherMiddleware`` and
  ``TrioDispatcherMiddleware``): mount several applications by path prefix.
* ``HTTPToHTTPSRedirectMiddleware``: send plain-text clients to the https/wss URL.
* ``ProxyFixMiddleware``: take the client, scheme and host that a trusted
  reverse proxy reports (``X-Forwarded-*`` or RFC 7239 ``Forwarded``).
* ``AsyncioWSGIMiddleware`` (also ``TrioWSGIMiddleware``): a WSGI application
  inside an ASGI stack.
"""

from hypercorn.middleware.dispatcher import (
    AsyncioDispatcherMiddleware,
    DispatcherMiddleware,
    TrioDispatcherMiddleware,
)
from hypercorn.middleware.http_to_https import HTTPToHTTPSRedirectMiddleware
from hypercorn.middleware.proxy_fix import ProxyFixMiddleware
from hypercorn.middleware.wsgi import AsyncioWSGIMiddleware, TrioWSGIMiddleware

__all__ = [
    "AsyncioDispatcherMiddleware",
    "AsyncioWSGIMiddleware",
    "DispatcherMiddleware",
    "HTTPToHTTPSRedirectMiddleware",
    "ProxyFixMiddleware",
    "TrioDispatcherMiddleware",
    "TrioWSGIMiddleware",
]
