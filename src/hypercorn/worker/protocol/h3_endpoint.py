"""The QUIC endpoint of one UDP socket, sans I/O: routing, version
negotiation, address validation and admission (RFC 9000 sections 5.2, 6, 8).

Theory of operation
-------------------
Every datagram is read for its first packet's header alone; nothing else in
it is trusted before a connection has decrypted it. Then, in order:

1. unreadable headers, Version Negotiation packets and datagrams for no
   known connection that are not Initials are dropped without an answer: a
   short-header packet of another worker's (or a lost) connection must not
   be answered with anything this endpoint would make up;
2. a long header with a version we do not speak, in a datagram large
   enough to start a connection (1200 bytes, so the answer amplifies
   nothing), gets a Version Negotiation packet;
3. a datagram whose destination connection id is known goes to its
   connection;
4. an Initial below 1200 bytes (RFC 9000 section 14.1) is dropped; so is
   every new Initial while the endpoint drains (the client retries, and its
   retry reaches a worker still accepting);
5. past ``quic_max_connections`` a new Initial is refused with a
   CONNECTION_CLOSE (CONNECTION_REFUSED);
6. with ``quic_retry``, an Initial without a token gets a Retry whose token
   proves the client's address; one with a token that fails validation is
   closed with INVALID_TOKEN (RFC 9000 section 8.1);
7. otherwise a new ``H3Protocol`` is made for it, and kept only if the
   Initial decrypts (a forged one leaves no state behind).

Connections are found by every connection id they issued (``connection_ids``,
kept in step by ``track`` after each step of a connection) and by the
destination id of the client's first Initial, which the client uses until it
learns ours. Stateless answers queue in ``replies``; the I/O layer sends them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol

from aioquic._buffer import Buffer
from aioquic.quic.configuration import SMALLEST_MAX_DATAGRAM_SIZE, QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.crypto import CryptoPair
from aioquic.quic.packet import (
    QuicErrorCode,
    QuicFrameType,
    QuicPacketType,
    encode_quic_retry,
    encode_quic_version_negotiation,
    pull_quic_header,
)
from aioquic.quic.packet_builder import QuicPacketBuilder
from aioquic.quic.retry import QuicRetryTokenHandler

from hypercorn.worker.protocol.h3 import ALPN_PROTOCOLS, Address, H3Protocol, H3Settings

QUIC_IDLE_TIMEOUT = 60.0
"""Seconds of silence from the peer after which the transport ends a connection."""

_CLOSE_FRAME_CAPACITY = 1 + 8 + 8 + 1 + 8  # type, error code, frame type, empty reason


class EndpointSettings(H3Settings, Protocol):
    """The settings the endpoint reads (``hypercorn.config.Config`` has them)."""

    @property
    def quic_retry(self) -> bool: ...
    @property
    def quic_max_connections(self) -> int: ...


@dataclass(frozen=True, slots=True)
class TLSFiles:
    """Where the endpoint's certificate and key are, and how clients are verified.

    ``verify_mode`` is an ``ssl.VerifyMode`` value (``None``: clients are not
    asked for a certificate); ``ca_certs`` the file that verifies them.
    """

    certfile: str
    keyfile: str | None = None
    password: str | None = None
    ca_certs: str | None = None
    verify_mode: int | None = None


def quic_configuration(tls: TLSFiles) -> QuicConfiguration:
    """The server's QUIC configuration, certificate loaded (shared by its connections).

    Raises:
        OSError, ValueError: the certificate or key cannot be loaded.
    """
    configuration = QuicConfiguration(
        is_client=False,
        alpn_protocols=list(ALPN_PROTOCOLS),
        idle_timeout=QUIC_IDLE_TIMEOUT,
        verify_mode=tls.verify_mode,  # None: a server asks no client certificate
    )
    configuration.load_cert_chain(tls.certfile, tls.keyfile, tls.password)
    if tls.ca_certs is not None:
        configuration.load_verify_locations(cafile=tls.ca_certs)
    return configuration


class QuicEndpoint:
    """The connections of one UDP socket, by connection id.

    Args:
        config: the settings (limits, ``quic_retry``).
        configuration: the QUIC configuration (see ``quic_configuration``).
    """

    __slots__ = (
        "_by_id",
        "_config",
        "_configuration",
        "_ids",
        "_original",
        "_retry",
        "draining",
        "replies",
    )

    def __init__(self, config: EndpointSettings, configuration: QuicConfiguration) -> None:
        self._config = config
        self._configuration = configuration
        self._retry = QuicRetryTokenHandler() if config.quic_retry else None
        self._by_id: dict[bytes, H3Protocol] = {}
        self._ids: dict[H3Protocol, frozenset[bytes]] = {}
        self._original: dict[H3Protocol, bytes] = {}  # the client's first destination id
        self.replies: list[tuple[bytes, Address]] = []
        """Stateless answers (Version Negotiation, Retry, refusals) to send."""
        self.draining = False
        """Set when the worker stops: no new connection is admitted."""

    @property
    def connections(self) -> list[H3Protocol]:
        """The live connections."""
        return list(self._ids)

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> H3Protocol | None:
        """Route one datagram; see the module doc for the order of the checks.

        Returns:
            The connection that took it (perhaps a new one), or ``None`` when
            it was dropped or answered statelessly (see ``replies``).
        """
        try:
            header = pull_quic_header(
                Buffer(data=data), host_cid_length=self._configuration.connection_id_length
            )
        except ValueError:
            return None
        if header.packet_type == QuicPacketType.VERSION_NEGOTIATION:
            return None
        versions = self._configuration.supported_versions
        if header.version is not None and header.version not in versions:
            if len(data) >= SMALLEST_MAX_DATAGRAM_SIZE:
                packet = encode_quic_version_negotiation(
                    source_cid=header.destination_cid,
                    destination_cid=header.source_cid,
                    supported_versions=versions,
                )
                self.replies.append((packet, addr))
            return None
        connection = self._by_id.get(header.destination_cid)
        if connection is not None:
            connection.receive_datagram(data, addr, now)
            return connection
        if (
            header.packet_type != QuicPacketType.INITIAL
            or len(data) < SMALLEST_MAX_DATAGRAM_SIZE
            or self.draining
        ):
            return None
        assert header.version is not None
        if len(self._ids) >= self._config.quic_max_connections:
            self._close_initial(header.version, header.destination_cid, header.source_cid, addr)
            return None
        original_id = header.destination_cid
        retry_id: bytes | None = None
        if self._retry is not None:
            if not header.token:
                source_id = os.urandom(self._configuration.connection_id_length)
                token = self._retry.create_token(
                    address=addr,
                    original_destination_connection_id=header.destination_cid,
                    retry_source_connection_id=source_id,
                    now=now,
                )
                packet = encode_quic_retry(
                    version=header.version,
                    source_cid=source_id,
                    destination_cid=header.source_cid,
                    original_destination_cid=header.destination_cid,
                    retry_token=token,
                )
                self.replies.append((packet, addr))
                return None
            try:
                original_id = self._retry.validate_token(
                    address=addr,
                    destination_cid=header.destination_cid,
                    token=header.token,
                    now=now,
                )
            except ValueError:
                self._close_initial(
                    header.version,
                    header.destination_cid,
                    header.source_cid,
                    addr,
                    QuicErrorCode.INVALID_TOKEN,
                )
                return None
            retry_id = header.destination_cid
        quic = QuicConnection(
            configuration=self._configuration,
            original_destination_connection_id=original_id,
            retry_source_connection_id=retry_id,
        )
        connection = H3Protocol(quic, self._config, now)
        connection.receive_datagram(data, addr, now)
        if not connection.established:
            return None  # nothing in it decrypted: no state is kept for it
        self._register(connection, header.destination_cid)
        return connection

    def track(self, connection: H3Protocol) -> None:
        """Bring the routing table in step with a connection after it acted:
        the ids it issued or retired; all of them once it has ended."""
        registered = self._ids.get(connection)
        if registered is None:
            return
        if connection.closed:
            del self._ids[connection]
            del self._original[connection]
            for cid in registered:
                if self._by_id.get(cid) is connection:
                    del self._by_id[cid]
            return
        if len(connection.connection_ids) + 1 == len(registered) and (
            connection.connection_ids < registered
        ):
            return  # the common case: nothing changed
        current = frozenset(connection.connection_ids | {self._original[connection]})
        if current != registered:
            for cid in registered - current:
                if self._by_id.get(cid) is connection:
                    del self._by_id[cid]
            for cid in current - registered:
                self._by_id[cid] = connection
            self._ids[connection] = current

    def _register(self, connection: H3Protocol, original_id: bytes) -> None:
        ids = frozenset(connection.connection_ids | {original_id})
        self._ids[connection] = ids
        self._original[connection] = original_id
        for cid in ids:
            self._by_id[cid] = connection

    def _close_initial(
        self,
        version: int,
        destination_id: bytes,
        source_id: bytes,
        addr: Address,
        code: int = QuicErrorCode.CONNECTION_REFUSED,
    ) -> None:
        """Answer an Initial with a CONNECTION_CLOSE in an Initial packet.

        Initial keys derive from the client's destination id, so no state is needed.
        """
        crypto = CryptoPair()
        crypto.setup_initial(cid=destination_id, is_client=False, version=version)
        builder = QuicPacketBuilder(
            host_cid=destination_id,
            peer_cid=source_id,
            version=version,
            is_client=False,
            max_datagram_size=SMALLEST_MAX_DATAGRAM_SIZE,
        )
        builder.start_packet(QuicPacketType.INITIAL, crypto)
        buf = builder.start_frame(QuicFrameType.TRANSPORT_CLOSE, capacity=_CLOSE_FRAME_CAPACITY)
        buf.push_uint_var(code)
        buf.push_uint_var(QuicFrameType.PADDING)
        buf.push_uint_var(0)
        datagrams, _ = builder.flush()
        self.replies.extend((datagram, addr) for datagram in datagrams)
