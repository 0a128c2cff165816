"""A real browser: headless Chromium loads a page over TLS and echoes a WebSocket message.

The page reports the protocol it was loaded with
(``performance.getEntries()[0].nextHopProtocol``, which must be ``h2``), opens
a WebSocket to the same server, sends a message and writes the echo into its
title; the test reads the title back. Chromium (Debian ``chromium``) and
playwright-core come from ``make tools`` (see ``tests/e2e/browser.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.e2e.browser import available, run_driver
from tests.e2e.conftest import running_server
from tests.e2e.test_websocket import echo_app

pytestmark = [pytest.mark.asyncio, pytest.mark.slow, available]

PAGE = b"""<!doctype html><html><head><title>pending</title></head><body><script>
const proto = performance.getEntries()[0].nextHopProtocol;
const ws = new WebSocket('wss://' + location.host + '/ws');
const message = 'hello from chromium';
ws.onopen = () => ws.send(message);
ws.onmessage = (e) => {
  document.title = proto + ' ' + (e.data === message ? 'ECHO ' + e.data : 'MISMATCH');
  ws.close(1000);
};
ws.onerror = () => { document.title = proto + ' WS-ERROR'; };
</script></body></html>"""

DRIVER = """
const { chromium } = require('playwright-core');
const [url, executablePath] = process.argv.slice(2);
(async () => {
  const browser = await chromium.launch({
    executablePath, headless: true, timeout: 30000,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-quic',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await (await browser.newContext({ ignoreHTTPSErrors: true })).newPage();
    const response = await page.goto(url);
    await page.waitForFunction(() => document.title !== 'pending', null, { timeout: 15000 });
    console.log(JSON.stringify({ status: response.status(), title: await page.title() }));
  } finally {
    await browser.close();
  }
})().catch((e) => { console.log(JSON.stringify({ error: e.message })); process.exit(1); });
"""


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        seen.append(scope["http_version"])
        await echo_app(scope, receive, send)
    elif scope["type"] == "http":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/html; charset=utf-8")],
            }
        )
        await send({"type": "http.response.body", "body": PAGE})


seen: list[str] = []


async def test_chromium_loads_over_h2_and_echoes(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_pem.write_to_path(str(keyfile))
    certfile.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    seen.clear()
    async with running_server(app, certfile=str(certfile), keyfile=str(keyfile)) as address:
        result = await run_driver(tmp_path, DRIVER, f"https://localhost:{address.port}/")
    assert result.get("status") == 200, result
    assert result["title"] == "h2 ECHO hello from chromium"
    # Chromium opens the WebSocket on the page's HTTP/2 connection (RFC 8441).
    assert seen == ["2"], seen
