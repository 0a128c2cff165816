"""The ``hypercorn`` command line: flags, config files, and its errors."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from hypercorn.config import Config
from hypercorn.shared.cli import ExitCode, UsageError, build_parser, config_from_args


class TestFlags:
    def test_hypercorn_flags_map_to_settings(self) -> None:
        config: Config = config_from_args(
            [
                "-b", "127.0.0.1:5000", "--bind", "unix:/tmp/app.sock", "--insecure-bind",
                "0.0.0.0:80", "--quic-bind", "0.0.0.0:443", "-w", "3", "-k", "uvloop",
                "--keep-alive", "7.5", "--graceful-timeout", "4", "--read-timeout", "9",
                "--server-name", "a.example", "--server-name", "*.b.example",
                "--root-path", "/api/", "--access-logfile", "-", "--access-logformat", "%(h)s",
                "--error-logfile", "/tmp/err.log", "--log-level", "debug", "--backlog", "64",
                "--certfile", "c.pem", "--keyfile", "k.pem", "--keyfile-password", "pw",
                "--ca-certs", "ca.pem", "--ciphers", "ECDHE+CHACHA20", "--verify-mode",
                "CERT_OPTIONAL", "--max-requests", "100", "--max-requests-jitter", "20",
                "-p", "/tmp/h.pid", "--reload", "--debug", "-m", "022", "-u", "0", "-g", "0",
                "--statsd-host", "127.0.0.1:8125", "--statsd-prefix", "web",
                "--websocket-ping-interval", "20", "--log-config", "json:log.json",
                "pkg.module:create_app()",
            ]
        )  # fmt: skip
        assert config.application_path == "pkg.module:create_app()"
        assert config.bind == ["127.0.0.1:5000", "unix:/tmp/app.sock"]
        assert config.insecure_bind == ["0.0.0.0:80"] and config.quic_bind == ["0.0.0.0:443"]
        assert (config.workers, config.worker_class) == (3, "uvloop")
        assert (config.keep_alive_timeout, config.graceful_timeout) == (7.5, 4.0)
        assert config.read_timeout == 9.0
        assert config.server_names == ["a.example", "*.b.example"]
        assert config.root_path == "/api"
        assert (config.accesslog, config.access_log_format) == ("-", "%(h)s")
        assert (config.errorlog, config.loglevel) == ("/tmp/err.log", "DEBUG")
        assert config.backlog == 64
        assert (config.certfile, config.keyfile, config.keyfile_password) == (
            "c.pem",
            "k.pem",
            "pw",
        )
        assert (config.ca_certs, config.ciphers) == ("ca.pem", "ECDHE+CHACHA20")
        assert config.verify_mode is ssl.CERT_OPTIONAL
        assert (config.max_requests, config.max_requests_jitter) == (100, 20)
        assert config.pid_path == "/tmp/h.pid" and config.use_reloader and config.debug
        assert (config.umask, config.user, config.group) == (0o22, 0, 0)
        assert (config.statsd_host, config.statsd_prefix) == ("127.0.0.1:8125", "web")
        assert config.websocket_ping_interval == 20.0
        assert config.logconfig == "json:log.json"

    def test_defaults_untouched_without_flags(self) -> None:
        config: Config = config_from_args(["app:app"])
        assert config.bind == ["127.0.0.1:8000"] and config.workers == 1

    def test_every_flag_is_unique(self) -> None:
        flags = [option for action in build_parser()._actions for option in action.option_strings]
        assert len(flags) == len(set(flags))

    @pytest.mark.parametrize(
        ("argv", "message"),
        [
            (["-w", "two", "app:app"], "argument -w/--workers: invalid value for 'workers'"),
            (["-k", "curio", "app:app"], "one of asyncio, uvloop, trio"),
            (["--keep-alive", "-3", "app:app"], "'keep_alive_timeout'"),
            (["--nope", "app:app"], "unrecognized arguments: --nope"),
            ([], "the following arguments are required: application"),
        ],
    )
    def test_bad_flags(self, argv: list[str], message: str) -> None:
        with pytest.raises(UsageError, match=message):
            config_from_args(argv)

    def test_deprecated_alias(self, capsys: pytest.CaptureFixture[str]) -> None:
        config: Config = config_from_args(["--access-log", "-", "app:app"])
        assert config.accesslog == "-"
        assert "--access-log is deprecated" in capsys.readouterr().err


class TestConfigSources:
    def test_toml_then_flags_override(self, tmp_path: Path) -> None:
        path = tmp_path / "h.toml"
        path.write_text('bind = ["127.0.0.1:1"]\nworkers = 5\nloglevel = "warning"\n')
        config: Config = config_from_args(["-c", str(path), "-w", "2", "app:app"])
        assert config.bind == ["127.0.0.1:1"]
        assert (config.workers, config.loglevel) == (2, "WARNING")

    def test_python_file_and_module(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        (tmp_path / "conf_mod.py").write_text("workers = 6\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        try:
            by_file: Config = config_from_args(["-c", f"file:{tmp_path / 'conf_mod.py'}", "a:b"])
            by_module: Config = config_from_args(["-c", "python:conf_mod", "a:b"])
        finally:
            sys.modules.pop("conf_mod", None)
        assert by_file.workers == by_module.workers == 6


def _hypercorn(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "hypercorn", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=env,
    )


def _one_error_line(result: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("hypercorn: error: ") and text in lines[-1], result.stderr
    assert "Traceback" not in result.stderr


class TestErrorsFromTheCommand:
    """Mistakes a user makes end with one clear line and a distinct exit code."""

    def test_bad_app_path(self, tmp_path: Path) -> None:
        result = _hypercorn("-b", "127.0.0.1:0", "no_such_module_here:app", cwd=tmp_path)
        _one_error_line(result, ExitCode.APP_LOAD, "no_such_module_here")

    def test_missing_attribute(self, tmp_path: Path) -> None:
        (tmp_path / "someapp.py").write_text("application = None\n")
        result = _hypercorn("-b", "127.0.0.1:0", "someapp:app", cwd=tmp_path)
        _one_error_line(result, ExitCode.APP_LOAD, "app")

    def test_port_in_use(self, tmp_path: Path) -> None:
        (tmp_path / "someapp.py").write_text("async def app(scope, receive, send):\n    pass\n")
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        try:
            result = _hypercorn("-b", f"127.0.0.1:{port}", "someapp:app", cwd=tmp_path)
        finally:
            taken.close()
        _one_error_line(result, ExitCode.BIND, f"127.0.0.1:{port}: address already in use")
        assert result.stderr.strip().splitlines()[-1] == (
            f"hypercorn: error: cannot listen on 127.0.0.1:{port}: address already in use"
        )

    def test_bad_certificate(self, tmp_path: Path) -> None:
        (tmp_path / "bad.pem").write_text("garbage")
        result = _hypercorn(
            "--certfile", "bad.pem", "--keyfile", "bad.pem", "-b", "127.0.0.1:0", "x:app",
            cwd=tmp_path,
        )  # fmt: skip
        _one_error_line(result, ExitCode.USAGE, "cannot load certificate")

    def test_unknown_config_key(self, tmp_path: Path) -> None:
        (tmp_path / "h.toml").write_text("keepalive = 3\n")
        result = _hypercorn("-c", "h.toml", "x:app", cwd=tmp_path)
        _one_error_line(result, ExitCode.USAGE, "unknown setting 'keepalive' in h.toml")

    def test_bad_flag_value(self, tmp_path: Path) -> None:
        result = _hypercorn("--workers", "lots", "x:app", cwd=tmp_path)
        _one_error_line(result, ExitCode.USAGE, "--workers")

    def test_bad_mode_in_app_path(self, tmp_path: Path) -> None:
        (tmp_path / "someapp.py").write_text("async def app(scope, receive, send):\n    pass\n")
        for path, text in (
            ("grpc:someapp:app", "invalid mode 'grpc'"),
            ("wsgi:someapp:app", "cannot be served as WSGI"),
        ):
            result = _hypercorn("-w", "0", "-b", "127.0.0.1:0", path, cwd=tmp_path)
            _one_error_line(result, ExitCode.APP_LOAD, text)


class TestStartupImports:
    # What the command imports before its first fork is paid again on every
    # start; these modules serve settings most servers do not use.
    OPTIONAL = ("psutil", "tomllib", "email", "logging.config", "difflib", "tempfile", "json")

    def test_the_master_imports_no_module_that_only_an_option_needs(self) -> None:
        code = (
            "import sys\n"
            "import hypercorn.__main__, hypercorn.run, hypercorn.supervisor.arbiter\n"
            "from hypercorn.shared.cli import config_from_args\n"
            "config = config_from_args(['-w', '2', 'app:app'])\n"
            "config.log.error_logger.debug('x'); config.response_headers('h11')\n"
            "print(' '.join(sorted(sys.modules)))\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        imported = set(result.stdout.split())
        assert not {name for name in self.OPTIONAL if name in imported}
