"""TLS with trustme certificates: https scope, the ASGI TLS extension, ALPN."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from tests.e2e.conftest import (
    close_raw,
    read_response,
    running_server,
    scaled,
    write_server_cert,
)
from tests.e2e.test_http11_asgi import SIZES, pattern, sized_app

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("worker_class")]


@pytest.fixture
def server_files(ca: trustme.CA, tmp_path: Path) -> dict[str, str]:
    files = write_server_cert(ca, tmp_path)
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    return {**files, "ca_certs": str(cafile)}


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


scopes: list[dict[str, Any]] = []


async def scope_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    scopes.append(scope)
    await send({"type": "http.response.start", "status": 200})
    await send({"type": "http.response.body", "body": scope["scheme"].encode()})


async def test_https_request_with_a_verified_certificate(
    ca: trustme.CA, server_files: dict[str, str]
) -> None:
    scopes.clear()
    files = {k: v for k, v in server_files.items() if k != "ca_certs"}
    async with (
        running_server(scope_app, **files) as server,
        httpx.AsyncClient(verify=client_context(ca)) as client,
    ):
        assert server.url.startswith("https://")
        first = await client.get(f"{server.url}/a")
        second = await client.get(f"{server.url}/b")
    assert first.text == "https" and second.status_code == 200
    assert first.http_version == "HTTP/1.1"
    tls = scopes[0]["extensions"]["tls"]
    assert tls["tls_version"] in {0x0303, 0x0304}
    assert isinstance(tls["cipher_suite"], int)
    assert tls["client_cert_chain"] == [] and tls["client_cert_name"] is None
    assert scopes[0]["client"] == scopes[1]["client"]  # one kept-alive TLS connection


async def test_alpn_offers_only_what_is_configured(
    ca: trustme.CA, server_files: dict[str, str]
) -> None:
    files = {k: v for k, v in server_files.items() if k != "ca_certs"}
    context = client_context(ca)
    context.set_alpn_protocols(["h2", "http/1.1"])
    async with running_server(scope_app, alpn_protocols=["http/1.1"], **files) as server:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(server.host, server.port, ssl=context), scaled(5)
        )
        ssl_object = writer.get_extra_info("ssl_object")
        assert ssl_object.selected_alpn_protocol() == "http/1.1"
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body = await read_response(reader)
        await close_raw(writer)
    assert head.startswith(b"HTTP/1.1 200") and body == b"https"


async def test_client_certificate_reaches_the_tls_extension(
    ca: trustme.CA, server_files: dict[str, str]
) -> None:
    scopes.clear()
    client_cert = ca.issue_cert("client@example.com", common_name="client-one")
    context = client_context(ca)
    client_cert.configure_cert(context)
    async with running_server(scope_app, verify_mode=ssl.CERT_REQUIRED, **server_files) as server:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(server.host, server.port, ssl=context), scaled(5)
        )
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _ = await read_response(reader)
        await close_raw(writer)
    assert head.startswith(b"HTTP/1.1 200")
    tls = scopes[0]["extensions"]["tls"]
    assert tls["client_cert_name"] is not None and "CN=client-one" in tls["client_cert_name"]
    assert len(tls["client_cert_chain"]) == 1
    assert tls["client_cert_chain"][0].startswith("-----BEGIN CERTIFICATE-----")


async def test_plain_http_to_a_tls_port_fails_cleanly(server_files: dict[str, str]) -> None:
    files = {k: v for k, v in server_files.items() if k != "ca_certs"}
    async with running_server(scope_app, **files) as server:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(server.host, server.port), scaled(5)
        )
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), scaled(5))
        await close_raw(writer)
    assert not data.startswith(b"HTTP/1.1 200")


async def test_bodies_of_every_size_arrive_whole_over_tls(
    ca: trustme.CA, server_files: dict[str, str]
) -> None:
    files = {k: v for k, v in server_files.items() if k != "ca_certs"}
    async with (
        running_server(sized_app, **files) as server,
        httpx.AsyncClient(verify=client_context(ca)) as client,
    ):
        for size in SIZES:
            for framing, tail in (("length", b""), ("chunked", pattern(3))):
                response = await client.get(f"{server.url}/{size}/{framing}")
                assert response.content == pattern(size) + tail, (size, framing)
