"""``Config``: the server's settings, with Hypercorn's attribute names and defaults.

Every setting is declared once in ``hypercorn.shared.settings``; this class
takes its defaults and validation from that table. Setting an attribute
converts and checks the value, so a bad value fails where it is set, with a
message naming the setting. Unknown names are refused rather than ignored.

Its public import path is ``hypercorn.config``, which re-exports it.

A Python config file (``from_pyfile``, ``from_object``) is a module like any
other: besides the settings it may hold ``from __future__`` imports, imported
modules, functions and values, helpers and private names. Those are not
settings; any other name is an unknown setting, reported with the closest
setting's name. A TOML file holds nothing but settings, so every key counts.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
import ssl
import time
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hypercorn.shared import sockets as _sockets
from hypercorn.shared.config_sources import (
    EXTRA_KEYS,
    import_object,
    read_pyfile,
    read_toml,
    settings_of,
    unknown_setting,
)
from hypercorn.shared.settings import SETTINGS, SETTINGS_BY_NAME
from hypercorn.shared.sockets import Sockets
from hypercorn.shared.tls import create_ssl_context as _create_ssl_context
from hypercorn.shared.validators import ConfigError

if TYPE_CHECKING:
    from hypercorn.shared.logging import Logger

__all__ = ["BYTES", "OCTETS", "SECONDS", "Config", "FilePath"]

BYTES = 1
OCTETS = 1
SECONDS = 1.0

FilePath = bytes | os.PathLike[str] | os.PathLike[bytes] | str

# Attributes that are not settings but that Config carries.
_STATE = frozenset({"application_path", "_log", "_quic_addresses"})


class Config:
    """Server settings. See ``docs/settings.md`` for every attribute."""

    # Declared for type checkers; values live on each instance.
    if TYPE_CHECKING:
        bind: list[str]
        insecure_bind: list[str]
        quic_bind: list[str]
        quic_retry: bool
        quic_max_connections: int
        backlog: int
        reuse_port: bool
        umask: int | None
        user: int | None
        group: int | None
        server_names: list[str]
        root_path: str
        certfile: str | None
        keyfile: str | None
        keyfile_password: str | None
        ca_certs: str | None
        ciphers: str
        verify_mode: ssl.VerifyMode | None
        verify_flags: ssl.VerifyFlags | None
        alpn_protocols: list[str]
        ssl_handshake_timeout: float
        workers: int
        worker_class: str
        graceful_timeout: float
        drain_delay: float
        startup_timeout: float
        shutdown_timeout: float
        max_requests: int | None
        max_requests_jitter: int
        worker_timeout: float
        worker_boot_timeout: float
        max_worker_boot_failures: int
        boot_retry_window: float
        max_worker_memory: int | None
        memory_check_interval: float
        preload_app: bool
        daemon: bool
        pid_path: str | None
        chdir: str | None
        use_reloader: bool
        reload_dirs: list[str]
        reload_include: list[str]
        reload_exclude: list[str]
        reload_delay: float
        debug: bool
        keep_alive_timeout: float
        keep_alive_max_requests: int
        read_timeout: float | None
        body_timeout: float | None
        h11_max_incomplete_size: int
        h11_pass_raw_headers: bool
        h2_max_concurrent_streams: int
        h2_max_header_list_size: int
        h2_max_inbound_frame_size: int
        include_date_header: bool
        include_server_header: bool
        alt_svc_headers: list[str]
        max_app_queue_size: int
        wsgi_max_body_size: int
        websocket_max_message_size: int
        websocket_ping_interval: float | None
        accesslog: logging.Logger | str | None
        access_log_format: str
        errorlog: logging.Logger | str | None
        loglevel: str
        logconfig: str | None
        logconfig_dict: dict[str, Any] | None
        logger_class: type[Logger]
        statsd_host: str | None
        statsd_prefix: str
        dogstatsd_tags: str
        metrics_bind: str | None
        health_bind: str | None
        proxy_protocol: list[str]
        forwarded_allow_ips: list[str]
        application_path: str | None

    def __init__(self) -> None:
        from hypercorn.shared.logging import Logger

        set_ = object.__setattr__
        for setting in SETTINGS:
            set_(self, setting.name, setting.initial())
        set_(self, "logger_class", Logger)
        set_(self, "application_path", None)
        set_(self, "_log", None)
        set_(self, "_quic_addresses", [])

    def __setattr__(self, name: str, value: Any) -> None:
        setting = SETTINGS_BY_NAME.get(name)
        if setting is not None:
            value = setting.convert(name, value)
        elif name not in _STATE and not isinstance(getattr(type(self), name, None), property):
            raise unknown_setting(name)
        object.__setattr__(self, name, value)
        if name in {"logger_class", "accesslog", "errorlog", "loglevel", "logconfig"}:
            object.__setattr__(self, "_log", None)

    def __repr__(self) -> str:
        changed = [
            f"{s.name}={getattr(self, s.name)!r}"
            for s in SETTINGS
            if s.name != "logger_class" and getattr(self, s.name) != s.initial()
        ]
        return f"Config({', '.join(changed)})"

    # Pickling drops the logger (it holds open files); it is rebuilt on use.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_log"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            object.__setattr__(self, key, value)

    # ------------------------------------------------------------------ aliases

    def set_cert_reqs(self, value: int) -> None:
        """Deprecated alias of ``verify_mode``."""
        warnings.warn("cert_reqs is deprecated, use verify_mode", DeprecationWarning, 2)
        self.verify_mode = ssl.VerifyMode(value)

    cert_reqs = property(None, set_cert_reqs)

    @property
    def log(self) -> Logger:
        """The logger, built on first use from the logging settings."""
        logger: Logger | None = self.__dict__["_log"]
        if logger is None:
            logger = self.logger_class(self)
            object.__setattr__(self, "_log", logger)
        return logger

    def set_statsd_logger_class(self, statsd_logger: type[Logger]) -> None:
        """Use ``statsd_logger`` when statsd is configured and no custom logger is set."""
        from hypercorn.shared.logging import Logger

        if self.logger_class is Logger and self.statsd_host is not None:
            self.logger_class = statsd_logger

    # ---------------------------------------------------------------------- TLS

    @property
    def ssl_enabled(self) -> bool:
        """True when both a certificate and a key are configured."""
        return self.certfile is not None and self.keyfile is not None

    def create_ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for the secure binds, or None without TLS.

        Raises:
            ConfigError: a certificate or key cannot be loaded.
        """
        return _create_ssl_context(self)

    # ------------------------------------------------------------------ sockets

    def _socket_options(self, *, reuse_port: bool) -> _sockets.SocketOptions:
        return _sockets.SocketOptions(
            backlog=self.backlog,
            umask=self.umask,
            user=self.user,
            group=self.group,
            reuse_port=reuse_port,
        )

    def create_sockets(self) -> Sockets:
        """Bind every listener.

        With TLS, ``bind`` gives the secure sockets, ``insecure_bind`` the
        plain ones and ``quic_bind`` the UDP ones; without TLS, ``bind`` gives
        plain sockets and QUIC is off.

        Raises:
            BindError: an address cannot be bound; the message names it.
            ConfigError: a bind string is malformed, or ``quic_bind`` is set
                without HTTP/3 support installed.
        """
        if self.ssl_enabled and self.quic_bind:
            _require_http3()  # before anything is bound
        options = self._socket_options(reuse_port=self.reuse_port)
        result = Sockets()
        try:
            if self.ssl_enabled:
                result.secure_sockets = _sockets.create_sockets(self.bind, options)
                result.insecure_sockets = _sockets.create_sockets(self.insecure_bind, options)
                # Always in a SO_REUSEPORT group: one UDP socket per worker slot.
                result.quic_sockets = _sockets.create_sockets(
                    self.quic_bind, self._socket_options(reuse_port=True), socket.SOCK_DGRAM
                )
            else:
                result.insecure_sockets = _sockets.create_sockets(self.bind, options)
        except BaseException:
            result.close()
            raise
        addresses = [sock.getsockname() for sock in result.quic_sockets]
        object.__setattr__(
            self, "_quic_addresses", [a for a in addresses if isinstance(a, tuple) and len(a) >= 2]
        )
        return result

    # ------------------------------------------------------------------ headers

    def response_headers(self, protocol: str) -> list[tuple[bytes, bytes]]:
        """Default headers for a response: ``date``, ``server`` and ``alt-svc``.

        Args:
            protocol: the protocol name for the ``server`` header, e.g. ``"h11"``.
        """
        headers: list[tuple[bytes, bytes]] = []
        if self.include_date_header:
            headers.append((b"date", http_date()))
        if self.include_server_header:
            headers.append((b"server", b"hypercorn-" + protocol.encode("ascii")))
        headers.extend(self.alt_svc_header_values())
        return headers

    def alt_svc_header_values(self) -> list[tuple[bytes, bytes]]:
        """``alt-svc`` headers: the configured ones, else one per QUIC listener."""
        if self.alt_svc_headers:
            return [(b"alt-svc", value.encode("latin-1")) for value in self.alt_svc_headers]
        quic: list[tuple[Any, ...]] = self.__dict__["_quic_addresses"]
        return [(b"alt-svc", b'h3=":%d"; ma=3600' % address[1]) for address in quic]

    # ------------------------------------------------------------------ loaders

    @classmethod
    def from_mapping(
        cls: type[Config], mapping: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> Config:
        """Create a config from a mapping and/or keyword arguments.

        Raises:
            UnknownSettingError: a key is not a setting.
            ConfigError: a value is invalid for its setting.
        """
        return cls._from_items({**(mapping or {}), **kwargs}, None)

    @classmethod
    def _from_items(cls: type[Config], items: Mapping[str, Any], source: str | None) -> Config:
        config = cls()
        for key, value in items.items():
            if key not in SETTINGS_BY_NAME and key not in EXTRA_KEYS:
                raise unknown_setting(key, source)
            try:
                setattr(config, key, value)
            except ConfigError as error:
                if source is None:
                    raise
                raise ConfigError(f"{error} in {source}") from None
        return config

    @classmethod
    def from_toml(cls: type[Config], filename: FilePath) -> Config:
        """Load settings from a TOML file whose keys are setting names.

        Raises:
            ConfigError: the file cannot be read or parsed, or holds a bad key or value.
        """
        path = os.fsdecode(os.fspath(filename))
        return cls._from_items(read_toml(path), path)

    @classmethod
    def from_pyfile(cls: type[Config], filename: FilePath) -> Config:
        """Load settings from the module-level names of a Python file.

        Imports, helpers, constants and ``_private`` names are not settings;
        any other unknown name is an error.

        Raises:
            ConfigError: the file cannot be loaded, or holds a bad setting or value.
        """
        path = os.fsdecode(os.fspath(filename))
        return cls._from_items(read_pyfile(path), path)

    @classmethod
    def from_object(cls: type[Config], instance: object | str) -> Config:
        """Load settings from an object's attributes, or a module or attribute by name.

        ``"package.module"`` and ``"package.module.attribute"`` are both accepted.
        Names are taken as ``from_pyfile`` takes them.

        Raises:
            ConfigError: the name cannot be imported, or holds a bad setting or value.
        """
        source = instance if isinstance(instance, str) else None
        if isinstance(instance, str):
            instance = import_object(instance)
        return cls._from_items(settings_of(instance, source or repr(instance)), source)


def _require_http3() -> None:
    """Raise ``ConfigError`` unless aioquic, HTTP/3's optional dependency, is installed."""
    try:
        found = importlib.util.find_spec("aioquic") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ConfigError(
            "quic_bind needs HTTP/3 support and aioquic is not installed: install "
            "hypercorn[h3] (in a checkout: pip install '.[h3]'), or remove quic_bind"
        )


_date_cache: tuple[int, bytes] = (0, b"")
# English names whatever the locale (``strftime`` would use the locale's).
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date() -> bytes:
    """The current time as an HTTP ``date`` value, formatted once per second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, _format_http_date(now))
    return _date_cache[1]


def _format_http_date(seconds: float) -> bytes:
    """``seconds`` since the epoch as an IMF-fixdate (RFC 9110, section 5.6.7).

    The same text as ``email.utils.formatdate(seconds, usegmt=True)``, without
    importing the ``email`` package (a good part of a worker's start-up).

    Args:
        seconds: a POSIX timestamp.

    Returns:
        The date, e.g. ``b"Sun, 06 Nov 1994 08:49:37 GMT"``.
    """
    t = time.gmtime(seconds)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    ).encode("ascii")
