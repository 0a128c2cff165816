"""The settings table: every setting declared once.

Each row gives the name (the ``Config`` attribute and the config-file key),
its section, its type as documented, its default, its CLI flags, its help
text and its converter. ``Config`` takes its defaults and validation from
here, the CLI builds its parser from here, and ``docs/settings.md`` is
generated from here (a test fails when it is stale).

Defaults that are lists are stored as tuples and copied into a fresh list
for each ``Config``, so no two configs share a mutable default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypercorn.shared import validators as v

DEFAULT_ACCESS_LOG_FORMAT = '%(h)s %(l)s %(l)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    section: str
    kind: str
    default: Any
    doc: str
    convert: v.Converter
    flags: tuple[str, ...] = ()
    action: str = "store"  # "store", "append" (repeatable) or "store_true"
    metavar: str | None = None
    deprecated_flags: tuple[str, ...] = ()

    def initial(self) -> Any:
        """A fresh default value (lists are never shared between configs)."""
        return list(self.default) if isinstance(self.default, tuple) else self.default


def _s(
    name: str,
    section: str,
    kind: str,
    default: Any,
    convert: v.Converter,
    doc: str,
    *flags: str,
    action: str = "store",
    metavar: str | None = None,
    deprecated: tuple[str, ...] = (),
) -> Setting:
    return Setting(name, section, kind, default, doc, convert, flags, action, metavar, deprecated)


_opt_secs = v.number(0.0, optional=True, strict=True)
_secs = v.number(0.0, strict=True)
_opt_str = v.string(optional=True)

# fmt: off
SETTINGS: tuple[Setting, ...] = (
    # --- Binding -----------------------------------------------------------------
    _s("bind", "Binding", "list[str]", ("127.0.0.1:8000",), v.string_list,
       "Addresses to listen on: `host:port`, `host`, `[::1]:port`, `unix:/path` or `fd://N`. "
       "With TLS configured these are the secure binds.",
       "-b", "--bind", action="append", metavar="ADDRESS"),
    _s("insecure_bind", "Binding", "list[str]", (), v.string_list,
       "Plain-text addresses served beside the TLS binds (same forms as `bind`).",
       "--insecure-bind", action="append", metavar="ADDRESS"),
    _s("quic_bind", "Binding", "list[str]", (), v.string_list,
       "UDP addresses for HTTP/3 over QUIC (needs TLS).",
       "--quic-bind", action="append", metavar="ADDRESS"),
    _s("quic_retry", "Binding", "bool", False, v.boolean,
       "Validate a QUIC client's address with a Retry before any handshake work "
       "(RFC 9000 section 8.1): one round trip more per connection, no amplification.",
       "--quic-retry", action="store_true"),
    _s("quic_max_connections", "Binding", "int", 1000, v.integer(1),
       "QUIC connections one worker holds at once; more are refused (CONNECTION_REFUSED).",
       "--quic-max-connections"),
    _s("backlog", "Binding", "int", 100, v.integer(1),
       "The listen queue length of each TCP and unix socket.", "--backlog"),
    _s("reuse_port", "Binding", "bool", False, v.boolean,
       "Set `SO_REUSEPORT` on the TCP listeners, so that other servers of the same user "
       "may bind the same address and the kernel spreads new connections between them "
       "(e.g. two deployments side by side). Off: a second server on a held address "
       "fails with \"address already in use\" (exit 5). QUIC sockets always set it.",
       "--reuse-port", action="store_true"),
    _s("umask", "Binding", "int | None", None, v.umask,
       "Permission mask for unix sockets and, with `--daemon`, of the daemon "
       "(default: 022; octal strings such as `022` accepted).",
       "-m", "--umask"),
    _s("user", "Binding", "int | None", None, v.user_id,
       "User (name or uid) the workers run as, and owner of unix sockets.", "-u", "--user"),
    _s("group", "Binding", "int | None", None, v.group_id,
       "Group (name or gid) of the workers (default: the user's) and of unix sockets.",
       "-g", "--group"),
    _s("server_names", "Binding", "list[str]", (), v.string_list,
       "Host names served; requests for other hosts get 404 (`*.example.com` wildcards).",
       "--server-name", action="append", metavar="NAME"),
    _s("root_path", "Binding", "str", "", v.root_path,
       "The ASGI `root_path` (mount point) given to the application.", "--root-path"),
    # --- TLS -------------------------------------------------------------------
    _s("certfile", "TLS", "str | None", None, _opt_str,
       "Path to the TLS certificate (PEM chain).", "--certfile"),
    _s("keyfile", "TLS", "str | None", None, _opt_str,
       "Path to the TLS private key.", "--keyfile"),
    _s("keyfile_password", "TLS", "str | None", None, _opt_str,
       "Password that decrypts the private key.", "--keyfile-password"),
    _s("ca_certs", "TLS", "str | None", None, _opt_str,
       "CA bundle used to verify client certificates.", "--ca-certs"),
    _s("ciphers", "TLS", "str", "ECDHE+AESGCM", v.string(),
       "OpenSSL cipher list for TLS 1.2.", "--ciphers"),
    _s("verify_mode", "TLS", "ssl.VerifyMode | None", None, v.verify_mode,
       "Client certificate verification: CERT_NONE, CERT_OPTIONAL or CERT_REQUIRED.",
       "--verify-mode"),
    _s("verify_flags", "TLS", "ssl.VerifyFlags | None", None, v.verify_flags,
       "Extra `ssl.VerifyFlags` for client certificate verification."),
    _s("alpn_protocols", "TLS", "list[str]", ("h2", "http/1.1"), v.string_list,
       "Protocols offered through ALPN, in order of preference."),
    _s("ssl_handshake_timeout", "TLS", "float", 60.0, _secs,
       "Seconds a TLS handshake may take."),
    # --- Workers -----------------------------------------------------------------
    _s("workers", "Workers", "int", 1, v.integer(0),
       "Worker processes; 0 serves in the calling process with no master.", "-w", "--workers"),
    _s("worker_class", "Workers", "str", "asyncio", v.choice("asyncio", "uvloop", "trio"),
       "Event loop of each worker: `asyncio`, `uvloop` or `trio`.", "-k", "--worker-class"),
    _s("graceful_timeout", "Workers", "float", 3.0, v.number(0.0),
       "Seconds in-flight requests get to finish on stop or reload.", "--graceful-timeout"),
    _s("drain_delay", "Workers", "float", 0.0, v.number(0.0),
       "Seconds the master reports not ready on `health_bind` after TERM (or `hypercorn ctl "
       "drain`) while still serving, before its graceful stop: time for a load balancer or "
       "Kubernetes to take the host out of rotation. 0 stops at once.", "--drain-delay"),
    _s("startup_timeout", "Workers", "float", 60.0, _secs,
       "Seconds the application's lifespan startup may take."),
    _s("shutdown_timeout", "Workers", "float", 60.0, _secs,
       "Seconds the application's lifespan shutdown may take."),
    _s("max_requests", "Workers", "int | None", None, v.integer(1, optional=True),
       "Requests a worker serves before it is replaced.", "--max-requests"),
    _s("max_requests_jitter", "Workers", "int", 0, v.integer(0),
       "Random extra requests (0..N) added to `max_requests` per worker.",
       "--max-requests-jitter"),
    _s("worker_timeout", "Workers", "float", 30.0, _secs,
       "Seconds without a heartbeat after which a worker is killed and replaced.",
       "--worker-timeout"),
    _s("worker_boot_timeout", "Workers", "float", 90.0, _secs,
       "Seconds a new worker may take to report ready.", "--worker-boot-timeout"),
    _s("max_worker_boot_failures", "Workers", "int", 5, v.integer(1),
       "Once workers have served: consecutive workers that fail to boot, with none left "
       "serving, before the master gives up (it never stops while a worker serves).",
       "--max-worker-boot-failures"),
    _s("boot_retry_window", "Workers", "float", 30.0, v.number(0.0),
       "Seconds the first boot keeps retrying an application whose import or startup "
       "fails (backoff from 0.1 s, doubling, at most 5 s apart); then the master stops "
       "with exit code 4 (import), 6 (lifespan startup) or 3. An error no retry can fix "
       "(a syntax error, a missing module or attribute) stops it at once. 0: no retry.",
       "--boot-retry-window"),
    _s("max_worker_memory", "Workers", "int | None", None, v.byte_size(optional=True),
       "Memory (USS, bytes or e.g. `512M`) past which a worker is replaced.",
       "--max-worker-memory"),
    _s("memory_check_interval", "Workers", "float", 5.0, _secs,
       "Seconds between worker memory samples.", "--memory-check-interval"),
    _s("preload_app", "Workers", "bool", False, v.boolean,
       "Import the application in the master before forking.", "--preload",
       action="store_true"),
    # --- Process -------------------------------------------------------------------
    _s("daemon", "Process", "bool", False, v.boolean,
       "Detach from the terminal and run in the background; the command returns once "
       "the workers serve (stdout/stderr go to the error log file, if any).", "-D", "--daemon",
       action="store_true"),
    _s("pid_path", "Process", "str | None", None, _opt_str,
       "Where the master writes its PID (refuses to start if a live hypercorn owns it).",
       "-p", "--pid"),
    _s("chdir", "Process", "str | None", None, _opt_str,
       "Directory to change to before loading the application.", "--chdir"),
    _s("use_reloader", "Process", "bool", False, v.boolean,
       "Reload the workers when the application's files change.", "--reload",
       action="store_true"),
    _s("reload_dirs", "Process", "list[str]", (), v.string_list,
       "Directories watched by `--reload` (default: the application's directory).",
       "--reload-dir", action="append", metavar="DIR"),
    _s("reload_include", "Process", "list[str]", ("*.py",), v.string_list,
       "Glob patterns of files whose change triggers a reload.",
       "--reload-include", action="append", metavar="GLOB"),
    _s("reload_exclude", "Process", "list[str]", (), v.string_list,
       "Glob patterns of files ignored by `--reload`.",
       "--reload-exclude", action="append", metavar="GLOB"),
    _s("reload_delay", "Process", "float", 0.25, v.number(0.0),
       "Seconds of quiet after a change before reloading (debounce).", "--reload-delay"),
    _s("debug", "Process", "bool", False, v.boolean,
       "Extra logging and checks.", "--debug", action="store_true"),
    # --- HTTP --------------------------------------------------------------------
    _s("keep_alive_timeout", "HTTP", "float", 5.0, v.number(0.0),
       "Seconds an idle keep-alive connection is kept open.", "--keep-alive"),
    _s("keep_alive_max_requests", "HTTP", "int", 1000, v.integer(1),
       "Requests served on one connection before it is closed.",
       "--keep-alive-max-requests"),
    _s("read_timeout", "HTTP", "float | None", None, _opt_secs,
       "Seconds to wait for the next bytes of a request before giving up.",
       "--read-timeout"),
    _s("body_timeout", "HTTP", "float | None", 60.0, _opt_secs,
       "Seconds to wait for the next bytes of an HTTP/1.1 request body; then 408 if no "
       "response has started, else the connection closes (None: no limit).",
       "--body-timeout"),
    _s("h11_max_incomplete_size", "HTTP", "int", 16 * 1024, v.integer(1),
       "Largest HTTP/1.1 request head in bytes (larger: 431).", "--h11-max-incomplete-size"),
    _s("h11_pass_raw_headers", "HTTP", "bool", False, v.boolean,
       "Give the application header names in their original case (HTTP/1.1)."),
    _s("h2_max_concurrent_streams", "HTTP", "int", 100, v.integer(1),
       "Concurrent streams allowed per HTTP/2 connection."),
    _s("h2_max_header_list_size", "HTTP", "int", 2**16, v.integer(1),
       "Largest HTTP/2 header list in bytes."),
    _s("h2_max_inbound_frame_size", "HTTP", "int", 2**14, v.integer(2**14),
       "Largest HTTP/2 frame accepted, in bytes."),
    _s("include_date_header", "HTTP", "bool", True, v.boolean,
       "Add a `date` header to responses."),
    _s("include_server_header", "HTTP", "bool", True, v.boolean,
       "Add a `server` header to responses."),
    _s("alt_svc_headers", "HTTP", "list[str]", (), v.string_list,
       "`alt-svc` header values to send (default: derived from `quic_bind`)."),
    _s("max_app_queue_size", "HTTP", "int", 10, v.integer(1),
       "Messages buffered for the application per stream before reading pauses."),
    _s("wsgi_max_body_size", "HTTP", "int", 16 * 1024 * 1024, v.integer(0),
       "Largest request body given to a WSGI application (larger: 413)."),
    _s("websocket_max_message_size", "HTTP", "int", 16 * 1024 * 1024, v.integer(1),
       "Largest WebSocket message in bytes (larger: close 1009)."),
    _s("websocket_ping_interval", "HTTP", "float | None", None, _opt_secs,
       "Seconds between server pings on WebSocket connections.",
       "--websocket-ping-interval"),
    # --- Logging -------------------------------------------------------------------
    _s("accesslog", "Logging", "logging.Logger | str | None", None, v.log_target,
       "Access log target: `-` for stdout, a file path, or a logger. None disables it.",
       "--access-logfile", deprecated=("--access-log",)),
    _s("access_log_format", "Logging", "str", DEFAULT_ACCESS_LOG_FORMAT, v.string(),
       "Access log line format (gunicorn-style atoms, see docs).", "--access-logformat"),
    _s("errorlog", "Logging", "logging.Logger | str | None", "-", v.log_target,
       "Error log target: `-` for stderr, a file path, or a logger.",
       "--error-logfile", "--log-file", deprecated=("--error-log",)),
    _s("loglevel", "Logging", "str", "INFO", v.log_level,
       "Error log level.", "--log-level"),
    _s("logconfig", "Logging", "str | None", None, _opt_str,
       "Logging configuration file: ini, or prefixed `json:` or `toml:`.", "--log-config"),
    _s("logconfig_dict", "Logging", "dict[str, Any] | None", None, v.mapping(optional=True),
       "Logging configuration as a `logging.config.dictConfig` mapping."),
    _s("logger_class", "Logging", "type[Logger]", None, v.logger_class,
       "The Logger class (default and base: `hypercorn.logging.Logger`)."),
    # --- Metrics ---------------------------------------------------------------------
    _s("statsd_host", "Metrics", "str | None", None, _opt_str,
       "`host:port` of a statsd server.", "--statsd-host"),
    _s("statsd_prefix", "Metrics", "str", "", v.string(),
       "Prefix of every statsd metric.", "--statsd-prefix"),
    _s("dogstatsd_tags", "Metrics", "str", "", v.string(),
       "Comma-separated DogStatsD tags added to every metric."),
    _s("metrics_bind", "Metrics", "str | None", None, _opt_str,
       "Address (`host:port` or `unix:/path`) where the master serves `GET /metrics` in the "
       "Prometheus text format: requests by status class, a latency histogram, open "
       "connections, worker restarts and reloads, summed over the workers. Off by default.",
       "--metrics-bind", metavar="ADDRESS"),
    _s("health_bind", "Metrics", "str | None", None, _opt_str,
       "Address (`host:port` or `unix:/path`) where the master serves `GET /livez` (200 while "
       "its loop runs and a worker is alive) and `GET /readyz` (200 only while the configured "
       "workers serve; 503 while starting, draining or degraded, with the reason). May be "
       "the same address as `metrics_bind`. Off by default.",
       "--health-bind", metavar="ADDRESS"),
    # --- Proxies -------------------------------------------------------------------
    _s("proxy_protocol", "Proxies", "list[str]", (), v.string_list,
       "Plain-text binds whose connections start with a PROXY protocol header (v1 or v2): "
       "bind strings as given to `bind`/`insecure_bind`, or `*` for every plain-text bind. "
       "The scope's client is the one the header names; a connection without a valid header, "
       "or from a peer not in `forwarded_allow_ips`, is closed.",
       "--proxy-protocol", action="append", metavar="ADDRESS"),
    _s("forwarded_allow_ips", "Proxies", "list[str]", ("127.0.0.1", "::1"), v.ip_networks,
       "Proxies trusted to send a PROXY header: IP addresses or networks (comma-separated "
       "on the command line), or `*` for any. Unix socket peers are always trusted.",
       "--forwarded-allow-ips", metavar="ADDRESSES"),
)
# fmt: on

SETTINGS_BY_NAME: dict[str, Setting] = {setting.name: setting for setting in SETTINGS}
SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(setting.section for setting in SETTINGS))
