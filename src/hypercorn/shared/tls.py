"""The server's TLS context, built from the settings."""

from __future__ import annotations

import os
import ssl
from typing import TYPE_CHECKING

from hypercorn.shared.validators import ConfigError

if TYPE_CHECKING:
    from hypercorn.shared.config import Config


def create_ssl_context(config: Config) -> ssl.SSLContext | None:
    """Build the TLS context, or return None when TLS is not configured.

    TLS 1.2 is the minimum and compression is off (RFC 9113 section 9.2);
    ALPN offers ``config.alpn_protocols``.

    Raises:
        ConfigError: the certificate, key or CA bundle cannot be loaded, or a
            TLS setting is invalid; the message names the file and the reason.
    """
    if not (config.certfile and config.keyfile):
        if config.certfile or config.keyfile:
            missing = "keyfile" if config.certfile else "certfile"
            raise ConfigError(f"TLS needs both certfile and keyfile; {missing} is not set")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.set_ciphers(config.ciphers)
    except ssl.SSLError as error:
        raise ConfigError(f"invalid value for 'ciphers': {config.ciphers!r} ({error})") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION
    context.set_alpn_protocols(config.alpn_protocols)
    for what, path in (("certificate", config.certfile), ("key", config.keyfile)):
        if not os.path.isfile(path):
            raise ConfigError(f"cannot load {what}: {path}: file not found")
    try:
        context.load_cert_chain(
            certfile=config.certfile, keyfile=config.keyfile, password=config.keyfile_password
        )
    except (ssl.SSLError, OSError) as error:
        raise ConfigError(
            f"cannot load certificate {config.certfile} with key {config.keyfile}: "
            f"{getattr(error, 'reason', None) or error}"
        ) from None
    if config.ca_certs is not None:
        try:
            context.load_verify_locations(config.ca_certs)
        except (ssl.SSLError, OSError) as error:
            raise ConfigError(f"cannot load CA certificates {config.ca_certs}: {error}") from None
    if config.verify_mode is not None:
        context.verify_mode = config.verify_mode
    if config.verify_flags is not None:
        context.verify_flags = config.verify_flags
    return context
