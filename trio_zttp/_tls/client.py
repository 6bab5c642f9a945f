"""The client side of the handshake: one method per server message (RFC 8446 §4, RFC 9001).

The ClientHello is serialised from the configuration's :class:`~.config.ClientHelloSpec`;
everything else follows RFC 8446 with QUIC's rules: no middlebox compatibility mode, no
EndOfEarlyData, ALPN and ``quic_transport_parameters`` required.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Final

from .._bounded import remember
from . import extensions as ext
from . import messages as m
from .alerts import AlertDescription, AlertError
from .common import FlowBase, SessionTicketReceived, State
from .config import GREASE, Slot, TlsConfiguration
from .extensions import GREASE_VALUES, TLS13, ExtensionType, PskKeyExchangeMode, is_grease
from .key_exchange import SUPPORTED_GROUPS, ClientKeyShare
from .key_schedule import KeySchedule
from .keylog import KeyLogLabel
from .suites import CipherSuite, Epoch, hash_length, hash_name
from .tickets import SessionTicket, pop_usable_ticket, psk_from_resumption_secret
from .verify import (
    choose_signature_scheme,
    parse_certificate,
    server_name_host,
    sign_certificate_verify,
)

__all__ = ["ClientFlow"]

_E = ExtensionType
_SERVER_HELLO_EXTENSIONS: Final = frozenset(
    {_E.supported_versions, _E.key_share, _E.pre_shared_key}
)
_HRR_EXTENSIONS: Final = frozenset({_E.supported_versions, _E.key_share, _E.cookie})
_NOT_IN_ENCRYPTED_EXTENSIONS: Final = frozenset(
    {
        _E.supported_versions,
        _E.key_share,
        _E.pre_shared_key,
        _E.psk_key_exchange_modes,
        _E.signature_algorithms,
        _E.signature_algorithms_cert,
        _E.cookie,
        _E.certificate_authorities,
    }
)


def _illegal(reason: str) -> AlertError:
    return AlertError(AlertDescription.illegal_parameter, reason)


class _Grease:
    """Per-connection GREASE values (RFC 8701), drawn once so a second ClientHello repeats them."""

    def __init__(self, seed: bytes) -> None:
        self._seed = seed

    def value(self, category: int) -> int:
        return GREASE_VALUES[self._seed[category] & 0x0F]

    def extension(self, index: int) -> int:
        # distinct values for distinct GREASE extensions: a stride coprime with 16
        return GREASE_VALUES[(self._seed[2] + 5 * index) & 0x0F]


_CIPHER, _GROUP, _EXTENSION, _VERSION, _SIGNATURE, _PSK_MODE = range(6)


class ClientFlow(FlowBase):
    """Client negotiation state and the handlers the state table calls."""

    def __init__(self, config: TlsConfiguration, transport_parameters: bytes) -> None:
        super().__init__(config, transport_parameters)
        self._grease: _Grease | None = None
        self._shares: list[ClientKeyShare] = []
        self._offered_suites: tuple[int, ...] = ()
        self._offered_extensions: frozenset[int] = frozenset()
        self._signature_algorithms: tuple[int, ...] = ()
        self._cookie: bytes | None = None
        self._hello_retry_suite: CipherSuite | None = None
        self._hello_retry_group: int | None = None
        self._certificate_request: m.CertificateRequest | None = None
        self._early_data_offered = False
        self._ticket: SessionTicket | None = None
        self._now = 0.0

    # --- ClientHello ---------------------------------------------------------------------

    def start(self) -> None:
        """Queue the ClientHello (and the 0-RTT write key when offering early data)."""
        if self.state is not State.CLIENT_START:
            raise RuntimeError("start() was already called")
        cfg = self.config
        self.client_random = cfg.random_bytes(32)
        spec = cfg.client_hello
        if spec.grease:
            self._grease = _Grease(cfg.random_bytes(6))
        self._choose_ticket()
        share_groups = spec.key_share_groups if spec.key_share_groups is not None else (
            cfg.key_share_groups
        )
        self._shares = [
            ClientKeyShare(group, cfg.random_bytes, cfg.private_key_for(group))
            for group in share_groups
            if group != GREASE
        ]
        hello = self._client_hello()
        self.transcript.add(hello)
        self.send(Epoch.INITIAL, hello)
        if self._early_data_offered:
            ticket = self._ticket
            assert ticket is not None
            psk_schedule = KeySchedule(ticket.cipher_suite, ticket.psk)
            secret = psk_schedule.client_early_traffic_secret(
                self.transcript.digest_with(b"", hash_name(ticket.cipher_suite))
            )
            self.keylog(KeyLogLabel.CLIENT_EARLY_TRAFFIC_SECRET, secret)
            self.install(Epoch.ZERO_RTT, True, ticket.cipher_suite, secret)
        self.state = State.CLIENT_WAIT_SERVER_HELLO

    def _choose_ticket(self) -> None:
        """Pick the ticket to resume with, if any, and whether to send 0-RTT with it."""
        cfg = self.config
        spec = cfg.client_hello
        ticket = cfg.session_ticket
        if ticket is None and (cfg.ticket_store is None or not cfg.server_name):
            return  # nothing to resume with: no need for the time
        self._now = cfg.wall_clock().timestamp()
        if ticket is None and cfg.ticket_store is not None and cfg.server_name:
            ticket = pop_usable_ticket(cfg.ticket_store, cfg.server_name, self._now)
        suites = spec.cipher_suites if spec.cipher_suites is not None else cfg.cipher_suites
        if (
            ticket is None
            or ticket.is_expired(self._now)
            or ticket.server_name != (cfg.server_name or "")
            or ticket.cipher_suite not in suites
            or ticket.cipher_suite not in cfg.cipher_suites
            or PskKeyExchangeMode.psk_dhe_ke not in spec.psk_key_exchange_modes
            or _E.psk_key_exchange_modes not in spec.extension_order
        ):
            return
        self._ticket = ticket
        self._early_data_offered = (
            cfg.enable_early_data
            and ticket.max_early_data_size == 0xFFFFFFFF
            and ticket.alpn is not None
            and ticket.alpn in cfg.alpn_protocols
            and _E.early_data in spec.extension_order
        )

    def _fill(self, slots: Sequence[Slot], category: int) -> list[int]:
        out: list[int] = []
        for slot in slots:
            if slot == GREASE:
                if self._grease is not None:
                    out.append(self._grease.value(category))
            else:
                out.append(int(slot))
        return out

    def _client_hello(self) -> bytes:
        """The ClientHello: from the configuration's :class:`_HelloPlan` without GREASE (the
        constant extensions encoded once), else :meth:`_client_hello_general`."""
        plan: _HelloPlan | None = None
        if self._grease is None:
            memo = self.config.memo
            plan = memo.get("client_hello")
            if plan is None:
                plan = memo["client_hello"] = _hello_plan(self)
        if plan is None or plan.items is None:
            return self._client_hello_general()
        self._offered_suites = plan.offered_suites
        if plan.signature_algorithms is not None:
            self._signature_algorithms = plan.signature_algorithms
        types = set(plan.constant_types)
        chunks: list[bytes | None] = []
        for item in plan.items:
            if isinstance(item, bytes):
                chunks.append(item)
            else:
                body = self._extension_body(item)
                if body is not None:
                    chunks.append(_entry(item, body))
                    types.add(item)
        if self._cookie is not None and plan.cookie_appended:
            chunks.append(_entry(_E.cookie, ext.encode_cookie(self._cookie)))
            types.add(_E.cookie)
        ticket = self._ticket
        if ticket is not None:
            length = hash_length(ticket.cipher_suite)
            identity = (ticket.ticket, ticket.obfuscated_age(self._now))
            body = ext.encode_pre_shared_key_client([identity], [bytes(length)])
            chunks.append(_entry(_E.pre_shared_key, body))
            types.add(_E.pre_shared_key)
        if None in chunks:
            return self._client_hello_general()  # a body too long: the general path's error
        extensions = b"".join(chunks)  # type: ignore[arg-type]  # no None left
        if len(extensions) > 0xFFFF:
            return self._client_hello_general()
        self._offered_extensions = frozenset(types)
        body = b"".join((b"\x03\x03", self.client_random, plan.middle, _U16(len(extensions)),
                         extensions))
        hello = b"\x01" + len(body).to_bytes(3, "big") + body
        if ticket is None:
            return hello
        return self._with_binder(hello, ticket)

    def _client_hello_general(self) -> bytes:
        """The ClientHello, every part encoded now (with GREASE, and the reference)."""
        cfg = self.config
        spec = cfg.client_hello
        suites = self._fill(
            spec.cipher_suites if spec.cipher_suites is not None else cfg.cipher_suites, _CIPHER
        )
        self._offered_suites = tuple(s for s in suites if not is_grease(s))
        extras = dict(spec.extra_extensions)
        extensions: list[tuple[int, bytes]] = []
        grease_extensions = 0
        for slot in spec.extension_order:
            if slot == GREASE:
                if self._grease is not None:
                    filler = b"" if grease_extensions == 0 else b"\x00"
                    extensions.append((self._grease.extension(grease_extensions), filler))
                    grease_extensions += 1
                continue
            if slot == _E.pre_shared_key:
                continue
            body = extras.pop(slot) if slot in extras else self._extension_body(slot)
            if body is not None:
                extensions.append((slot, body))
        extensions.extend(extras.items())
        if self._cookie is not None and _E.cookie not in spec.extension_order:
            extensions.append((_E.cookie, ext.encode_cookie(self._cookie)))
        ticket = self._ticket
        if ticket is not None:
            length = hash_length(ticket.cipher_suite)
            identity = (ticket.ticket, ticket.obfuscated_age(self._now))
            body = ext.encode_pre_shared_key_client([identity], [bytes(length)])
            extensions.append((_E.pre_shared_key, body))
        self._offered_extensions = frozenset(t for t, _ in extensions)
        hello = m.encode_client_hello(
            random=self.client_random,
            cipher_suites=suites,
            extensions=extensions,
            legacy_compression_methods=spec.legacy_compression_methods,
        )
        if ticket is None:
            return hello
        return self._with_binder(hello, ticket)

    def _with_binder(self, hello: bytes, ticket: SessionTicket) -> bytes:
        """``hello`` with its zero PSK binder replaced by the real one."""
        length = hash_length(ticket.cipher_suite)
        # the binder covers the ClientHello up to the binders list (RFC 8446 §4.2.11.2)
        truncated = hello[: len(hello) - ext.binders_length([length])]
        schedule = KeySchedule(ticket.cipher_suite, ticket.psk)
        binder = schedule.verify_data(
            schedule.binder_key(),
            self.transcript.digest_with(truncated, hash_name(ticket.cipher_suite)),
        )
        return truncated + (1 + length).to_bytes(2, "big") + bytes((length,)) + binder

    def _extension_body(self, ext_type: int) -> bytes | None:
        cfg = self.config
        spec = cfg.client_hello
        if ext_type == _E.server_name:
            return _server_name_extension(cfg.server_name)
        if ext_type == _E.supported_groups:
            groups = spec.supported_groups if spec.supported_groups is not None else (
                cfg.supported_groups
            )
            return ext.encode_u16_list(self._fill(groups, _GROUP))
        if ext_type == _E.signature_algorithms:
            algorithms = spec.signature_algorithms if spec.signature_algorithms is not None else (
                cfg.signature_algorithms
            )
            filled = self._fill(algorithms, _SIGNATURE)
            self._signature_algorithms = tuple(a for a in filled if not is_grease(a))
            return ext.encode_u16_list(filled)
        if ext_type == _E.signature_algorithms_cert:
            if spec.signature_algorithms_cert is None:
                return None
            return ext.encode_u16_list(spec.signature_algorithms_cert)
        if ext_type == _E.application_layer_protocol_negotiation:
            protocols = spec.alpn_protocols if spec.alpn_protocols is not None else (
                cfg.alpn_protocols
            )
            return ext.encode_alpn([p.encode() for p in protocols])
        if ext_type == _E.supported_versions:
            versions = self._fill(spec.supported_versions, _VERSION)
            return ext.encode_supported_versions_client(versions)
        if ext_type == _E.psk_key_exchange_modes:
            modes: list[int] = []
            for slot in spec.psk_key_exchange_modes:
                if slot != GREASE:
                    modes.append(int(slot))
                elif self._grease is not None:
                    modes.append(ext.grease_psk_mode(self._grease.value(_PSK_MODE)))
            return ext.encode_psk_modes(modes)
        if ext_type == _E.key_share:
            entries = [(share.group, share.public) for share in self._shares]
            groups = spec.key_share_groups if spec.key_share_groups is not None else ()
            if self._grease is not None and GREASE in groups and self._hello_retry_group is None:
                entries.insert(list(groups).index(GREASE), (self._grease.value(_GROUP), b"\x00"))
            return ext.encode_key_share_client(entries)
        if ext_type == _E.early_data:
            return b"" if self._early_data_offered else None
        if ext_type == _E.cookie:
            return None if self._cookie is None else ext.encode_cookie(self._cookie)
        if ext_type == _E.quic_transport_parameters:
            return self.transport_parameters
        return None

    # --- ServerHello / HelloRetryRequest -------------------------------------------------

    def on_server_hello(self, message: bytes) -> None:
        hello = m.parse_server_hello(message[4:])
        if hello.supported_version is None:
            raise AlertError(AlertDescription.protocol_version, "server does not speak TLS 1.3")
        if hello.supported_version != TLS13 or hello.legacy_version != m.LEGACY_VERSION:
            raise _illegal("ServerHello selected a version we did not offer")
        if hello.legacy_session_id_echo != b"":
            raise _illegal("ServerHello echoes a session id we did not send")
        if hello.legacy_compression_method != 0:
            raise _illegal("ServerHello selected a compression method")
        if hello.cipher_suite not in self._offered_suites:
            raise _illegal("ServerHello selected a cipher suite we did not offer")
        suite = CipherSuite(hello.cipher_suite)
        allowed = _HRR_EXTENSIONS if hello.is_hello_retry_request else _SERVER_HELLO_EXTENSIONS
        for ext_type, _ in hello.extensions:
            if ext_type not in allowed:
                if ext_type in self._offered_extensions:
                    raise _illegal(f"extension {ext_type:#06x} is not allowed here")
                raise AlertError(
                    AlertDescription.unsupported_extension,
                    f"extension {ext_type:#06x} was not offered",
                )
        if hello.is_hello_retry_request:
            self._on_hello_retry_request(message, hello, suite)
            return
        if self._hello_retry_suite is not None and suite != self._hello_retry_suite:
            raise _illegal("ServerHello suite differs from the HelloRetryRequest's")
        if hello.key_share is None:
            raise AlertError(AlertDescription.missing_extension, "ServerHello has no key_share")
        group, server_share = hello.key_share
        share = next((s for s in self._shares if s.group == group), None)
        if share is None:
            raise _illegal("ServerHello key_share is for a group we did not share")
        psk: bytes | None = None
        if hello.pre_shared_key is not None:
            ticket = self._ticket
            if ticket is None or hello.pre_shared_key != 0:
                raise _illegal("ServerHello selected a PSK we did not offer")
            if hash_name(suite) != hash_name(ticket.cipher_suite):
                raise _illegal("ServerHello suite does not match the PSK's hash")
            psk = ticket.psk
            self.session_resumed = True
        self.suite = suite
        self.group = group
        self.transcript.set_hash(hash_name(suite))
        self.transcript.add(message)
        self.schedule = KeySchedule(suite, psk)
        self.ks.set_shared_secret(share.exchange(server_share))
        self._shares = []
        self.derive_handshake_secrets()
        self.install(Epoch.HANDSHAKE, True, suite, self.client_handshake_secret)
        self.install(Epoch.HANDSHAKE, False, suite, self.server_handshake_secret)
        self.state = State.CLIENT_WAIT_ENCRYPTED_EXTENSIONS

    def _on_hello_retry_request(
        self, message: bytes, hrr: m.ServerHello, suite: CipherSuite
    ) -> None:
        if self._hello_retry_suite is not None:
            raise AlertError(AlertDescription.unexpected_message, "second HelloRetryRequest")
        group = hrr.selected_group
        if group is None and hrr.cookie is None:
            raise _illegal("HelloRetryRequest would not change the ClientHello")
        if group is not None:
            supported = self.config.supported_groups
            if group not in supported or group not in SUPPORTED_GROUPS:
                raise _illegal("HelloRetryRequest selected a group we do not support")
            if any(share.group == group for share in self._shares):
                raise _illegal("HelloRetryRequest selected a group we already shared")
            self._shares = [
                ClientKeyShare(group, self.config.random_bytes, self.config.private_key_for(group))
            ]
            self._hello_retry_group = group
        self._hello_retry_suite = suite
        self._cookie = hrr.cookie
        self._early_data_offered = False
        if self._ticket is not None and hash_name(self._ticket.cipher_suite) != hash_name(suite):
            self._ticket = None  # the PSK cannot be used with this suite's hash
        self.transcript.restart_for_hello_retry(hash_name(suite))
        self.transcript.add(message)
        hello = self._client_hello()
        self.transcript.add(hello)
        self.send(Epoch.INITIAL, hello)

    # --- server's encrypted flight -------------------------------------------------------

    def on_encrypted_extensions(self, message: bytes) -> None:
        ee = m.parse_encrypted_extensions(message[4:])
        for ext_type, _ in ee.extensions:
            if ext_type in _NOT_IN_ENCRYPTED_EXTENSIONS:
                raise _illegal(f"extension {ext_type:#06x} is not allowed in EncryptedExtensions")
            if ext_type not in self._offered_extensions:
                raise AlertError(
                    AlertDescription.unsupported_extension,
                    f"extension {ext_type:#06x} was not offered",
                )
        if ee.alpn_protocol is None:
            raise AlertError(AlertDescription.no_application_protocol, "server selected no ALPN")
        offered = [p.encode() for p in self.config.alpn_protocols]
        if ee.alpn_protocol not in offered:
            raise AlertError(
                AlertDescription.no_application_protocol, "server selected an ALPN we did not offer"
            )
        self.alpn_protocol = ee.alpn_protocol.decode()
        if ee.transport_parameters is None:
            raise AlertError(
                AlertDescription.missing_extension, "server sent no quic_transport_parameters"
            )
        self.peer_transport_parameters = ee.transport_parameters
        if ee.early_data:
            ticket = self._ticket
            if not self.session_resumed or ticket is None:
                raise _illegal("server accepted early data without the PSK")
            if ticket.alpn != self.alpn_protocol:
                raise _illegal("server accepted early data with another ALPN")
            self.early_data_accepted = True
        self.transcript.add(message)
        self.state = (
            State.CLIENT_WAIT_FINISHED
            if self.session_resumed
            else State.CLIENT_WAIT_CERTIFICATE_OR_REQUEST
        )

    def on_certificate_request(self, message: bytes) -> None:
        request = m.parse_certificate_request(message[4:])
        if request.request_context:
            raise _illegal("CertificateRequest context must be empty during the handshake")
        if request.signature_algorithms is None:
            raise AlertError(
                AlertDescription.missing_extension, "CertificateRequest has no signature_algorithms"
            )
        self._certificate_request = request
        self.transcript.add(message)
        self.state = State.CLIENT_WAIT_CERTIFICATE

    def on_certificate(self, message: bytes) -> None:
        certificate = m.parse_certificate(message[4:])
        if certificate.request_context:
            raise _illegal("server Certificate has a request context")
        if not certificate.entries:
            raise AlertError(AlertDescription.decode_error, "server sent no certificate")
        self.peer_certificate_chain = tuple(
            parse_certificate(der) for der, _ in certificate.entries
        )
        self.transcript.add(message)
        self.state = State.CLIENT_WAIT_CERTIFICATE_VERIFY

    def on_certificate_verify(self, message: bytes) -> None:
        self.check_certificate_verify(
            message, self._signature_algorithms or self.config.signature_algorithms
        )
        self.state = State.CLIENT_WAIT_FINISHED

    def on_finished(self, message: bytes) -> None:
        suite = self.suite
        assert suite is not None
        self.check_finished(message, self.server_handshake_secret)
        self.derive_application_secrets()
        self.install(Epoch.ONE_RTT, False, suite, self.server_application_secret)
        flight = self._client_authentication() if self._certificate_request else b""
        finished = m.encode_finished(
            self.ks.verify_data(self.client_handshake_secret, self.transcript.digest())
        )
        self.transcript.add(finished)
        self.send(Epoch.HANDSHAKE, flight + finished)
        self.install(Epoch.ONE_RTT, True, suite, self.client_application_secret)
        self.resumption_secret = self.ks.resumption_master_secret(self.transcript.digest())
        self.state = State.CLIENT_CONNECTED
        self.complete()

    def _client_authentication(self) -> bytes:
        """Certificate (+ CertificateVerify) answering a CertificateRequest (RFC 8446 §4.4.2)."""
        request = self._certificate_request
        assert request is not None and request.signature_algorithms is not None
        cfg = self.config
        key = cfg.private_key
        scheme = None
        if key is not None:
            try:
                scheme = choose_signature_scheme(key, request.signature_algorithms)
            except AlertError:
                scheme = None  # nothing we can sign: answer with an empty Certificate
        # the request context is empty during the handshake (checked in on_certificate_request)
        certificate = (cfg.certificate_message if scheme
                       else m.encode_certificate(request.request_context, []))
        self.transcript.add(certificate)
        if scheme is None or key is None:
            return certificate
        signature = sign_certificate_verify(key, scheme, self.transcript.digest(), is_server=False)
        verify = m.encode_certificate_verify(scheme, signature)
        self.transcript.add(verify)
        return certificate + verify

    # --- after the handshake -------------------------------------------------------------

    def on_new_session_ticket(self, message: bytes) -> None:
        ticket = m.parse_new_session_ticket(message[4:])
        if ticket.max_early_data_size is not None and ticket.max_early_data_size != 0xFFFFFFFF:
            raise _illegal("QUIC requires max_early_data_size 0xffffffff (RFC 9001 §4.6.1)")
        if ticket.ticket_lifetime > 604800:
            raise _illegal("ticket_lifetime over seven days")
        suite = self.suite
        assert suite is not None and self.alpn_protocol is not None
        cfg = self.config
        session_ticket = SessionTicket(
            ticket=ticket.ticket,
            psk=psk_from_resumption_secret(
                hash_name(suite), self.resumption_secret, ticket.ticket_nonce
            ),
            cipher_suite=suite,
            server_name=cfg.server_name or "",
            received_at=cfg.wall_clock().timestamp(),
            lifetime=ticket.ticket_lifetime,
            age_add=ticket.ticket_age_add,
            max_early_data_size=ticket.max_early_data_size or 0,
            alpn=self.alpn_protocol,
            peer_transport_parameters=self.peer_transport_parameters,
        )
        if cfg.ticket_store is not None:
            cfg.ticket_store.add(session_ticket)
        self.updates.append(SessionTicketReceived(ticket=session_ticket))


def _server_name_extension(server_name: str | None) -> bytes | None:
    """SNI for a host name; none for an IP literal (RFC 6066 §3)."""
    if not server_name:
        return None
    host = server_name_host(server_name)
    return ext.encode_server_name(host) if isinstance(host, str) else None


_U16: Final = struct.Struct("!H").pack
_TYPE_AND_LENGTH: Final = struct.Struct("!HH").pack
#: Extensions whose body changes from one connection to the next
_PER_CONNECTION: Final = frozenset(
    {_E.key_share, _E.early_data, _E.cookie, _E.quic_transport_parameters}
)


def _entry(ext_type: int, body: bytes) -> bytes | None:
    """One encoded extension (type, length, body); None when it does not fit the format."""
    if len(body) > 0xFFFF or not 0 <= ext_type <= 0xFFFF:
        return None
    return _TYPE_AND_LENGTH(ext_type, len(body)) + body


#: Plans by what they are made of, for configurations made per connection (bounded)
_PLANS: Final[dict[tuple[object, ...], _HelloPlan]] = {}


def _hello_plan(flow: ClientFlow) -> _HelloPlan:
    """The plan for ``flow``'s configuration: equal inputs share one plan."""
    cfg = flow.config
    key = (cfg.client_hello, cfg.cipher_suites, cfg.supported_groups,
           cfg.signature_algorithms, cfg.alpn_protocols, cfg.server_name)
    plan = _PLANS.get(key)
    if plan is None:
        plan = remember(_PLANS, key, _HelloPlan(flow), 64)
    return plan


class _HelloPlan:
    """A configuration's ClientHello without GREASE, as far as it is the same for every
    connection: the cipher suites, the constant extensions already encoded (type, length,
    body) and, in their places, the extension types to encode per connection.

    ``ClientFlow._client_hello`` fills it in; ``ClientFlow._client_hello_general`` is the
    reference it is tested against (tests/tls/test_fast_paths.py).  ``items`` is None when
    something does not fit the wire format: the general path then raises as it always did.
    """

    __slots__ = ("constant_types", "cookie_appended", "items", "middle", "offered_suites",
                 "signature_algorithms")

    def __init__(self, flow: ClientFlow) -> None:
        cfg = flow.config
        spec = cfg.client_hello
        suites = [int(s) for s in (
            spec.cipher_suites if spec.cipher_suites is not None else cfg.cipher_suites)
            if s != GREASE]
        self.offered_suites = tuple(s for s in suites if not is_grease(s))
        self.signature_algorithms: tuple[int, ...] | None = None
        self.cookie_appended = _E.cookie not in spec.extension_order
        self.constant_types: frozenset[int] = frozenset()
        self.items: tuple[bytes | int, ...] | None = None
        self.middle = b""
        if (len(suites) > 0x7FFF or not all(0 <= s <= 0xFFFF for s in suites)
                or len(spec.legacy_compression_methods) > 0xFF):
            return
        #: legacy_session_id (empty), cipher_suites and legacy_compression_methods
        self.middle = (b"\x00" + _U16(2 * len(suites)) + b"".join(_U16(s) for s in suites)
                       + bytes((len(spec.legacy_compression_methods),))
                       + spec.legacy_compression_methods)
        extras = dict(spec.extra_extensions)
        items: list[bytes | int] = []
        types: set[int] = set()
        for slot in spec.extension_order:
            if slot == GREASE or slot == _E.pre_shared_key:
                continue
            if slot in extras:
                body: bytes | None = extras.pop(slot)
            elif slot in _PER_CONNECTION:
                items.append(int(slot))
                continue
            else:
                body = flow._extension_body(slot)
                if slot == _E.signature_algorithms:
                    self.signature_algorithms = flow._signature_algorithms
            if body is not None:
                entry = _entry(slot, body)
                if entry is None:
                    return
                items.append(entry)
                types.add(slot)
        for ext_type, body in extras.items():
            entry = _entry(ext_type, body)
            if entry is None:
                return
            items.append(entry)
            types.add(ext_type)
        self.items = tuple(items)
        self.constant_types = frozenset(types)
