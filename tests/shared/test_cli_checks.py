"""Checks the command makes before serving, and what ``--help`` shows."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trustme

from hypercorn.config import Config, ConfigError
from hypercorn.shared.cli import ExitCode, build_parser
from hypercorn.shared.settings import SETTINGS

# ``sys.modules[name] = None`` makes ``import name`` fail as for a package
# that is not installed; this runs the command as it runs without aioquic.
WITHOUT_AIOQUIC = (
    "import sys; sys.modules['aioquic'] = None; "
    "from hypercorn.__main__ import main; sys.exit(main())"
)


@pytest.fixture
def tls(tmp_path: Path) -> tuple[str, str]:
    cert = trustme.CA().issue_cert("localhost")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    return str(certfile), str(keyfile)


class TestQuicWithoutAioquic:
    @pytest.mark.parametrize("workers", ["0", "1"])
    def test_refused_before_anything_is_bound(
        self, tls: tuple[str, str], tmp_path: Path, workers: str
    ) -> None:
        (tmp_path / "app.py").write_text("async def app(scope, receive, send):\n    pass\n")
        # The TCP port is held: had the server bound anything first, it would
        # have failed with "address already in use" (exit 5) instead.
        held = socket.socket()
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        try:
            result = subprocess.run(
                [sys.executable, "-c", WITHOUT_AIOQUIC, "--certfile", tls[0], "--keyfile",
                 tls[1], "-b", f"127.0.0.1:{port}", "--quic-bind", "127.0.0.1:0",
                 "-w", workers, "app:app"],
                capture_output=True, text=True, timeout=60, cwd=tmp_path,
            )  # fmt: skip
        finally:
            held.close()
        assert result.returncode == ExitCode.USAGE, result.stderr
        assert result.stderr.strip().splitlines() == [
            "hypercorn: error: quic_bind needs HTTP/3 support and aioquic is not installed: "
            "install hypercorn[h3] (in a checkout: pip install '.[h3]'), or remove quic_bind"
        ]
        assert result.stdout == ""

    def test_without_tls_quic_bind_needs_nothing(self, tmp_path: Path) -> None:
        # Without TLS there is no QUIC listener, so nothing needs aioquic.
        config = Config.from_mapping(bind="127.0.0.1:0", quic_bind="127.0.0.1:0")
        sockets = config.create_sockets()
        try:
            assert sockets.quic_sockets == [] and len(sockets.insecure_sockets) == 1
        finally:
            sockets.close()


class TestTLSFiles:
    def test_missing_key_is_reported_as_the_key(self, tls: tuple[str, str]) -> None:
        missing = os.path.join(os.path.dirname(tls[1]), "absent-key.pem")
        config = Config.from_mapping(certfile=tls[0], keyfile=missing)
        with pytest.raises(ConfigError) as raised:
            config.create_ssl_context()
        assert str(raised.value) == f"cannot load key: {missing}: file not found"

    def test_missing_certificate_is_reported_as_the_certificate(self, tls: tuple[str, str]) -> None:
        missing = os.path.join(os.path.dirname(tls[0]), "absent-cert.pem")
        config = Config.from_mapping(certfile=missing, keyfile=tls[1])
        with pytest.raises(ConfigError, match=r"^cannot load certificate: .*absent-cert\.pem"):
            config.create_ssl_context()


class TestHelp:
    @pytest.fixture
    def help_text(self) -> str:
        return build_parser().format_help()

    def test_metavars_are_plain_words(self) -> None:
        for action in build_parser()._actions:
            if action.option_strings and action.metavar is not None:
                assert re.fullmatch(r"[A-Z][A-Z0-9_]*", str(action.metavar)), action.option_strings
        usage = build_parser().format_usage().removeprefix("usage:")
        assert "DEPRECATED" not in usage and ":" not in usage

    def test_deprecated_aliases_take_the_settings_metavar(self, help_text: str) -> None:
        assert "--access-log ACCESSLOG" in help_text
        assert "--error-log ERRORLOG" in help_text

    def test_every_default_is_shown_the_same_way(self, help_text: str) -> None:
        flat = " ".join(help_text.split())
        assert "(default: None)" not in flat
        for setting in SETTINGS:
            value = setting.initial()
            if not setting.flags or setting.action == "store_true" or value in (None, "", []):
                continue
            shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
            assert f"(default: {shown})" in flat, setting.name
