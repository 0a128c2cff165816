"""A real browser over HTTP/3: headless Chromium forced onto QUIC loads a page.

Chromium is told to use QUIC for the server's origin
(``--origin-to-force-quic-on``: no Alt-Svc discovery, no TCP fallback) and to
trust the self-signed certificate through its SPKI pin
(``--ignore-certificate-errors-spki-list``; Chromium accepts no other way
over QUIC). The page reports the protocol it was loaded with
(``nextHopProtocol``), which must be ``h3``, and the app must have seen
``http_version`` "3". Chromium comes from ``make tools`` (Debian
``chromium``); playwright-core from ``.tools/node``, or else npm installs it
into a cache directory on first use.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.e2e.browser import available, run_driver
from tests.e2e.conftest import make_config, serving

pytestmark = [pytest.mark.asyncio, pytest.mark.slow, available]

DRIVER = """
const { chromium } = require('playwright-core');
const [url, origin, spki, executablePath] = process.argv.slice(2);
(async () => {
  const browser = await chromium.launch({
    executablePath, headless: true, timeout: 30000,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--enable-quic',
           '--origin-to-force-quic-on=' + origin, '--ignore-certificate-errors-spki-list=' + spki,
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage();
    const loads = [];
    for (let i = 0; i < 2; i++) {
      const response = await page.goto(url + '?n=' + i, { timeout: 20000 });
      const protocol = await page.evaluate(
        () => performance.getEntriesByType('navigation')[0].nextHopProtocol);
      loads.push({ status: response.status(), protocol, title: await page.title() });
    }
    console.log(JSON.stringify({ loads }));
  } finally {
    await browser.close();
  }
})().catch((e) => { console.log(JSON.stringify({ error: e.message })); process.exit(1); });
"""

PAGE = b"<!doctype html><html><head><title>served over h3</title></head><body>ok</body></html>"
versions: list[str] = []


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    versions.append(scope["http_version"])
    headers = [(b"content-type", b"text/html; charset=utf-8")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": PAGE})


def _spki_pin(cert_pem: bytes) -> str:
    """base64(sha256(SubjectPublicKeyInfo)), as Chromium's pin list wants it."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


async def test_chromium_loads_page_over_h3(tmp_path: Path) -> None:
    cert = trustme.CA().issue_cert("127.0.0.1", "localhost")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_pem.write_to_path(str(keyfile))
    certfile.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    versions.clear()
    config = make_config(certfile=str(certfile), keyfile=str(keyfile), quic_bind=["127.0.0.1:0"])
    async with serving(app, config):
        origin = f"127.0.0.1:{config._quic_addresses[0][1]}"
        pin = _spki_pin(cert.cert_chain_pems[0].bytes())
        result = await run_driver(tmp_path, DRIVER, f"https://{origin}/", origin, pin)
    print("chromium:", result)
    loads = result.get("loads")
    assert loads, result
    for load in loads:
        assert load == {"status": 200, "protocol": "h3", "title": "served over h3"}
    assert versions and set(versions) == {"3"}
