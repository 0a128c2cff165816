"""The framework scenario's app: a FastAPI JSON endpoint, the same on every server.

``/json`` answers ``{"message": "Hello, world!", "n": <the query's n>}`` through
FastAPI's routing, validation and JSON response; ``/`` answers the readiness
probe.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

app = FastAPI()


@app.get("/json")
async def hello(n: int = 0) -> dict[str, object]:
    return {"message": "Hello, world!", "n": n}


@app.get("/", response_class=PlainTextResponse)
async def ready() -> str:
    return "Hello, world!"
