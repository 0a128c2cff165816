"""A quart-trio application: ``hypercorn -k trio trio_app:app`` serves it on trio."""

import sniffio
from quart import request, websocket
from quart_trio import QuartTrio

app = QuartTrio(__name__)


@app.route("/", methods=["GET", "POST"])
async def index() -> str:
    body = (await request.get_data()).decode()
    return f"Hello from {sniffio.current_async_library()}! {body}".strip() + "\n"


@app.websocket("/ws")
async def echo() -> None:
    while True:
        message = await websocket.receive()
        await websocket.send(f"echo: {message}")
