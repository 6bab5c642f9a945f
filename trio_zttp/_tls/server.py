"""The server side of the handshake: one method per client message (RFC 8446 §4, RFC 9001).

One ClientHello in, the whole server flight out: ServerHello at the Initial level, then
EncryptedExtensions, [CertificateRequest, Certificate, CertificateVerify,] Finished at the
Handshake level.  A HelloRetryRequest (with a cookie) asks for another key share when the
client shared none of our groups.
"""

from __future__ import annotations

import hmac
from typing import Final

from cryptography.hazmat.primitives.serialization import Encoding

from . import extensions as ext
from . import messages as m
from .alerts import AlertDescription, AlertError
from .common import FlowBase, State, negotiated_alpn
from .config import TlsConfiguration
from .extensions import TLS13, ExtensionType, PskKeyExchangeMode
from .key_exchange import SUPPORTED_GROUPS, server_key_exchange
from .key_schedule import KeySchedule
from .keylog import KeyLogLabel
from .suites import CipherSuite, Epoch, hash_name
from .tickets import ResumptionState, psk_from_resumption_secret
from .verify import (
    choose_signature_scheme,
    parse_certificate,
    sign_certificate_verify,
)

__all__ = ["ServerFlow"]

_E = ExtensionType
_COOKIE_LENGTH: Final = 32


def _illegal(reason: str) -> AlertError:
    return AlertError(AlertDescription.illegal_parameter, reason)


def _missing(reason: str) -> AlertError:
    return AlertError(AlertDescription.missing_extension, reason)


class ServerFlow(FlowBase):
    """Server negotiation state and the handlers the state table calls."""

    def __init__(self, config: TlsConfiguration, transport_parameters: bytes) -> None:
        super().__init__(config, transport_parameters)
        self._cookie: bytes | None = None
        self._hello_retry_group: int | None = None
        self._certificate_requested = False
        self._signature_algorithms: tuple[int, ...] = ()
        self._server_name: str | None = None
        self._tickets_sent = 0
        self.parsed_client_hello: tuple[bytes, m.ClientHello] | None = None
        # a ClientHello message and its parse, from Handshake.use_parsed_client_hello

    # --- ClientHello ---------------------------------------------------------------------

    def on_client_hello(self, message: bytes) -> None:
        parsed = self.parsed_client_hello
        self.parsed_client_hello = None
        if parsed is not None and parsed[0] == message:
            hello = parsed[1]
        else:
            hello = m.parse_client_hello(message[4:])
        retrying = self.state is State.SERVER_WAIT_SECOND_CLIENT_HELLO
        self._check_client_hello(hello, retrying)
        cfg = self.config
        # the time matters only for a ticket the client offers
        now = cfg.wall_clock().timestamp() if hello.pre_shared_key is not None else 0.0
        suite = self.suite if retrying else self._choose_suite(hello, now)
        assert suite is not None
        if retrying and suite not in hello.cipher_suites:
            raise _illegal("second ClientHello dropped the HelloRetryRequest's cipher suite")
        shares = dict(hello.key_shares or ())
        group = next(
            (g for g in cfg.supported_groups if g in shares and g in SUPPORTED_GROUPS), None
        )
        if group is None:
            if retrying:
                raise _illegal("second ClientHello lacks the requested key share")
            self._hello_retry(message, hello, suite)
            return
        if retrying and group != self._hello_retry_group:
            raise _illegal("second ClientHello shares another group than requested")
        self.suite = suite
        self.group = group
        self.client_random = hello.random
        self._server_name = hello.server_name
        self.peer_transport_parameters = hello.transport_parameters
        self.transcript.set_hash(hash_name(suite))
        resumption = self._accept_psk(message, hello, suite, now)
        self.transcript.add(message)
        self.schedule = KeySchedule(suite, None if resumption is None else resumption.psk)
        if resumption is not None and self._accept_early_data(hello, resumption, suite, now):
            secret = self.ks.client_early_traffic_secret(self.transcript.digest())
            self.keylog(KeyLogLabel.CLIENT_EARLY_TRAFFIC_SECRET, secret)
            self.install(Epoch.ZERO_RTT, False, suite, secret)

        server_share, shared_secret = server_key_exchange(
            group, shares[group], cfg.random_bytes, cfg.private_key_for(group)
        )
        extensions = [
            (_E.supported_versions, ext.encode_supported_versions_server(TLS13)),
            (_E.key_share, ext.encode_key_share_server(group, server_share)),
        ]
        if resumption is not None:
            extensions.append((_E.pre_shared_key, ext.encode_pre_shared_key_server(0)))
        server_hello = m.encode_server_hello(
            random=cfg.random_bytes(32), cipher_suite=suite, extensions=extensions
        )
        self.transcript.add(server_hello)
        self.ks.set_shared_secret(shared_secret)
        self.derive_handshake_secrets()
        self.send(Epoch.INITIAL, server_hello)
        self.install(Epoch.HANDSHAKE, True, suite, self.server_handshake_secret)
        self.install(Epoch.HANDSHAKE, False, suite, self.client_handshake_secret)

        flight = self._encrypted_extensions()
        if not self.session_resumed:
            flight += self._authentication(hello)
        finished = m.encode_finished(
            self.ks.verify_data(self.server_handshake_secret, self.transcript.digest())
        )
        self.transcript.add(finished)
        self.derive_application_secrets()
        self.send(Epoch.HANDSHAKE, flight + finished)
        self.install(Epoch.ONE_RTT, True, suite, self.server_application_secret)
        self.state = (
            State.SERVER_WAIT_CERTIFICATE
            if self._certificate_requested
            else State.SERVER_WAIT_FINISHED
        )

    def _check_client_hello(self, hello: m.ClientHello, retrying: bool) -> None:
        """Checks that do not depend on what we choose (RFC 8446 §4.1.2, §9.2; RFC 9001 §8)."""
        if hello.supported_versions is None or TLS13 not in hello.supported_versions:
            raise AlertError(AlertDescription.protocol_version, "client does not offer TLS 1.3")
        if hello.legacy_compression_methods != b"\x00":
            raise _illegal("compression methods must be exactly null")
        if hello.legacy_session_id:
            # RFC 9001 §8.4: QUIC has no middlebox compatibility mode
            raise _illegal("QUIC ClientHello with a legacy_session_id")
        if hello.transport_parameters is None:
            raise _missing("no quic_transport_parameters")
        if hello.key_shares is None:
            raise _missing("no key_share")
        if hello.supported_groups is None:
            raise _missing("key_share without supported_groups")
        seen: set[int] = set()
        for group, _ in hello.key_shares:
            if group in seen or group not in hello.supported_groups:
                raise _illegal("key_share entries must be unique and in supported_groups")
            seen.add(group)
        if hello.pre_shared_key is not None and hello.psk_key_exchange_modes is None:
            raise _missing("pre_shared_key without psk_key_exchange_modes")
        if retrying:
            if hello.early_data:
                raise _illegal("early_data after a HelloRetryRequest")
            if hello.cookie != self._cookie:
                raise _illegal("second ClientHello does not echo our cookie")
            if hello.key_shares and len(hello.key_shares) != 1:
                raise _illegal("second ClientHello must share exactly the requested group")
        if hello.alpn_protocols is None:
            raise AlertError(AlertDescription.no_application_protocol, "client offers no ALPN")
        alpn = negotiated_alpn(self.config.alpn_protocols, hello.alpn_protocols)
        if alpn is None:
            raise AlertError(AlertDescription.no_application_protocol, "no ALPN in common")
        self.alpn_protocol = alpn
        if hello.signature_algorithms is None:
            raise _missing("no signature_algorithms")
        self._signature_algorithms = hello.signature_algorithms

    def _choose_suite(self, hello: m.ClientHello, now: float) -> CipherSuite:
        ours = self.config.cipher_suites
        state = self._open_first_ticket(hello, now)
        if state is not None and state.cipher_suite in ours:
            if state.cipher_suite in hello.cipher_suites:
                return state.cipher_suite  # resuming beats our preference order
        for suite in ours:
            if suite in hello.cipher_suites:
                return suite
        raise AlertError(AlertDescription.handshake_failure, "no cipher suite in common")

    def _open_first_ticket(self, hello: m.ClientHello, now: float) -> ResumptionState | None:
        protector = self.config.ticket_protector
        offered = hello.pre_shared_key
        modes = hello.psk_key_exchange_modes or ()
        if protector is None or offered is None or PskKeyExchangeMode.psk_dhe_ke not in modes:
            return None
        state = protector.open(offered.identities[0][0])
        if state is None or state.is_expired(now):
            return None
        return state

    def _accept_psk(
        self, message: bytes, hello: m.ClientHello, suite: CipherSuite, now: float
    ) -> ResumptionState | None:
        """Resume with the first offered ticket if it is ours, valid and its binder verifies.

        Only the first identity is tried (we only ever issue one ticket per resumption
        attempt); a ticket we cannot use means a full handshake, but a binder that does not
        verify is fatal (RFC 8446 §4.2.11).
        """
        offered = hello.pre_shared_key
        if offered is None:
            return None
        if len(offered.identities) != len(offered.binders):
            raise _illegal("PSK identities and binders differ in number")
        state = self._open_first_ticket(hello, now)
        if state is None or hash_name(state.cipher_suite) != hash_name(suite):
            return None
        schedule = KeySchedule(suite, state.psk)
        truncated = message[: len(message) - offered.binders_length]
        expected = schedule.verify_data(
            schedule.binder_key(), self.transcript.digest_with(truncated)
        )
        if not hmac.compare_digest(expected, offered.binders[0]):
            raise AlertError(AlertDescription.decrypt_error, "PSK binder does not verify")
        if self.config.client_auth == "require" and state.client_identity is None:
            return None  # resuming would skip the client certificate we insist on
        if state.client_identity is not None:
            self.peer_certificate_chain = (parse_certificate(state.client_identity),)
        self.session_resumed = True
        return state

    def _accept_early_data(
        self, hello: m.ClientHello, state: ResumptionState, suite: CipherSuite, now: float
    ) -> bool:
        """0-RTT needs our consent, the same suite, ALPN and context, a fresh and unused
        ticket, and no HelloRetryRequest (RFC 8446 §4.2.10, §8; RFC 9001 §4.6.2)."""
        cfg = self.config
        offered = hello.pre_shared_key
        guard = cfg.replay_guard
        if (
            not hello.early_data
            or not cfg.enable_early_data
            or guard is None
            or offered is None
            or self._cookie is not None
            or state.max_early_data != 0xFFFFFFFF
            or state.cipher_suite != suite
            or state.alpn != self.alpn_protocol
            or state.early_data_context != cfg.early_data_context
        ):
            return False
        identity, obfuscated_age = offered.identities[0]
        window = cfg.early_data_window
        if not state.is_fresh(obfuscated_age, now, window=window):
            return False
        # remember the ticket until a replay would fail the freshness check anyway
        expires_at = min(state.expires_at, now + 2 * window)
        if not guard.use(identity, expires_at=expires_at, now=now):
            return False
        self.early_data_accepted = True
        return True

    def _hello_retry(self, message: bytes, hello: m.ClientHello, suite: CipherSuite) -> None:
        assert hello.supported_groups is not None
        offered = set(hello.supported_groups)
        group = next(
            (g for g in self.config.supported_groups if g in offered and g in SUPPORTED_GROUPS),
            None,
        )
        if group is None:
            raise AlertError(AlertDescription.handshake_failure, "no key exchange group in common")
        self._cookie = self.config.random_bytes(_COOKIE_LENGTH)
        self._hello_retry_group = group
        self.suite = suite
        retry = m.encode_server_hello(
            random=m.HELLO_RETRY_REQUEST_RANDOM,
            cipher_suite=suite,
            extensions=[
                (_E.supported_versions, ext.encode_supported_versions_server(TLS13)),
                (_E.key_share, ext.encode_key_share_hrr(group)),
                (_E.cookie, ext.encode_cookie(self._cookie)),
            ],
        )
        self.transcript.set_hash(hash_name(suite))
        self.transcript.add(message)
        self.transcript.restart_for_hello_retry(hash_name(suite))
        self.transcript.add(retry)
        self.send(Epoch.INITIAL, retry)
        self.state = State.SERVER_WAIT_SECOND_CLIENT_HELLO

    def _encrypted_extensions(self) -> bytes:
        assert self.alpn_protocol is not None
        extensions = [
            (
                _E.application_layer_protocol_negotiation,
                ext.encode_alpn([self.alpn_protocol.encode()]),
            ),
            (_E.quic_transport_parameters, self.transport_parameters),
        ]
        if self.early_data_accepted:
            extensions.append((_E.early_data, b""))
        message = m.encode_encrypted_extensions(extensions)
        self.transcript.add(message)
        return message

    def _authentication(self, hello: m.ClientHello) -> bytes:
        """[CertificateRequest,] Certificate, CertificateVerify."""
        cfg = self.config
        key = cfg.private_key
        assert key is not None
        scheme = choose_signature_scheme(key, self._signature_algorithms)
        flight = b""
        if cfg.client_auth != "none":
            request = m.encode_certificate_request(
                b"",
                [(_E.signature_algorithms, ext.encode_u16_list(cfg.signature_algorithms))],
            )
            self.transcript.add(request)
            self._certificate_requested = True
            flight += request
        certificate = cfg.certificate_message  # encode_certificate(b"", chain), made once
        self.transcript.add(certificate)
        signature = sign_certificate_verify(key, scheme, self.transcript.digest(), is_server=True)
        verify = m.encode_certificate_verify(scheme, signature)
        self.transcript.add(verify)
        return flight + certificate + verify

    # --- client's second flight ----------------------------------------------------------

    def on_certificate(self, message: bytes) -> None:
        certificate = m.parse_certificate(message[4:])
        if certificate.request_context:
            raise _illegal("client Certificate context differs from our request's")
        self.transcript.add(message)
        if not certificate.entries:
            if self.config.client_auth == "require":
                raise AlertError(
                    AlertDescription.certificate_required, "client sent no certificate"
                )
            self.state = State.SERVER_WAIT_FINISHED
            return
        self.peer_certificate_chain = tuple(
            parse_certificate(der) for der, _ in certificate.entries
        )
        self.state = State.SERVER_WAIT_CERTIFICATE_VERIFY

    def on_certificate_verify(self, message: bytes) -> None:
        self.check_certificate_verify(message, self.config.signature_algorithms)
        self.state = State.SERVER_WAIT_FINISHED

    def on_finished(self, message: bytes) -> None:
        suite = self.suite
        assert suite is not None
        self.check_finished(message, self.client_handshake_secret)
        self.install(Epoch.ONE_RTT, False, suite, self.client_application_secret)
        self.resumption_secret = self.ks.resumption_master_secret(self.transcript.digest())
        self.state = State.SERVER_CONNECTED
        self.complete()
        if self.config.enable_tickets and self.config.ticket_protector is not None:
            self.send_session_ticket()

    def send_session_ticket(self) -> None:
        """Queue a NewSessionTicket at the 1-RTT level (RFC 8446 §4.6.1, RFC 9001 §4.6.1)."""
        cfg = self.config
        protector = cfg.ticket_protector
        suite = self.suite
        if protector is None:
            raise RuntimeError("tickets need a ticket_key")
        assert suite is not None
        nonce = self._tickets_sent.to_bytes(8, "big")
        self._tickets_sent += 1
        age_add = int.from_bytes(cfg.random_bytes(4), "big")
        early = cfg.enable_early_data
        client_identity = (
            self.peer_certificate_chain[0].public_bytes(Encoding.DER)
            if self.peer_certificate_chain
            else None
        )
        state = ResumptionState(
            cipher_suite=suite,
            psk=psk_from_resumption_secret(hash_name(suite), self.resumption_secret, nonce),
            issued_at=cfg.wall_clock().timestamp(),
            lifetime=cfg.ticket_lifetime,
            age_add=age_add,
            ticket_nonce=nonce,
            max_early_data=cfg.max_early_data if early else 0,
            alpn=self.alpn_protocol,
            server_name=self._server_name,
            early_data_context=cfg.early_data_context,
            client_identity=client_identity,
        )
        ticket = m.encode_new_session_ticket(
            ticket_lifetime=cfg.ticket_lifetime,
            ticket_age_add=age_add,
            ticket_nonce=nonce,
            ticket=protector.seal(state),
            max_early_data_size=cfg.max_early_data if early else None,
        )
        self.send(Epoch.ONE_RTT, ticket)
