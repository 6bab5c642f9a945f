"""The connection's handshake: TLS, keys, transport parameters, versions (RFC 9000 §7, §17;
RFC 9001 §4; RFC 9368; RFC 9369).

:class:`HandshakeMixin` is the part of :class:`~._connection.Connection` that drives the TLS
engine (:class:`~trio_zttp._tls.handshake.Handshake`): it feeds it CRYPTO data, carries out
its updates in order (CRYPTO data to send, keys to install, completion, tickets), applies the
peer's transport parameters and checks the connection IDs they authenticate (RFC 9000 §7.3),
discards keys as RFC 9001 §4.9 says, and handles everything that can happen before the first
1-RTT packet: Retry, Version Negotiation, compatible version negotiation (RFC 9368), 0-RTT
acceptance and rejection.
"""

from __future__ import annotations

import functools
from typing import Any, Final

import attrs

from .._tls.alerts import AlertError
from .._tls.config import TlsConfiguration
from .._tls.handshake import (
    Handshake,
    HandshakeComplete,
    InstallKey,
    SendCryptoData,
    SessionTicketReceived,
)
from .._tls.messages import HandshakeType, parse_client_hello
from .._tls.suites import CipherSuite, Epoch
from .._tls.tickets import SessionTicket
from ._address_tokens import AddressTokenHandler, TokenHandler
from ._cids import PREFERRED_SEQUENCE, LocalConnectionIds, PeerConnectionIds
from ._config import Configuration
from ._conn_base import ConnectionBase, State
from ._crypto import PacketOpener, PacketSealer, derive_initial_keys
from ._errors import (
    CryptoError,
    TransportError,
    TransportErrorCode,
    TransportParameterError,
)
from ._events import (
    ConnectionIdIssued,
    ConnectionTerminated,
    HandshakeCompleted,
    NewTokenReceived,
)
from ._events import SessionTicketReceived as SessionTicketEvent
from ._packet import (
    SUPPORTED_VERSIONS,
    Header,
    MalformedPacketError,
    PacketType,
    encode_retry,
    encode_version_negotiation,
    parse_header,
    retry_integrity_ok,
)
from ._params import (
    ParameterTemplate,
    PreferredAddress,
    TransportParameters,
    VersionInformation,
    check_peer_parameters,
    decode_transport_parameters,
)
from ._paths import Path
from ._spaces import PacketSpace

__all__ = ["HandshakeMixin"]

_INITIAL: Final = Epoch.INITIAL
_HANDSHAKE: Final = Epoch.HANDSHAKE
_ZERO_RTT: Final = Epoch.ZERO_RTT
_ONE_RTT: Final = Epoch.ONE_RTT
_SPACE: Final = {_INITIAL: 0, _HANDSHAKE: 1, _ZERO_RTT: 2, _ONE_RTT: 2}
#: Smallest datagram carrying a client Initial a server accepts (RFC 9000 §14.1).
MIN_INITIAL_DATAGRAM: Final = 1200
#: Our transport parameters that differ per connection; the rest come from the configuration.
_PER_CONNECTION_PARAMETERS: Final = (
    "original_destination_connection_id", "stateless_reset_token",
    "initial_source_connection_id", "retry_source_connection_id", "version_information",
    "preferred_address")


def _parameter_template(config: Configuration) -> tuple[ParameterTemplate, tuple[int, ...]]:
    """Our transport parameters as the configuration fixes them, encoded once, and the
    versions we advertise in version_information.

    Cached by the values read (not per configuration object: the trio layer makes a
    configuration per client connection), so a changed configuration is never served stale
    parameters.
    """
    return _template_for(
        config.idle_timeout, config.max_data, config.max_stream_data, config.max_streams_bidi,
        config.max_streams_uni, config.ack_delay_exponent, config.max_ack_delay,
        config.disable_active_migration, config.active_connection_id_limit,
        config.max_datagram_frame_size, tuple(config.supported_versions))


@functools.lru_cache(maxsize=32)
def _template_for(idle_timeout: float, max_data: int, max_stream_data: int,
                  max_streams_bidi: int, max_streams_uni: int, ack_delay_exponent: int,
                  max_ack_delay: float, disable_active_migration: bool,
                  active_connection_id_limit: int, max_datagram_frame_size: int | None,
                  supported_versions: tuple[int, ...],
                  ) -> tuple[ParameterTemplate, tuple[int, ...]]:
    base = TransportParameters(
        max_idle_timeout=int(idle_timeout * 1000),
        initial_max_data=max_data,
        initial_max_stream_data_bidi_local=max_stream_data,
        initial_max_stream_data_bidi_remote=max_stream_data,
        initial_max_stream_data_uni=max_stream_data,
        initial_max_streams_bidi=max_streams_bidi,
        initial_max_streams_uni=max_streams_uni,
        ack_delay_exponent=ack_delay_exponent,
        max_ack_delay=int(max_ack_delay * 1000),
        disable_active_migration=disable_active_migration,
        active_connection_id_limit=active_connection_id_limit,
        max_datagram_frame_size=max_datagram_frame_size or 0,
    )
    available = tuple(v for v in supported_versions if v in SUPPORTED_VERSIONS)
    return ParameterTemplate(base, _PER_CONNECTION_PARAMETERS), available


def _tls_configuration(config: Configuration) -> TlsConfiguration:
    """The TLS side of a QUIC configuration (built once per configuration, see ``shared``)."""
    keylog = None
    sink = config.secrets_log_file
    if sink is not None:
        write = sink.write
        flush = getattr(sink, "flush", None)

        def keylog(line: str) -> None:
            write(line + "\n")
            if callable(flush):
                flush()

    ticket = None
    if config.session_ticket is not None:
        ticket = SessionTicket.from_bytes(config.session_ticket)
    options: dict[str, Any] = {}
    if config.cipher_suites is not None:
        options["cipher_suites"] = tuple(CipherSuite(s) for s in config.cipher_suites)
    groups = config.key_exchange_groups
    if groups is not None:
        options["supported_groups"] = tuple(groups)
    if config.key_share_groups is not None:
        options["key_share_groups"] = tuple(config.key_share_groups)
    elif groups:
        options["key_share_groups"] = (groups[0],)
    return TlsConfiguration(
        is_client=config.is_client,
        alpn_protocols=tuple(config.alpn_protocols),  # type: ignore[arg-type]
        server_name=config.server_name,
        certificate_chain=tuple(config.certificate_chain),  # type: ignore[arg-type]
        private_key=config.private_key,  # type: ignore[arg-type]
        verify_peer=config.verify_peer,
        cafile=config.cafile,
        cadata=config.cadata,
        client_auth=config.client_certificate,
        session_ticket=ticket,
        ticket_key=None if config.is_client else (
            config.ticket_key if config.ticket_key is not None else config.random_bytes(32)),
        enable_tickets=config.enable_session_tickets,
        enable_early_data=config.enable_early_data,
        keylog=keylog,
        random_bytes=config.random_bytes,
        wall_clock=config.wall_clock,
        **options,
    )


def default_token_handler(config: Configuration) -> TokenHandler:
    handler = config.token_handler
    if handler is not None:
        return handler  # type: ignore[no-any-return]
    return config.shared(  # type: ignore[no-any-return]
        "token_handler", lambda: AddressTokenHandler(config.random_bytes(16), config.random_bytes))


class HandshakeMixin(ConnectionBase):
    """TLS, keys, transport parameters, Retry and version negotiation for a Connection."""

    #: Server: the client's transport parameters, raw and decoded, as read from its
    #: ClientHello before TLS started (version negotiation needs them first).
    _client_hello_parameters: tuple[bytes, TransportParameters] | None

    def _init_handshake(self, config: Configuration, odcid: bytes | None,
                        retry_scid: bytes | None) -> None:
        self._version = config.supported_versions[0] if config.supported_versions else 1
        if config.is_client and config.original_version is not None:
            self._version = config.original_version
        if self._version not in SUPPORTED_VERSIONS:
            raise ValueError(f"unsupported QUIC version 0x{self._version:08x}")
        self._first_version = self._version
        self._tls = None
        self._peer_params = None
        self._handshake_complete = False
        self._handshake_confirmed = False
        self._early_data_sent = False
        self._zero_rtt_sealer = None
        self._zero_rtt_opener = None
        self._other_initial_openers = {}
        self._retry_scid = retry_scid
        self._retry_received = False
        self._received_server_packet = False
        self._pending_client_hello = bytearray()
        self._pending_stateless = []
        self._token = config.token if config.is_client else b""
        self._peer_initial_scid = None
        self._client_hello_parameters = None
        reset_key = config.stateless_reset_key
        if reset_key is None:
            reset_key = config.shared("stateless_reset_key", lambda: config.random_bytes(32))
        self._local_cids = LocalConnectionIds(
            length=config.connection_id_length, random_bytes=config.random_bytes,
            reset_key=reset_key)
        self._local_cid_length = config.connection_id_length
        if config.is_client:
            self._original_dcid = config.random_bytes(8)
            self._peer_cids = PeerConnectionIds(
                initial=self._original_dcid, limit=config.active_connection_id_limit)
        else:
            self._original_dcid = odcid or b""
            self._peer_cids = PeerConnectionIds(initial=b"",
                                                limit=config.active_connection_id_limit)

    # -- starting ------------------------------------------------------------------------------
    def _tls_config(self) -> TlsConfiguration:
        config = self._config
        return config.shared("tls", lambda: _tls_configuration(config))  # type: ignore[no-any-return]

    def _our_parameter_changes(self, available: tuple[int, ...]) -> dict[str, Any]:
        """The per-connection part of our transport parameters."""
        client = self._is_client
        cids = self._local_cids
        return {
            "original_destination_connection_id": None if client else self._original_dcid,
            "stateless_reset_token": None if client or not cids.initial
            else cids.token_for(cids.initial),
            "initial_source_connection_id": cids.initial,
            "retry_source_connection_id": None if client else self._retry_scid,
            "version_information": VersionInformation(
                chosen_version=self._version, available_versions=available),
            "preferred_address": None if client else self._our_preferred_address(),
        }

    def _our_preferred_address(self) -> PreferredAddress | None:
        """Server: the preferred_address we advertise, made once per connection with a
        connection ID of its own (sequence 1, RFC 9000 §5.1.1) routed to us at once."""
        config = self._config
        if config.preferred_ipv4_address is None and config.preferred_ipv6_address is None:
            return None
        param = self._preferred_param
        if param is None:
            cids = self._local_cids
            _seq, cid, token = cids.issue_unannounced()
            self._events.append(ConnectionIdIssued(connection_id=cid))
            param = self._preferred_param = PreferredAddress(
                ipv4=config.preferred_ipv4_address, ipv6=config.preferred_ipv6_address,
                connection_id=cid, stateless_reset_token=token)
        return param

    def _new_tls(self) -> Handshake:
        template, available = _parameter_template(self._config)
        return Handshake(self._tls_config(), transport_parameters=template.encode(
            self._our_parameter_changes(available)))

    def _install_initial_keys(self, now: float) -> None:
        sealer, opener = derive_initial_keys(self._version, self._original_dcid_for_keys,
                                             self._is_client)
        space = self._spaces[0]
        space.sealer, space.opener = sealer, opener

    @property
    def _original_dcid_for_keys(self) -> bytes:
        """The DCID the Initial keys derive from: the client's first, or the Retry's SCID."""
        if self._is_client:
            return self._peer_cids.current if self._retry_received else self._original_dcid
        return self._initial_dcid

    def _start_client(self, now: float) -> None:
        self._install_initial_keys(now)
        self._start_qlog(now)
        self._tls = self._new_tls()
        self._tls.start()
        config = self._config
        if config.session_ticket is not None and config.enable_early_data:
            self._remember_ticket_parameters(config.session_ticket)
        self._process_tls_updates(now)
        self._arm_idle(now)

    def _remember_ticket_parameters(self, raw_ticket: bytes) -> None:
        """Client 0-RTT: the server's remembered limits apply to early data (RFC 9000 §7.4.1)."""
        try:
            ticket = SessionTicket.from_bytes(raw_ticket)
            if ticket.peer_transport_parameters is None:
                return
            params = decode_transport_parameters(ticket.peer_transport_parameters)
        except Exception:
            return
        self._streams.apply_peer_parameters(params)
        self._remembered_params = params

    # -- the server's first datagram -----------------------------------------------------------
    def _accept_first_datagram(self, data: bytes, addr: Any, now: float) -> bool:
        """Server: decide what to do with a datagram before the handshake started."""
        try:
            header = parse_header(data, 0, self._local_cid_length)
        except MalformedPacketError:
            return False
        if not header.is_long or header.version is None:
            return False
        if header.packet_type is None or header.version not in self._config.supported_versions:
            if len(data) >= MIN_INITIAL_DATAGRAM and len(header.dcid) >= 8:
                versions = [v for v in self._config.supported_versions if v in SUPPORTED_VERSIONS]
                versions.append(0x1A2A3A4A)  # a GREASE version (RFC 9000 §6.3)
                packet = encode_version_negotiation(header.scid, header.dcid, versions,
                                                    self._config.random_bytes(1)[0])
                self._pending_stateless.append((packet, addr))
            return False
        if header.packet_type is not PacketType.INITIAL or len(data) < MIN_INITIAL_DATAGRAM:
            return False
        if len(header.dcid) < 8:
            return False  # RFC 9000 §7.2: at least 8 bytes in the client's first Initial
        if not self._check_initial_token(header, addr, now):
            return False
        self._version = self._first_version = header.version
        self._initial_dcid = header.dcid
        if not self._original_dcid:
            self._original_dcid = header.dcid
        self._peer_cids.replace_initial(header.scid)
        self._peer_initial_scid = header.scid
        self._paths.get_or_create(addr, validated=self._address_validated)
        self._install_initial_keys(now)
        self._start_qlog(now)
        self._tls = self._new_tls()  # replaced once the ClientHello is seen (versions)
        self._tls_started = False
        self._arm_idle(now)
        return True

    def _check_initial_token(self, header: Header, addr: Any, now: float) -> bool:
        """Server: Retry and NEW_TOKEN tokens on the first Initial; False drops the datagram."""
        config = self._config
        self._address_validated = self._retry_scid is not None
        handler = default_token_handler(config)
        token = header.token
        if not token and not (config.retry and self._retry_scid is None):
            return True  # nothing to check, no Retry to send: no need for the time
        wall = config.wall_clock().timestamp()
        if token and handler.is_retry_token(token):
            result = handler.check_retry_token(token, addr, wall)
            if result is None or result[1] != header.dcid:
                # forged, expired, from another address or for another connection ID: drop
                # the datagram and let the client time out (RFC 9000 §8.1.2)
                return False
            odcid, retry_scid = result
            self._original_dcid = odcid
            self._retry_scid = retry_scid
            self._address_validated = True
            return True
        if token and handler.check_new_token(token, addr, wall):
            self._address_validated = True
            return True
        if config.retry and self._retry_scid is None:
            retry_scid = config.random_bytes(max(8, self._local_cid_length))
            retry_token = handler.mint_retry_token(addr, header.dcid, retry_scid, wall)
            assert header.version is not None
            packet = encode_retry(header.version, header.scid, retry_scid, header.dcid,
                                  retry_token)
            self._pending_stateless.append((packet, addr))
            return False
        return True

    def _start_server_tls(self, hello: bytes, now: float) -> None:
        """Server: the whole ClientHello is here; choose the version (RFC 9368) and start TLS."""
        client_hello = None
        try:
            client_hello = parse_client_hello(hello[4:])
            raw = client_hello.transport_parameters
            params = decode_transport_parameters(raw) if raw is not None else None
        except (AlertError, TransportError, ValueError):
            params = None
        if params is not None:
            assert raw is not None
            self._client_hello_parameters = (raw, params)  # _apply_peer_parameters reuses it
        first_version = self._version
        if params is not None and params.version_information is not None:
            info = params.version_information
            if info.chosen_version != self._version:
                raise TransportError("client version_information disagrees with its Initial",
                                     error_code=TransportErrorCode.VERSION_NEGOTIATION_ERROR)
            for version in self._config.supported_versions:
                if version in info.available_versions and version in SUPPORTED_VERSIONS:
                    if version != self._version:
                        self._switch_version(version)
                    break
        if self._tls is None or self._version != first_version:
            # our transport parameters name the version: the TLS made for the first
            # datagram stands unless the version changed
            self._tls = self._new_tls()
        if client_hello is not None:
            self._tls.use_parsed_client_hello(hello, client_hello)  # parsed once, not twice
        self._tls_started = True

    def _switch_version(self, version: int) -> None:
        """Server: compatible version negotiation to ``version`` (RFC 9368 §2.3)."""
        space = self._spaces[0]
        assert space.opener is not None
        self._other_initial_openers[self._version] = space.opener
        self._version = version
        space.sealer, space.opener = derive_initial_keys(version, self._initial_dcid, False)

    def _accept_other_version(self, header: Header) -> bool:
        """A long header in another version than ours: may we process it?"""
        version = header.version
        if self._is_client:
            # the server switched versions (RFC 9368): accept its first Initial in a
            # version we offered, before anything else came from it
            if (header.packet_type is PacketType.INITIAL and not self._received_server_packet
                    and version in self._config.supported_versions
                    and version in SUPPORTED_VERSIONS):
                assert version is not None
                self._version = version
                sealer, opener = derive_initial_keys(version, self._original_dcid_for_keys, True)
                self._spaces[0].sealer, self._spaces[0].opener = sealer, opener
                return True
            return False
        # server: the client's Initials in its first version, until it switches
        return header.packet_type is PacketType.INITIAL and version in self._other_initial_openers

    # -- Retry and Version Negotiation (client) ------------------------------------------------
    def _on_retry(self, data: bytes, header: Header, now: float) -> None:
        if not self._is_client or self._received_server_packet or self._retry_received:
            return
        if header.version != self._version or header.scid == self._original_dcid:
            return
        if not retry_integrity_ok(data[header.start:header.end], self._original_dcid,
                                  self._version):
            return
        self._retry_received = True
        self._retry_scid = header.scid
        self._token = header.token
        self._peer_cids.replace_initial(header.scid)
        self._install_initial_keys(now)
        self._restart_sending(now)

    def _restart_sending(self, now: float) -> None:
        """Everything sent so far must go again (after a Retry): CRYPTO and 0-RTT data."""
        for packet in self._recovery.on_retry_received(now):
            self._on_records_lost(packet.frames, packet.epoch)
        self._spaces[0].crypto_send.resend_unacked()

    def _on_version_negotiation(self, header: Header, now: float) -> None:
        if not self._is_client or self._received_server_packet or self._retry_received \
                or self._vn_received:
            return  # (one Version Negotiation at most: RFC 9000 §6.2, RFC 9368 §4)
        if header.dcid != self._local_cids.initial or header.scid != self._original_dcid:
            return
        offered = header.supported_versions
        if self._version in offered:
            return  # RFC 9000 §6.2: ignore
        for version in self._config.supported_versions:
            if version in offered and version in SUPPORTED_VERSIONS:
                break
        else:
            self._events.append(ConnectionTerminated(
                error_code=TransportErrorCode.VERSION_NEGOTIATION_ERROR, frame_type=None,
                reason_phrase="no common QUIC version", by_peer=True))
            self._state = State.TERMINATED
            return
        # a new attempt in the new version (RFC 9368 §2.1)
        self._vn_received = True
        self._version = version
        self._recovery.on_retry_received(now)
        space = self._spaces[0]
        space.crypto_send.reset()
        space.crypto_receive.reset()
        self._install_initial_keys(now)
        self._zero_rtt_sealer = None
        self._tls = self._new_tls()
        self._tls.start()
        self._process_tls_updates(now)

    # -- packets -------------------------------------------------------------------------------
    def _on_first_packet(self, epoch: Epoch, header: Header, path: Path, now: float) -> None:
        """Bookkeeping when a packet of a space is accepted (keys, CIDs, validation)."""
        if self._is_client:
            if not self._received_server_packet:
                self._received_server_packet = True
                self._peer_cids.replace_initial(header.scid)
                self._peer_initial_scid = header.scid
        elif epoch is _HANDSHAKE:
            if not path.validated:
                path.validated = True
                self._recovery.set_amplification_limited(False, now)
            if not self._spaces[0].discarded:
                self._discard_space(0, now)

    def _discard_space(self, index: int, now: float) -> None:
        space = self._spaces[index]
        if space.discarded:
            return
        space.discard()
        self._recovery.discard_space(_INITIAL if index == 0 else _HANDSHAKE, now)
        if index == 0:
            self._other_initial_openers.clear()

    # -- TLS -----------------------------------------------------------------------------------
    def _receive_crypto(self, epoch: Epoch, data: bytes, now: float) -> None:
        if not self._is_client and not self._tls_started:
            self._pending_client_hello += data
            pending = self._pending_client_hello
            if len(pending) < 4:
                return
            if pending[0] != HandshakeType.client_hello:
                raise CryptoError(10, "the first handshake message is not a ClientHello")
            if len(pending) < 4 + int.from_bytes(pending[1:4], "big"):
                if len(pending) > 65536 + 4:
                    raise CryptoError(10, "ClientHello too large")
                return
            self._start_server_tls(bytes(pending), now)
            data = bytes(pending)
            pending.clear()
        tls = self._tls
        assert tls is not None
        try:
            tls.receive(epoch, data)
        except AlertError as exc:
            self._process_tls_updates(now)
            raise CryptoError(int(exc.description), exc.reason or "TLS alert") from None
        self._process_tls_updates(now)

    def _process_tls_updates(self, now: float) -> None:
        tls = self._tls
        assert tls is not None
        if self._peer_params is None and tls.peer_transport_parameters is not None:
            self._apply_peer_parameters(tls.peer_transport_parameters, now)
        for update in tls.take_updates():
            if isinstance(update, SendCryptoData):
                self._spaces[_SPACE[update.epoch]].crypto_send.write(update.data)
            elif isinstance(update, InstallKey):
                self._install_key(update, now)
            elif isinstance(update, HandshakeComplete):
                self._on_handshake_complete(update, now)
            elif isinstance(update, SessionTicketReceived):
                params = self._peer_params_raw
                ticket = attrs.evolve(update.ticket, quic_version=self._version,
                                      peer_transport_parameters=params)
                self._events.append(SessionTicketEvent(ticket=ticket.to_bytes()))

    def _install_key(self, update: InstallKey, now: float) -> None:
        epoch = update.epoch
        version = self._version
        if epoch is _ZERO_RTT:
            if update.is_write:
                self._zero_rtt_sealer = PacketSealer(version, update.suite, update.secret)
                self._early_data_sent = True
            else:
                self._zero_rtt_opener = PacketOpener(version, update.suite, update.secret)
            return
        space = self._spaces[_SPACE[epoch]]
        if update.is_write:
            space.sealer = PacketSealer(version, update.suite, update.secret)
        else:
            space.opener = PacketOpener(version, update.suite, update.secret)
        if epoch is _HANDSHAKE:
            self._recovery.has_handshake_keys = True
        elif epoch is _ONE_RTT and update.is_write and self._is_client:
            self._zero_rtt_sealer = None  # 1-RTT from now on (RFC 9001 §4.6.1)
        if self._qlog is not None:
            self._qlog.event(now, "security:key_updated", {
                "key_type": f"{'client' if self._is_client == update.is_write else 'server'}_"
                            f"{epoch.name.lower()}_secret", "trigger": "tls"})

    def _apply_peer_parameters(self, raw: bytes, now: float) -> None:
        seen = self._client_hello_parameters
        self._client_hello_parameters = None
        params = seen[1] if seen is not None and seen[0] == raw else (
            decode_transport_parameters(raw))
        check_peer_parameters(params, peer_is_server=self._is_client)
        if params.initial_source_connection_id != self._peer_initial_scid:
            raise TransportParameterError("initial_source_connection_id does not match")
        if self._is_client:
            if params.original_destination_connection_id != self._original_dcid:
                raise TransportParameterError("original_destination_connection_id mismatch")
            if params.retry_source_connection_id != (self._retry_scid if self._retry_received
                                                     else None):
                raise TransportParameterError("retry_source_connection_id mismatch")
            info = params.version_information
            if info is not None and info.chosen_version != self._version:
                raise TransportError("server version_information does not match",
                                     error_code=TransportErrorCode.VERSION_NEGOTIATION_ERROR)
            if params.stateless_reset_token is not None:
                self._peer_cids.set_initial_token(params.stateless_reset_token)
            preferred = params.preferred_address
            if preferred is not None:  # its connection ID has sequence number 1 (§5.1.1)
                try:
                    self._peer_cids.add(PREFERRED_SEQUENCE, preferred.connection_id,
                                        preferred.stateless_reset_token, 0)
                except TransportError as exc:
                    raise TransportParameterError(f"preferred_address: {exc.reason}") from None
                if self._config.use_preferred_address:
                    # kept for the probe once the handshake is confirmed: nothing else
                    # (change_connection_id, retire_prior_to) may take it meanwhile
                    self._peer_cids.reserved = PREFERRED_SEQUENCE
        self._peer_params = params
        self._peer_params_raw = raw
        recovery = self._recovery
        recovery.rtt.max_ack_delay = params.max_ack_delay / 1000.0
        self._peer_ack_delay_exponent = params.ack_delay_exponent
        if params.max_idle_timeout:
            peer_timeout = params.max_idle_timeout / 1000.0
            local = self._config.idle_timeout
            self._idle_timeout = min(local, peer_timeout) if local > 0 else peer_timeout
        self._streams.apply_peer_parameters(params)
        if params.max_udp_payload_size < self._max_datagram_size:
            self._max_datagram_size = max(1200, params.max_udp_payload_size)

    def _on_handshake_complete(self, update: HandshakeComplete, now: float) -> None:
        self._handshake_complete = True
        self._state = State.CONNECTED
        if self._is_client and self._early_data_sent and not update.early_data_accepted:
            # 0-RTT rejected: what it carried goes again in 1-RTT (RFC 9001 §4.6.2)
            for packet in self._recovery.discard_space(_ZERO_RTT, now):
                self._on_records_lost(packet.frames, packet.epoch)
        self._events.append(HandshakeCompleted(
            alpn_protocol=update.alpn_protocol, session_resumed=update.session_resumed,
            early_data_accepted=update.early_data_accepted))
        if self._qlog is not None:
            self._qlog.event(now, "connectivity:connection_state_updated",
                             {"new": "handshake_complete"})
        if not self._is_client:
            self._handshake_done_pending = True
            self._path_dcid = self._local_cids.initial  # what the client sends to, for now
            config = self._config
            path = self._paths.current
            if config.issue_new_tokens and path is not None:
                wall = config.wall_clock().timestamp()
                self._new_token_pending = default_token_handler(config).mint_new_token(
                    path.address, wall)
            self._on_handshake_confirmed(now)
        self._issue_connection_ids()

    def _on_handshake_confirmed(self, now: float) -> None:
        if self._handshake_confirmed:
            return
        self._handshake_confirmed = True
        self._discard_space(0, now)
        self._discard_space(1, now)
        self._recovery.on_handshake_confirmed(now)
        if self._is_client:
            path = self._paths.current
            if path is not None:
                path.validated = True
            self._probe_preferred_address(now)

    def _on_new_token_frame(self, token: bytes) -> None:
        self._events.append(NewTokenReceived(token=token))

    @property
    def _app_space(self) -> PacketSpace:
        return self._spaces[2]
