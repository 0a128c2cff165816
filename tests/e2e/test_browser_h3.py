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

import asyncio
import base64
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.e2e.conftest import make_config, scaled, serving

ROOT = Path(__file__).parents[2]
TOOLS_NODE = Path(os.environ.get("HYPERCORN_NODE_DIR", ROOT / ".tools" / "node"))
CACHE_NODE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hypercorn-node"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.slow,
    pytest.mark.skipif(
        not (Path(CHROMIUM).exists() and shutil.which("node")),
        reason="chromium and node not installed (make tools)",
    ),
]

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


async def _node_dir() -> Path:
    """A directory with playwright-core in node_modules, installing it if needed."""
    for candidate in (TOOLS_NODE, CACHE_NODE):
        if (candidate / "node_modules" / "playwright-core").is_dir():
            return candidate
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("playwright-core not installed and npm missing (make tools)")
    CACHE_NODE.mkdir(parents=True, exist_ok=True)
    process = await asyncio.create_subprocess_exec(
        npm, "install", "--no-audit", "--no-fund", "--silent", "--prefix", str(CACHE_NODE),
        "playwright-core",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), scaled(300))
    assert process.returncode == 0, err.decode()[-2000:]
    return CACHE_NODE


def _spki_pin(cert_pem: bytes) -> str:
    """base64(sha256(SubjectPublicKeyInfo)), as Chromium's pin list wants it."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


async def test_chromium_loads_page_over_h3(tmp_path: Path) -> None:
    node_dir = await _node_dir()
    cert = trustme.CA().issue_cert("127.0.0.1", "localhost")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_pem.write_to_path(str(keyfile))
    certfile.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    script = tmp_path / "driver.cjs"
    script.write_text(DRIVER)
    versions.clear()
    config = make_config(certfile=str(certfile), keyfile=str(keyfile), quic_bind=["127.0.0.1:0"])
    async with serving(app, config):
        origin = f"127.0.0.1:{config._quic_addresses[0][1]}"
        process = await asyncio.create_subprocess_exec(
            "node",
            str(script),
            f"https://{origin}/",
            origin,
            _spki_pin(cert.cert_chain_pems[0].bytes()),
            CHROMIUM,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=node_dir,
            env={**os.environ, "NODE_PATH": str(node_dir / "node_modules")},
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), scaled(90))
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    lines = out.decode().strip().splitlines()
    assert lines, err.decode()[-2000:]
    result = json.loads(lines[-1])
    print("chromium:", result)
    loads = result.get("loads")
    assert loads, result
    for load in loads:
        assert load == {"status": 200, "protocol": "h3", "title": "served over h3"}
    assert versions and set(versions) == {"3"}
