"""A WebSocket echo server: ``hypercorn websocket_echo:app``, then connect to ws://.../."""


async def app(scope, receive, send):
    if scope["type"] != "websocket":
        return
    message = await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
