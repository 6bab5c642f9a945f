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
from .extensions import TLS13, ExtensionType
from .key_exchange import SUPPORTED_GROUPS, server_key_exchange
from .key_schedule import KeySchedule
from .suites import CipherSuite, Epoch, hash_name
from .verify import (
    choose_signature_scheme,
    parse_certificate,
    sign_certificate_verify,
    verify_certificate_chain,
    verify_certificate_verify,
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

    # --- ClientHello ---------------------------------------------------------------------

    def on_client_hello(self, message: bytes) -> None:
        hello = m.parse_client_hello(message[4:])
        retrying = self.state is State.SERVER_WAIT_SECOND_CLIENT_HELLO
        self._check_client_hello(hello, retrying)
        cfg = self.config
        suite = self.suite if retrying else self._choose_suite(hello)
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
        self.peer_transport_parameters = hello.transport_parameters
        self.transcript.set_hash(hash_name(suite))
        self.transcript.add(message)
        self.schedule = KeySchedule(suite)

        server_share, shared_secret = server_key_exchange(
            group, shares[group], cfg.random_bytes, cfg.private_key_for(group)
        )
        server_hello = m.encode_server_hello(
            random=cfg.random_bytes(32),
            cipher_suite=suite,
            extensions=[
                (_E.supported_versions, ext.encode_supported_versions_server(TLS13)),
                (_E.key_share, ext.encode_key_share_server(group, server_share)),
            ],
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

    def _choose_suite(self, hello: m.ClientHello) -> CipherSuite:
        for suite in self.config.cipher_suites:
            if suite in hello.cipher_suites:
                return suite
        raise AlertError(AlertDescription.handshake_failure, "no cipher suite in common")

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
        certificate = m.encode_certificate(
            b"", [c.public_bytes(Encoding.DER) for c in cfg.certificate_chain]
        )
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
        verify = m.parse_certificate_verify(message[4:])
        verify_certificate_verify(
            self.peer_certificate_chain[0],
            verify.algorithm,
            verify.signature,
            self.transcript.digest(),
            is_server=False,
            offered=self.config.signature_algorithms,
        )
        cfg = self.config
        if cfg.verify_peer:
            verify_certificate_chain(
                self.peer_certificate_chain,
                server_name=None,
                now=cfg.wall_clock(),
                cafile=cfg.cafile,
                cadata=cfg.cadata,
                use_system_store=cfg.trust_system_store,
                is_server_cert=False,
            )
        self.transcript.add(message)
        self.state = State.SERVER_WAIT_FINISHED

    def on_finished(self, message: bytes) -> None:
        suite = self.suite
        assert suite is not None
        verify_data = m.parse_finished(message[4:], self.ks.hash_length)
        expected = self.ks.verify_data(self.client_handshake_secret, self.transcript.digest())
        if not hmac.compare_digest(verify_data, expected):
            raise AlertError(AlertDescription.decrypt_error, "client Finished does not verify")
        self.transcript.add(message)
        self.install(Epoch.ONE_RTT, False, suite, self.client_application_secret)
        self.resumption_secret = self.ks.resumption_master_secret(self.transcript.digest())
        self.state = State.SERVER_CONNECTED
        self.complete()
