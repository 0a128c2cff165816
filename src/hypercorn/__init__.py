"""hypercorn: an ASGI and WSGI web server for HTTP/1.1, HTTP/2, WebSockets and HTTP/3."""

from __future__ import annotations

from hypercorn.shared import compiled

__version__ = "1.0.0.dev0"

# Marks this distribution as the product itself (tests check it is the one imported).
__product__ = "hypercorn-server"

__all__ = ["__version__"]

# Before any module of the serving core is imported: its compiled build, or its source.
compiled.select()
