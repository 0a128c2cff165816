"""``hypercorn.config.Config``: defaults, validation, loaders, sockets, headers."""

from __future__ import annotations

import pickle
import socket
import ssl
import sys
import textwrap
from pathlib import Path

import pytest

from hypercorn.config import Config, ConfigError, UnknownSettingError
from hypercorn.shared.settings import SETTINGS
from hypercorn.shared.sockets import BindError, SocketTypeError

# Every attribute of Hypercorn 0.18's Config with its default (``daemon`` aside:
# here it means detaching from the terminal, so it defaults to False).
HYPERCORN_DEFAULTS = {
    "access_log_format": '%(h)s %(l)s %(l)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"',
    "accesslog": None,
    "alpn_protocols": ["h2", "http/1.1"],
    "alt_svc_headers": [],
    "backlog": 100,
    "bind": ["127.0.0.1:8000"],
    "ca_certs": None,
    "certfile": None,
    "ciphers": "ECDHE+AESGCM",
    "debug": False,
    "dogstatsd_tags": "",
    "errorlog": "-",
    "graceful_timeout": 3.0,
    "group": None,
    "h11_max_incomplete_size": 16384,
    "h11_pass_raw_headers": False,
    "h2_max_concurrent_streams": 100,
    "h2_max_header_list_size": 65536,
    "h2_max_inbound_frame_size": 16384,
    "include_date_header": True,
    "include_server_header": True,
    "insecure_bind": [],
    "keep_alive_max_requests": 1000,
    "keep_alive_timeout": 5.0,
    "keyfile": None,
    "keyfile_password": None,
    "logconfig": None,
    "logconfig_dict": None,
    "loglevel": "INFO",
    "max_app_queue_size": 10,
    "max_requests": None,
    "max_requests_jitter": 0,
    "pid_path": None,
    "quic_bind": [],
    "read_timeout": None,
    "root_path": "",
    "server_names": [],
    "shutdown_timeout": 60.0,
    "ssl_handshake_timeout": 60.0,
    "startup_timeout": 60.0,
    "statsd_host": None,
    "statsd_prefix": "",
    "umask": None,
    "use_reloader": False,
    "user": None,
    "verify_flags": None,
    "verify_mode": None,
    "websocket_max_message_size": 16777216,
    "websocket_ping_interval": None,
    "worker_class": "asyncio",
    "workers": 1,
    "wsgi_max_body_size": 16777216,
}


class TestDefaults:
    def test_every_hypercorn_attribute_has_its_default(self) -> None:
        config = Config()
        assert {name: getattr(config, name) for name in HYPERCORN_DEFAULTS} == HYPERCORN_DEFAULTS

    def test_logger_class_and_log(self) -> None:
        from hypercorn.logging import Logger

        config = Config()
        assert config.logger_class is Logger
        assert isinstance(config.log, Logger)
        assert config.log is config.log

    def test_no_mutable_default_is_shared(self) -> None:
        first, second = Config(), Config()
        first.bind.append("127.0.0.1:9000")
        first.server_names.append("example.com")
        assert second.bind == ["127.0.0.1:8000"]
        assert second.server_names == []
        assert Config().bind == ["127.0.0.1:8000"]

    def test_settings_are_declared_once(self) -> None:
        names = [setting.name for setting in SETTINGS]
        assert len(names) == len(set(names))
        assert set(HYPERCORN_DEFAULTS) <= set(names)


class TestValidation:
    def test_string_bind_becomes_a_list(self) -> None:
        config = Config()
        config.bind = "0.0.0.0:80"
        assert config.bind == ["0.0.0.0:80"]

    def test_root_path_loses_trailing_slash(self) -> None:
        config = Config()
        config.root_path = "/api/"
        assert config.root_path == "/api"

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("workers", -1),
            ("workers", "many"),
            ("workers", True),
            ("keep_alive_timeout", "soon"),
            ("keep_alive_timeout", -1),
            ("worker_class", "curio"),
            ("loglevel", "loud"),
            ("bind", 8000),
            ("verify_mode", "SOMETIMES"),
            ("umask", "999"),
            ("include_date_header", "perhaps"),
            ("max_worker_memory", "lots"),
        ],
    )
    def test_bad_value_names_the_setting(self, name: str, value: object) -> None:
        with pytest.raises(ConfigError, match=repr(name)):
            setattr(Config(), name, value)

    def test_unknown_attribute_is_refused_with_a_suggestion(self) -> None:
        with pytest.raises(UnknownSettingError, match="did you mean 'keep_alive_timeout'"):
            Config().keep_alive_timout = 5  # type: ignore[attr-defined]

    def test_conversions(self) -> None:
        config = Config()
        config.umask = "022"
        config.verify_mode = "CERT_REQUIRED"
        config.max_worker_memory = "512M"
        config.loglevel = "debug"
        config.graceful_timeout = 2
        assert config.umask == 0o22
        assert config.verify_mode is ssl.CERT_REQUIRED
        assert config.max_worker_memory == 512 * 1024 * 1024
        assert config.loglevel == "DEBUG"
        assert config.graceful_timeout == 2.0 and isinstance(config.graceful_timeout, float)

    def test_cert_reqs_is_a_deprecated_alias(self) -> None:
        config = Config()
        with pytest.warns(DeprecationWarning):
            config.cert_reqs = ssl.CERT_OPTIONAL
        assert config.verify_mode is ssl.CERT_OPTIONAL


class TestLoaders:
    def test_from_mapping_and_kwargs(self) -> None:
        config = Config.from_mapping({"workers": 3}, keep_alive_timeout=10)
        assert (config.workers, config.keep_alive_timeout) == (3, 10.0)

    def test_from_mapping_unknown_key(self) -> None:
        with pytest.raises(UnknownSettingError, match="'wokers'"):
            Config.from_mapping(wokers=2)

    def test_from_toml(self, tmp_path: Path) -> None:
        path = tmp_path / "hypercorn.toml"
        path.write_text(
            'bind = ["127.0.0.1:5000", "unix:/tmp/x.sock"]\nworkers = 2\n'
            'accesslog = "-"\n[logconfig_dict]\nversion = 1\n'
        )
        config = Config.from_toml(path)
        assert config.bind == ["127.0.0.1:5000", "unix:/tmp/x.sock"]
        assert config.workers == 2 and config.accesslog == "-"
        assert config.logconfig_dict == {"version": 1}

    def test_from_toml_errors_name_key_and_file(self, tmp_path: Path) -> None:
        path = tmp_path / "bad.toml"
        path.write_text("keep_alive = 5\n")
        with pytest.raises(UnknownSettingError, match=rf"'keep_alive' in {path}"):
            Config.from_toml(path)
        path.write_text('workers = "two"\n')
        with pytest.raises(ConfigError, match=rf"'workers'.*in {path}"):
            Config.from_toml(path)
        path.write_text("workers = = 2\n")
        with pytest.raises(ConfigError, match="invalid TOML"):
            Config.from_toml(path)
        with pytest.raises(ConfigError, match="cannot read config file"):
            Config.from_toml(tmp_path / "missing.toml")

    def test_from_pyfile(self, tmp_path: Path) -> None:
        path = tmp_path / "conf.py"
        path.write_text(
            textwrap.dedent(
                """
                import os
                from pathlib import Path
                BASE = Path(os.getcwd())
                bind = "127.0.0.1:7000"
                workers = 4
                def helper():
                    return 1
                """
            )
        )
        config = Config.from_pyfile(path)
        assert config.bind == ["127.0.0.1:7000"] and config.workers == 4

    def test_from_pyfile_unknown_name(self, tmp_path: Path) -> None:
        path = tmp_path / "conf.py"
        path.write_text("worker = 4\n")
        with pytest.raises(UnknownSettingError, match="'worker'"):
            Config.from_pyfile(path)

    def test_from_object(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        (tmp_path / "myconf.py").write_text(
            "class Production:\n    workers = 8\n    loglevel = 'warning'\n\nbacklog = 50\n"
        )
        monkeypatch.syspath_prepend(str(tmp_path))
        try:
            assert Config.from_object("myconf").backlog == 50
            assert Config.from_object("myconf.Production").workers == 8
            with pytest.raises(ConfigError, match="cannot import config"):
                Config.from_object("myconf.Staging")
        finally:
            sys.modules.pop("myconf", None)

        class Local:
            graceful_timeout = 1

        assert Config.from_object(Local).graceful_timeout == 1.0

    def test_pickles(self) -> None:
        config = Config.from_mapping(workers=3, server_names=["a.example"], accesslog="-")
        _ = config.log
        clone = pickle.loads(pickle.dumps(config))
        assert clone.workers == 3 and clone.server_names == ["a.example"]
        assert clone.accesslog == "-" and clone.log is not None


class TestSockets:
    def test_tcp_socket_listening_and_inheritable(self) -> None:
        config = Config.from_mapping(bind="127.0.0.1:0")
        sockets = config.create_sockets()
        try:
            (sock,) = sockets.insecure_sockets
            assert sockets.secure_sockets == [] and sockets.quic_sockets == []
            assert sock.get_inheritable() and not sock.getblocking()
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 0
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
            client = socket.create_connection(sock.getsockname(), timeout=5)
            client.close()
        finally:
            sockets.close()

    def test_one_server_per_address(self) -> None:
        first = Config.from_mapping(bind="127.0.0.1:0").create_sockets()
        try:
            host, port = first.insecure_sockets[0].getsockname()
            with pytest.raises(BindError, match=f"{host}:{port}: address already in use"):
                Config.from_mapping(bind=f"{host}:{port}").create_sockets()
        finally:
            first.close()

    def test_reuse_port_shares_the_address_when_asked(self) -> None:
        first = Config.from_mapping(bind="127.0.0.1:0", reuse_port=True).create_sockets()
        try:
            (sock,) = first.insecure_sockets
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
            host, port = sock.getsockname()
            second = Config.from_mapping(bind=f"{host}:{port}", reuse_port=True).create_sockets()
            second.close()
        finally:
            first.close()

    def test_port_in_use_names_the_address(self) -> None:
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        try:
            with pytest.raises(BindError, match=f"127.0.0.1:{port}: address already in use"):
                Config.from_mapping(bind=f"127.0.0.1:{port}").create_sockets()
        finally:
            taken.close()

    def test_unix_socket_replaces_stale_file_and_applies_umask(self, tmp_path: Path) -> None:
        path = tmp_path / "s.sock"
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(str(path))
        stale.close()
        config = Config.from_mapping(bind=f"unix:{path}", umask=0o077)
        sockets = config.create_sockets()
        try:
            assert path.stat().st_mode & 0o777 == 0o700
            client = socket.socket(socket.AF_UNIX)
            client.connect(str(path))
            client.close()
        finally:
            sockets.close()

    def test_fd_bind(self) -> None:
        original = socket.socket()
        original.bind(("127.0.0.1", 0))
        try:
            sockets = Config.from_mapping(bind=f"fd://{original.fileno()}").create_sockets()
            (sock,) = sockets.insecure_sockets
            assert sock.getsockname() == original.getsockname()
            sock.detach()
            udp = socket.socket(type=socket.SOCK_DGRAM)
            try:
                with pytest.raises(SocketTypeError):
                    Config.from_mapping(bind=f"fd://{udp.fileno()}").create_sockets()
            finally:
                udp.close()
        finally:
            original.close()

    @pytest.mark.parametrize("bind", ["127.0.0.1:http", "[::1", "unix:", "fd://x", ":80"])
    def test_malformed_bind(self, bind: str) -> None:
        with pytest.raises(ConfigError, match="invalid bind"):
            Config.from_mapping(bind=bind).create_sockets()


class TestTLS:
    def test_tls_context_and_secure_sockets(self, tmp_path: Path) -> None:
        trustme = pytest.importorskip("trustme")
        ca = trustme.CA()
        cert = ca.issue_cert("localhost")
        certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
        cert.private_key_and_cert_chain_pem.write_to_path(str(certfile))
        cert.private_key_pem.write_to_path(str(keyfile))
        config = Config.from_mapping(
            certfile=str(certfile),
            keyfile=str(keyfile),
            bind="127.0.0.1:0",
            insecure_bind="127.0.0.1:0",
            quic_bind="127.0.0.1:0",
        )
        assert config.ssl_enabled
        context = config.create_ssl_context()
        assert context is not None and context.minimum_version == ssl.TLSVersion.TLSv1_2
        sockets = config.create_sockets()
        try:
            assert len(sockets.secure_sockets) == len(sockets.insecure_sockets) == 1
            (quic,) = sockets.quic_sockets
            assert quic.type == socket.SOCK_DGRAM
            # One UDP socket per worker slot needs SO_REUSEPORT there (and only there).
            assert quic.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
            for tcp in [*sockets.secure_sockets, *sockets.insecure_sockets]:
                assert tcp.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 0
            port = quic.getsockname()[1]
            assert (b"alt-svc", b'h3=":%d"; ma=3600' % port) in config.response_headers("h11")
        finally:
            sockets.close()

    def test_bad_certificate_is_a_clear_error(self, tmp_path: Path) -> None:
        bad = tmp_path / "bad.pem"
        bad.write_text("not a certificate")
        config = Config.from_mapping(certfile=str(bad), keyfile=str(bad))
        with pytest.raises(ConfigError, match="cannot load certificate"):
            config.create_ssl_context()
        config = Config.from_mapping(certfile=str(tmp_path / "nope.pem"), keyfile=str(bad))
        with pytest.raises(ConfigError, match=r"nope\.pem: file not found"):
            config.create_ssl_context()
        with pytest.raises(ConfigError, match="keyfile is not set"):
            Config.from_mapping(certfile=str(bad)).create_ssl_context()


class TestResponseHeaders:
    def test_defaults(self) -> None:
        headers = dict(Config().response_headers("h11"))
        assert headers[b"server"] == b"hypercorn-h11"
        assert headers[b"date"].endswith(b" GMT")

    @pytest.mark.parametrize(
        "seconds", [0, 784111777, 951782400, 1700000000.9, 4102444799, 253402300799]
    )
    def test_date_is_the_imf_fixdate_of_the_email_package(self, seconds: float) -> None:
        # RFC 9110, section 5.6.7; formatted without importing ``email`` (start-up time).
        from email.utils import formatdate

        from hypercorn.shared.config import _format_http_date

        expected = formatdate(seconds, usegmt=True).encode("ascii")
        assert _format_http_date(seconds) == expected

    def test_switched_off_and_alt_svc(self) -> None:
        config = Config.from_mapping(
            include_date_header=False,
            include_server_header=False,
            alt_svc_headers=['h3=":443"; ma=86400'],
        )
        assert config.response_headers("h2") == [(b"alt-svc", b'h3=":443"; ma=86400')]
