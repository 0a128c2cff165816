"""The smallest ASGI application. Serve it with ``hypercorn hello:app``."""


async def app(scope, receive, send):
    if scope["type"] != "http":
        return  # no lifespan: the server carries on without it
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": b"Hello, world!\n"})
