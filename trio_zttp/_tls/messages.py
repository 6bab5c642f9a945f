"""TLS 1.3 handshake messages: structure, parse and serialise (RFC 8446 §4, the QUIC subset).

Messages travel in QUIC CRYPTO frames without TLS records (RFC 9001 §4), each as
``msg_type(1) || length(3) || body``.  ``parse_*`` functions take the *body* and raise only
:class:`AlertError`: ``decode_error`` for malformed bytes (truncation included, mapped from
:class:`BufferReadError` here, the parse boundary), ``illegal_parameter`` for well-formed but
forbidden content (duplicate extensions, ``pre_shared_key`` not last).  Semantic checks that
depend on the handshake state live in the client and server flows.

Extension bodies are decoded by :mod:`trio_zttp._tls.extensions`; unknown extensions are kept
raw in ``extensions`` (in wire order) and otherwise skipped, which is how GREASE is tolerated.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

import attrs

from .._bounded import remember
from .._buffer import BufferReadError, Reader, Writer
from . import extensions as ext
from .alerts import AlertDescription, AlertError
from .extensions import ExtensionType, OfferedPsks

__all__ = [
    "HELLO_RETRY_REQUEST_RANDOM",
    "Certificate",
    "CertificateRequest",
    "CertificateVerify",
    "ClientHello",
    "EncryptedExtensions",
    "HandshakeType",
    "NewSessionTicket",
    "ServerHello",
    "encode_certificate",
    "encode_certificate_request",
    "encode_certificate_verify",
    "encode_client_hello",
    "encode_encrypted_extensions",
    "encode_finished",
    "encode_message",
    "encode_new_session_ticket",
    "encode_server_hello",
    "parse_certificate",
    "parse_certificate_request",
    "parse_certificate_verify",
    "parse_client_hello",
    "parse_encrypted_extensions",
    "parse_finished",
    "parse_new_session_ticket",
    "parse_server_hello",
]

LEGACY_VERSION: Final = 0x0303

HELLO_RETRY_REQUEST_RANDOM: Final = bytes.fromhex(
    "CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C"
)
"""The ServerHello.random that marks a HelloRetryRequest (RFC 8446 §4.1.3)."""


class HandshakeType(enum.IntEnum):
    """Handshake message types (RFC 8446 §4)."""

    client_hello = 1
    server_hello = 2
    new_session_ticket = 4
    end_of_early_data = 5
    encrypted_extensions = 8
    certificate = 11
    certificate_request = 13
    certificate_verify = 15
    finished = 20
    key_update = 24
    message_hash = 254


Extensions = tuple[tuple[int, bytes], ...]
_T = TypeVar("_T")


def encode_message(msg_type: int, body: bytes) -> bytes:
    """``msg_type || uint24 length || body``."""
    if len(body) >= 1 << 24:
        raise ValueError("handshake message too long")
    return bytes((msg_type,)) + len(body).to_bytes(3, "big") + body


def _parse(what: str, body: bytes, parser: Callable[[Reader], _T]) -> _T:
    reader = Reader(body)
    try:
        result = parser(reader)
    except BufferReadError:
        raise AlertError(AlertDescription.decode_error, f"truncated {what}") from None
    if not reader.eof():
        raise AlertError(AlertDescription.decode_error, f"trailing bytes after {what}")
    return result


def _pull_extensions(r: Reader, *, psk_last: bool = False) -> Extensions:
    # one bound check per field straight on the bytes: every hello and EncryptedExtensions
    # goes through here (the checks and their order are those of pull_uint16 and
    # pull_uint16_bytes on a sub-reader)
    size = r.pull_uint16()
    data = r.data
    pos = r.position
    end = pos + size
    r.skip(size)
    out: list[tuple[int, bytes]] = []
    seen: set[int] = set()
    psk = ExtensionType.pre_shared_key
    while pos < end:
        if psk_last and psk in seen:
            raise AlertError(AlertDescription.illegal_parameter, "pre_shared_key is not last")
        if pos + 4 <= end:  # type and length in one read
            ext_type, length = _TYPE_AND_LENGTH(data, pos)
        elif pos + 2 > end:
            raise BufferReadError("truncated extension type")
        else:
            ext_type, length = (data[pos] << 8) | data[pos + 1], -1
        if ext_type in seen:
            raise AlertError(
                AlertDescription.illegal_parameter, f"duplicate extension {ext_type:#06x}"
            )
        seen.add(ext_type)
        if length < 0:
            raise BufferReadError("truncated extension length")
        stop = pos + 4 + length
        if stop > end:
            raise BufferReadError("truncated extension body")
        out.append((ext_type, bytes(data[pos + 4 : stop])))
        pos = stop
    return tuple(out)


_TYPE_AND_LENGTH: Final = struct.Struct("!HH").unpack_from


def _push_extensions(w: Writer, extensions: Sequence[tuple[int, bytes]]) -> None:
    w.push_uint16(sum(4 + len(body) for _, body in extensions))
    for ext_type, body in extensions:
        w.push_uint16(ext_type)
        w.push_uint16_bytes(body)


def _hello_head(random: bytes, legacy_session_id: bytes) -> Writer:
    """A Writer holding what both hellos open with: legacy_version, random, legacy_session_id."""
    w = Writer()
    w.push_uint16(LEGACY_VERSION)
    w.push_bytes(random)
    w.push_uint8_bytes(legacy_session_id)
    return w


def _pull_hello_head(r: Reader) -> tuple[int, bytes, bytes]:
    """Both hellos' ``legacy_version``, ``random`` and ``legacy_session_id`` (RFC 8446 §4.1.2)."""
    legacy_version = r.pull_uint16()
    random = r.pull_bytes(32)
    session_id = r.pull_uint8_bytes()
    if len(session_id) > 32:
        raise AlertError(AlertDescription.decode_error, "legacy_session_id too long")
    return legacy_version, random, session_id


def _find(extensions: Extensions, ext_type: int) -> bytes | None:
    for t, body in extensions:
        if t == ext_type:
            return body
    return None


def _empty(body: bytes | None, what: str) -> bool:
    if body is None:
        return False
    if body:
        raise AlertError(AlertDescription.decode_error, f"{what} must be empty")
    return True


# --- ClientHello (§4.1.2) ------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ClientHello:
    """A parsed ClientHello; extension fields are None when the extension is absent."""

    legacy_version: int
    random: bytes
    legacy_session_id: bytes
    cipher_suites: tuple[int, ...]
    legacy_compression_methods: bytes
    extensions: Extensions
    """Every extension, raw, in wire order (GREASE and unknown ones included)."""
    server_name: str | None = None
    supported_groups: tuple[int, ...] | None = None
    signature_algorithms: tuple[int, ...] | None = None
    signature_algorithms_cert: tuple[int, ...] | None = None
    alpn_protocols: tuple[bytes, ...] | None = None
    supported_versions: tuple[int, ...] | None = None
    key_shares: tuple[tuple[int, bytes], ...] | None = None
    psk_key_exchange_modes: tuple[int, ...] | None = None
    pre_shared_key: OfferedPsks | None = None
    early_data: bool = False
    cookie: bytes | None = None
    transport_parameters: bytes | None = None


def encode_client_hello(
    *,
    random: bytes,
    cipher_suites: Sequence[int],
    extensions: Sequence[tuple[int, bytes]],
    legacy_session_id: bytes = b"",
    legacy_compression_methods: bytes = b"\x00",
) -> bytes:
    """A whole ClientHello message (header included), extensions in the given order."""
    w = _hello_head(random, legacy_session_id)
    w.push_uint16(2 * len(cipher_suites))
    for suite in cipher_suites:
        w.push_uint16(suite)
    w.push_uint8_bytes(legacy_compression_methods)
    _push_extensions(w, extensions)
    return encode_message(HandshakeType.client_hello, w.getvalue())


def parse_client_hello(body: bytes) -> ClientHello:
    """Parse a ClientHello body and decode the extensions this engine understands."""

    def pull(r: Reader) -> ClientHello:
        legacy_version, random, session_id = _pull_hello_head(r)
        cipher_suites = ext.unpack_u16s(r.sub_reader(r.pull_uint16()), "cipher_suites")
        compression = r.pull_uint8_bytes()
        if not compression:
            raise AlertError(AlertDescription.decode_error, "empty compression methods")
        extensions = _pull_extensions(r, psk_last=True)
        return _client_hello(
            legacy_version, random, session_id, cipher_suites, compression, extensions
        )

    return _parse("ClientHello", body, pull)


def _client_hello(
    legacy_version: int,
    random: bytes,
    session_id: bytes,
    cipher_suites: tuple[int, ...],
    compression: bytes,
    extensions: Extensions,
) -> ClientHello:
    found = dict(extensions)  # no duplicates: _pull_extensions refused them
    get = found.get
    E = ExtensionType
    return ClientHello(
        legacy_version=legacy_version,
        random=random,
        legacy_session_id=session_id,
        cipher_suites=cipher_suites,
        legacy_compression_methods=compression,
        extensions=extensions,
        server_name=_decoded(E.server_name, get(E.server_name)),
        supported_groups=_decoded(E.supported_groups, get(E.supported_groups)),
        signature_algorithms=_decoded(E.signature_algorithms, get(E.signature_algorithms)),
        signature_algorithms_cert=_decoded(
            E.signature_algorithms_cert, get(E.signature_algorithms_cert)
        ),
        alpn_protocols=_decoded(
            E.application_layer_protocol_negotiation,
            get(E.application_layer_protocol_negotiation),
        ),
        supported_versions=_decoded(E.supported_versions, get(E.supported_versions)),
        key_shares=_decode_or_none(get(E.key_share), ext.decode_key_share_client),
        psk_key_exchange_modes=_decoded(E.psk_key_exchange_modes, get(E.psk_key_exchange_modes)),
        pre_shared_key=_decode_or_none(get(E.pre_shared_key), ext.decode_pre_shared_key_client),
        early_data=_empty(get(E.early_data), "early_data"),
        cookie=_decode_or_none(get(E.cookie), ext.decode_cookie),
        transport_parameters=get(E.quic_transport_parameters),
    )


def _decode_or_none(body: bytes | None, decode: Callable[[bytes], _T]) -> _T | None:
    return None if body is None else decode(body)


#: The ClientHello extensions whose bodies a client sends alike on every connection, and
#: their decoders (pure functions of the body, returning immutable values)
_CONSTANT_DECODERS: Final[dict[int, Callable[[bytes], object]]] = {
    ExtensionType.server_name: ext.decode_server_name,
    ExtensionType.supported_groups: lambda body: ext.decode_u16_list(body, "supported_groups"),
    ExtensionType.signature_algorithms: (
        lambda body: ext.decode_u16_list(body, "signature_algorithms")),
    ExtensionType.signature_algorithms_cert: (
        lambda body: ext.decode_u16_list(body, "signature_algorithms_cert")),
    ExtensionType.application_layer_protocol_negotiation: ext.decode_alpn,
    ExtensionType.supported_versions: ext.decode_supported_versions_client,
    ExtensionType.psk_key_exchange_modes: ext.decode_psk_modes,
}
#: Recently decoded bodies of those extensions, by (type, body); bounded, oldest out first
_DECODED: Final[dict[tuple[int, bytes], Any]] = {}
_MAX_DECODED: Final = 256


def _decoded(ext_type: int, body: bytes | None) -> Any:
    """``decode(body)`` for one of :data:`_CONSTANT_DECODERS`, from the cache when the same
    body was decoded before (a decoding error is never cached: it is raised every time)."""
    if body is None:
        return None
    key = (ext_type, body)
    value = _DECODED.get(key, _DECODED)
    if value is _DECODED:
        value = _CONSTANT_DECODERS[ext_type](body)
        remember(_DECODED, key, value, _MAX_DECODED)
    return value


# --- ServerHello and HelloRetryRequest (§4.1.3, §4.1.4) ------------------------------------


@attrs.frozen(kw_only=True)
class ServerHello:
    """A parsed ServerHello or HelloRetryRequest (``is_hello_retry_request``)."""

    legacy_version: int
    random: bytes
    legacy_session_id_echo: bytes
    cipher_suite: int
    legacy_compression_method: int
    extensions: Extensions
    supported_version: int | None = None
    key_share: tuple[int, bytes] | None = None
    """ServerHello: the server's (group, key_exchange)."""
    selected_group: int | None = None
    """HelloRetryRequest: the group the client must share."""
    pre_shared_key: int | None = None
    cookie: bytes | None = None

    @property
    def is_hello_retry_request(self) -> bool:
        return self.random == HELLO_RETRY_REQUEST_RANDOM


def encode_server_hello(
    *,
    random: bytes,
    cipher_suite: int,
    extensions: Sequence[tuple[int, bytes]],
    legacy_session_id_echo: bytes = b"",
) -> bytes:
    """A whole ServerHello (or HelloRetryRequest, given its special random) message."""
    w = _hello_head(random, legacy_session_id_echo)
    w.push_uint16(cipher_suite)
    w.push_uint8(0)
    _push_extensions(w, extensions)
    return encode_message(HandshakeType.server_hello, w.getvalue())


def parse_server_hello(body: bytes) -> ServerHello:
    """Parse a ServerHello or HelloRetryRequest body."""

    def pull(r: Reader) -> ServerHello:
        legacy_version, random, session_id = _pull_hello_head(r)
        suite = r.pull_uint16()
        compression = r.pull_uint8()
        extensions = _pull_extensions(r)
        hrr = random == HELLO_RETRY_REQUEST_RANDOM
        E = ExtensionType
        found = dict(extensions)
        version = found.get(E.supported_versions)
        key_share = found.get(E.key_share)
        psk = found.get(E.pre_shared_key)
        cookie = found.get(E.cookie)
        return ServerHello(
            legacy_version=legacy_version,
            random=random,
            legacy_session_id_echo=session_id,
            cipher_suite=suite,
            legacy_compression_method=compression,
            extensions=extensions,
            supported_version=(
                None if version is None else ext.decode_supported_versions_server(version)
            ),
            key_share=(
                None if key_share is None or hrr else ext.decode_key_share_server(key_share)
            ),
            selected_group=(
                None if key_share is None or not hrr else ext.decode_key_share_hrr(key_share)
            ),
            pre_shared_key=None if psk is None else ext.decode_pre_shared_key_server(psk),
            cookie=None if cookie is None else ext.decode_cookie(cookie),
        )

    return _parse("ServerHello", body, pull)


# --- EncryptedExtensions (§4.3.1) ----------------------------------------------------------


@attrs.frozen(kw_only=True)
class EncryptedExtensions:
    extensions: Extensions
    alpn_protocol: bytes | None = None
    early_data: bool = False
    transport_parameters: bytes | None = None


def encode_encrypted_extensions(extensions: Sequence[tuple[int, bytes]]) -> bytes:
    w = Writer()
    _push_extensions(w, extensions)
    return encode_message(HandshakeType.encrypted_extensions, w.getvalue())


def parse_encrypted_extensions(body: bytes) -> EncryptedExtensions:
    def pull(r: Reader) -> EncryptedExtensions:
        extensions = _pull_extensions(r)
        found = dict(extensions)
        alpn: bytes | None = None
        alpn_body = found.get(ExtensionType.application_layer_protocol_negotiation)
        if alpn_body is not None:
            protocols = ext.decode_alpn(alpn_body)
            if len(protocols) != 1:
                raise AlertError(AlertDescription.decode_error, "server ALPN must name one")
            alpn = protocols[0]
        return EncryptedExtensions(
            extensions=extensions,
            alpn_protocol=alpn,
            early_data=_empty(found.get(ExtensionType.early_data), "early_data"),
            transport_parameters=found.get(ExtensionType.quic_transport_parameters),
        )

    return _parse("EncryptedExtensions", body, pull)


# --- Certificate (§4.4.2) ------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Certificate:
    request_context: bytes
    entries: tuple[tuple[bytes, bytes], ...]
    """(cert_data DER, raw extensions block contents) per CertificateEntry, leaf first."""


def encode_certificate(request_context: bytes, certificates: Sequence[bytes]) -> bytes:
    """A Certificate message of X.509 DER certificates (leaf first), no entry extensions."""
    w = Writer()
    w.push_uint8_bytes(request_context)
    w.push_uint24(sum(3 + len(der) + 2 for der in certificates))
    for der in certificates:
        w.push_uint24_bytes(der)
        w.push_uint16(0)
    return encode_message(HandshakeType.certificate, w.getvalue())


def parse_certificate(body: bytes) -> Certificate:
    def pull(r: Reader) -> Certificate:
        context = r.pull_uint8_bytes()
        block = r.sub_reader(r.pull_uint24())
        entries: list[tuple[bytes, bytes]] = []
        while not block.eof():
            der = block.pull_uint24_bytes()
            if not der:
                raise AlertError(AlertDescription.decode_error, "empty cert_data")
            entries.append((der, block.pull_uint16_bytes()))
        return Certificate(request_context=context, entries=tuple(entries))

    return _parse("Certificate", body, pull)


# --- CertificateRequest (§4.3.2) -----------------------------------------------------------


@attrs.frozen(kw_only=True)
class CertificateRequest:
    request_context: bytes
    extensions: Extensions
    signature_algorithms: tuple[int, ...] | None = None
    signature_algorithms_cert: tuple[int, ...] | None = None


def encode_certificate_request(
    request_context: bytes, extensions: Sequence[tuple[int, bytes]]
) -> bytes:
    w = Writer()
    w.push_uint8_bytes(request_context)
    _push_extensions(w, extensions)
    return encode_message(HandshakeType.certificate_request, w.getvalue())


def parse_certificate_request(body: bytes) -> CertificateRequest:
    def pull(r: Reader) -> CertificateRequest:
        context = r.pull_uint8_bytes()
        extensions = _pull_extensions(r)
        algs = _find(extensions, ExtensionType.signature_algorithms)
        cert_algs = _find(extensions, ExtensionType.signature_algorithms_cert)
        return CertificateRequest(
            request_context=context,
            extensions=extensions,
            signature_algorithms=(
                None if algs is None else ext.decode_u16_list(algs, "signature_algorithms")
            ),
            signature_algorithms_cert=(
                None
                if cert_algs is None
                else ext.decode_u16_list(cert_algs, "signature_algorithms_cert")
            ),
        )

    return _parse("CertificateRequest", body, pull)


# --- CertificateVerify (§4.4.3) ------------------------------------------------------------


@attrs.frozen(kw_only=True)
class CertificateVerify:
    algorithm: int
    signature: bytes


def encode_certificate_verify(algorithm: int, signature: bytes) -> bytes:
    w = Writer()
    w.push_uint16(algorithm)
    w.push_uint16_bytes(signature)
    return encode_message(HandshakeType.certificate_verify, w.getvalue())


def parse_certificate_verify(body: bytes) -> CertificateVerify:
    def pull(r: Reader) -> CertificateVerify:
        algorithm = r.pull_uint16()
        signature = r.pull_uint16_bytes()
        if not signature:
            raise AlertError(AlertDescription.decode_error, "empty signature")
        return CertificateVerify(algorithm=algorithm, signature=signature)

    return _parse("CertificateVerify", body, pull)


# --- Finished (§4.4.4) ---------------------------------------------------------------------


def encode_finished(verify_data: bytes) -> bytes:
    return encode_message(HandshakeType.finished, verify_data)


def parse_finished(body: bytes, hash_length: int) -> bytes:
    """The verify_data; a body of the wrong length is a decode_error."""
    if len(body) != hash_length:
        raise AlertError(AlertDescription.decode_error, "Finished has the wrong length")
    return body


# --- NewSessionTicket (§4.6.1) -------------------------------------------------------------


@attrs.frozen(kw_only=True)
class NewSessionTicket:
    ticket_lifetime: int
    ticket_age_add: int
    ticket_nonce: bytes
    ticket: bytes
    extensions: Extensions
    max_early_data_size: int | None = None


def encode_new_session_ticket(
    *,
    ticket_lifetime: int,
    ticket_age_add: int,
    ticket_nonce: bytes,
    ticket: bytes,
    max_early_data_size: int | None = None,
) -> bytes:
    w = Writer()
    w.push_uint32(ticket_lifetime)
    w.push_uint32(ticket_age_add)
    w.push_uint8_bytes(ticket_nonce)
    w.push_uint16_bytes(ticket)
    extensions: list[tuple[int, bytes]] = []
    if max_early_data_size is not None:
        extensions.append(
            (ExtensionType.early_data, ext.encode_early_data_max_size(max_early_data_size))
        )
    _push_extensions(w, extensions)
    return encode_message(HandshakeType.new_session_ticket, w.getvalue())


def parse_new_session_ticket(body: bytes) -> NewSessionTicket:
    def pull(r: Reader) -> NewSessionTicket:
        lifetime = r.pull_uint32()
        age_add = r.pull_uint32()
        nonce = r.pull_uint8_bytes()
        ticket = r.pull_uint16_bytes()
        if not ticket:
            raise AlertError(AlertDescription.decode_error, "empty ticket")
        extensions = _pull_extensions(r)
        early = _find(extensions, ExtensionType.early_data)
        return NewSessionTicket(
            ticket_lifetime=lifetime,
            ticket_age_add=age_add,
            ticket_nonce=nonce,
            ticket=ticket,
            extensions=extensions,
            max_early_data_size=None if early is None else ext.decode_early_data_max_size(early),
        )

    return _parse("NewSessionTicket", body, pull)
