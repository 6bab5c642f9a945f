"""Peer authentication: CertificateVerify signatures and certificate chains (RFC 8446 §4.4).

- Signature schemes (RFC 8446 §4.2.3): :class:`SignatureScheme`, :func:`schemes_for_key`,
  :func:`choose_signature_scheme`.
- CertificateVerify (RFC 8446 §4.4.3): :func:`certificate_verify_content`,
  :func:`sign_certificate_verify`, :func:`verify_certificate_verify`.
- Chains: :func:`verify_certificate_chain` with ``cryptography.x509.verification`` (web-PKI
  rules, hostname and IP checks) against a trust store from :func:`load_trust_store`.

Failures raise :class:`~trio_zttp._tls.alerts.AlertError` with the alert the peer should
see.  The only I/O here is reading CA files in :func:`load_trust_store`, which runs once per
configuration (its result is cached), never per handshake; time is always passed in.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import os
import warnings
from collections.abc import Container, Sequence
from typing import TYPE_CHECKING, Final, TypeAlias

import attrs
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
    PrivateKeyTypes,
)
from cryptography.x509.oid import PublicKeyAlgorithmOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from .._bounded import remember
from .alerts import AlertDescription, AlertError

if TYPE_CHECKING:
    import datetime


__all__ = [
    "DEFAULT_SIGNATURE_SCHEMES",
    "SYSTEM_CA_FILES",
    "SignatureScheme",
    "SigningKey",
    "certificate_verify_content",
    "choose_signature_scheme",
    "load_trust_store",
    "parse_certificate",
    "schemes_for_key",
    "server_name_host",
    "sign_certificate_verify",
    "verify_certificate_chain",
    "verify_certificate_verify",
]

SigningKey: TypeAlias = (
    ec.EllipticCurvePrivateKey
    | rsa.RSAPrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)
"""Private key types that can sign a TLS 1.3 CertificateVerify."""

_VerifyingKey: TypeAlias = (
    ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)


class SignatureScheme(enum.IntEnum):
    """TLS SignatureScheme code points (RFC 8446 §4.2.3).

    ``rsa_pkcs1_*``, ``*_sha1`` and (on the signing side) ``rsa_pss_pss_*`` are here so
    that peers' lists parse; they are never used for a CertificateVerify we sign.
    """

    rsa_pkcs1_sha256 = 0x0401
    rsa_pkcs1_sha384 = 0x0501
    rsa_pkcs1_sha512 = 0x0601
    ecdsa_secp256r1_sha256 = 0x0403
    ecdsa_secp384r1_sha384 = 0x0503
    ecdsa_secp521r1_sha512 = 0x0603
    rsa_pss_rsae_sha256 = 0x0804
    rsa_pss_rsae_sha384 = 0x0805
    rsa_pss_rsae_sha512 = 0x0806
    ed25519 = 0x0807
    ed448 = 0x0808
    rsa_pss_pss_sha256 = 0x0809
    rsa_pss_pss_sha384 = 0x080A
    rsa_pss_pss_sha512 = 0x080B
    rsa_pkcs1_sha1 = 0x0201
    ecdsa_sha1 = 0x0203


_S = SignatureScheme

DEFAULT_SIGNATURE_SCHEMES: Final[tuple[SignatureScheme, ...]] = (
    _S.ecdsa_secp256r1_sha256,
    _S.rsa_pss_rsae_sha256,
    _S.ed25519,
    _S.ecdsa_secp384r1_sha384,
    _S.rsa_pss_rsae_sha384,
    _S.rsa_pss_rsae_sha512,
    _S.ecdsa_secp521r1_sha512,
    _S.ed448,
    _S.rsa_pss_pss_sha256,
    _S.rsa_pss_pss_sha384,
    _S.rsa_pss_pss_sha512,
    # signatures inside certificates only (RFC 8446 §4.2.3); refused in CertificateVerify
    _S.rsa_pkcs1_sha256,
    _S.rsa_pkcs1_sha384,
    _S.rsa_pkcs1_sha512,
)
"""What to offer in ``signature_algorithms``, most preferred first."""

_ECDSA: Final[dict[SignatureScheme, tuple[str, hashes.HashAlgorithm]]] = {
    _S.ecdsa_secp256r1_sha256: ("secp256r1", hashes.SHA256()),
    _S.ecdsa_secp384r1_sha384: ("secp384r1", hashes.SHA384()),
    _S.ecdsa_secp521r1_sha512: ("secp521r1", hashes.SHA512()),
}
_RSA_PSS: Final[dict[SignatureScheme, hashes.HashAlgorithm]] = {
    _S.rsa_pss_rsae_sha256: hashes.SHA256(),
    _S.rsa_pss_rsae_sha384: hashes.SHA384(),
    _S.rsa_pss_rsae_sha512: hashes.SHA512(),
    _S.rsa_pss_pss_sha256: hashes.SHA256(),
    _S.rsa_pss_pss_sha384: hashes.SHA384(),
    _S.rsa_pss_pss_sha512: hashes.SHA512(),
}
_RSA_PSS_PSS: Final = frozenset(
    {_S.rsa_pss_pss_sha256, _S.rsa_pss_pss_sha384, _S.rsa_pss_pss_sha512}
)
_ECDSA_BY_CURVE: Final = {curve: scheme for scheme, (curve, _) in _ECDSA.items()}
_RSA_SCHEMES: Final = (_S.rsa_pss_rsae_sha256, _S.rsa_pss_rsae_sha384, _S.rsa_pss_rsae_sha512)
_ECDSA_SIGNATURES: Final = {scheme: ec.ECDSA(hash_) for scheme, (_, hash_) in _ECDSA.items()}
_PSS_PADDINGS: Final = {
    scheme: padding.PSS(mgf=padding.MGF1(hash_), salt_length=padding.PSS.DIGEST_LENGTH)
    for scheme, hash_ in _RSA_PSS.items()
}

_CONTENT_PREFIX: Final = b" " * 64
_SERVER_CONTEXT: Final = _CONTENT_PREFIX + b"TLS 1.3, server CertificateVerify\x00"
_CLIENT_CONTEXT: Final = _CONTENT_PREFIX + b"TLS 1.3, client CertificateVerify\x00"


def certificate_verify_content(transcript_hash: bytes, is_server: bool) -> bytes:
    """The bytes a CertificateVerify signs (RFC 8446 §4.4.3).

    Args:
        transcript_hash: Transcript-Hash(Handshake Context, Certificate).
        is_server: True for the server's CertificateVerify, False for the client's.
    """
    return (_SERVER_CONTEXT if is_server else _CLIENT_CONTEXT) + transcript_hash


def schemes_for_key(
    key: PrivateKeyTypes | CertificatePublicKeyTypes,
) -> tuple[SignatureScheme, ...]:
    """The CertificateVerify schemes a key can sign (private) or check (public), best first.

    ECDSA keys get the one scheme bound to their curve; RSA keys the ``rsa_pss_rsae`` family;
    unsupported keys (DSA, X25519, small RSA moduli...) an empty tuple.
    """
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        scheme = _ECDSA_BY_CURVE.get(key.curve.name)
        return () if scheme is None else (scheme,)
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        # PSS with salt = hash length needs emLen >= 2 * hLen + 2 (RFC 8017 §9.1.1)
        return tuple(
            scheme
            for scheme in _RSA_SCHEMES
            if (key.key_size + 7) // 8 >= 2 * _RSA_PSS[scheme].digest_size + 2
        )
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return (_S.ed25519,)
    if isinstance(key, ed448.Ed448PrivateKey | ed448.Ed448PublicKey):
        return (_S.ed448,)
    return ()


def choose_signature_scheme(
    private_key: PrivateKeyTypes, peer_schemes: Sequence[int]
) -> SignatureScheme:
    """Pick the scheme to sign our CertificateVerify with.

    The peer's ``signature_algorithms`` list is in its order of preference (RFC 8446
    §4.2.3), so the first entry our key can produce wins.

    Raises:
        AlertError: ``handshake_failure`` if the key supports none of ``peer_schemes``.
    """
    ours = schemes_for_key(private_key)
    for code in peer_schemes:
        if code in ours:
            return SignatureScheme(code)
    raise AlertError(
        AlertDescription.handshake_failure,
        "no signature scheme in common with the peer's signature_algorithms",
    )


def sign_certificate_verify(
    private_key: SigningKey, scheme: SignatureScheme, transcript_hash: bytes, is_server: bool
) -> bytes:
    """Sign a CertificateVerify (RFC 8446 §4.4.3).

    Args:
        private_key: our certificate's key.
        scheme: from :func:`choose_signature_scheme`.
        transcript_hash: Transcript-Hash(Handshake Context, Certificate).
        is_server: True when we are the server.

    Raises:
        ValueError: ``scheme`` does not fit ``private_key``.
    """
    if scheme not in schemes_for_key(private_key):
        raise ValueError(f"{scheme!r} cannot be signed with a {type(private_key).__name__}")
    content = certificate_verify_content(transcript_hash, is_server)
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return private_key.sign(content, _ECDSA_SIGNATURES[scheme])
    if isinstance(private_key, rsa.RSAPrivateKey):
        return private_key.sign(content, _PSS_PADDINGS[scheme], _RSA_PSS[scheme])
    return private_key.sign(content)


def verify_certificate_verify(
    certificate: x509.Certificate,
    scheme: int,
    signature: bytes,
    transcript_hash: bytes,
    is_server: bool,
    *,
    offered: Container[int] | None = None,
) -> None:
    """Check the peer's CertificateVerify against its leaf certificate (RFC 8446 §4.4.3).

    Args:
        certificate: the peer's leaf certificate.
        scheme: the SignatureScheme code from the message.
        signature: the signature from the message.
        transcript_hash: Transcript-Hash(Handshake Context, Certificate).
        is_server: True when the signature is the server's (we are the client).
        offered: the schemes we sent in ``signature_algorithms``; a scheme outside them is
            refused.

    Raises:
        AlertError: ``illegal_parameter`` if the scheme was not offered, is not allowed in
            a CertificateVerify (``rsa_pkcs1_*``, SHA-1) or does not match the certificate's
            key; ``unsupported_certificate``/``bad_certificate`` if the key cannot be read;
            ``decrypt_error`` if the signature is wrong.
    """
    if offered is not None and scheme not in offered:
        raise AlertError(
            AlertDescription.illegal_parameter, f"signature scheme {scheme:#06x} was not offered"
        )
    public_key = _public_key(certificate)
    if scheme in _RSA_PSS_PSS:
        # rsa_pss_pss needs an RSASSA-PSS key, rsa_pss_rsae an rsaEncryption one (§4.2.3)
        key_matches = certificate.public_key_algorithm_oid == PublicKeyAlgorithmOID.RSASSA_PSS
    else:
        key_matches = (
            certificate.public_key_algorithm_oid != PublicKeyAlgorithmOID.RSASSA_PSS
            and scheme in schemes_for_key(public_key)
        )
    if not key_matches or not isinstance(public_key, _VerifyingKey):
        raise AlertError(
            AlertDescription.illegal_parameter,
            f"signature scheme {scheme:#06x} does not fit the certificate's key",
        )
    content = certificate_verify_content(transcript_hash, is_server)
    scheme = SignatureScheme(scheme)
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, content, _ECDSA_SIGNATURES[scheme])
        elif isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, content, _PSS_PADDINGS[scheme], _RSA_PSS[scheme])
        else:
            public_key.verify(signature, content)
    except InvalidSignature:
        raise AlertError(
            AlertDescription.decrypt_error, "CertificateVerify signature is invalid"
        ) from None


def _public_key(certificate: x509.Certificate) -> CertificatePublicKeyTypes:
    try:
        return certificate.public_key()
    except UnsupportedAlgorithm:
        raise AlertError(
            AlertDescription.unsupported_certificate, "certificate has an unsupported key type"
        ) from None
    except ValueError:
        raise AlertError(
            AlertDescription.bad_certificate, "certificate has an invalid key"
        ) from None


#: Recently parsed certificates by DER: a server sends the same chain to every connection,
#: and a certificate object is immutable (bounded; the oldest entry goes first).
_PARSED: Final[dict[bytes, x509.Certificate]] = {}
_MAX_CACHED: Final = 64


def parse_certificate(der: bytes) -> x509.Certificate:
    """Parse one DER certificate from a Certificate message.

    Raises:
        AlertError: ``bad_certificate`` if it does not parse.
    """
    certificate = _PARSED.get(der)
    if certificate is not None:
        return certificate
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            certificate = x509.load_der_x509_certificate(der)
    except (ValueError, x509.InvalidVersion):
        raise AlertError(AlertDescription.bad_certificate, "certificate does not parse") from None
    remember(_PARSED, bytes(der), certificate, _MAX_CACHED)
    return certificate


# ---------------------------------------------------------------- trust store and chains

SYSTEM_CA_FILES: Final = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Arch, Gentoo
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL
    "/etc/ssl/ca-bundle.pem",  # openSUSE
    "/etc/ssl/cert.pem",  # Alpine, macOS, BSDs
)
"""Where the operating system's CA bundle may live; the first that exists is used."""

_PEM_END: Final = b"-----END CERTIFICATE-----"
_PEM_BEGIN: Final = b"-----BEGIN CERTIFICATE-----"


def _parse_pem_bundle(data: bytes, *, strict: bool) -> list[x509.Certificate]:
    # one block at a time: a few system roots have serial 0 and warn (NOTES.md); a bad
    # block in the system bundle is skipped, in a user's CA file it is an error
    certificates = []
    for block in data.split(_PEM_END):
        start = block.find(_PEM_BEGIN)
        if start < 0:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                certificates.append(x509.load_pem_x509_certificate(block[start:] + _PEM_END))
        except ValueError:
            if strict:
                raise
    return certificates


def _parse_cadata(data: bytes) -> list[x509.Certificate]:
    if _PEM_BEGIN in data:
        return _parse_pem_bundle(data, strict=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [x509.load_der_x509_certificate(data)]


@functools.lru_cache(maxsize=4)
def _system_certificates() -> tuple[x509.Certificate, ...]:
    for path in SYSTEM_CA_FILES:
        if os.path.isfile(path):
            with open(path, "rb") as f:
                return tuple(_parse_pem_bundle(f.read(), strict=False))
    return ()


@functools.lru_cache(maxsize=16)
def _load_trust_store(
    cafile: str | None, cadata: bytes | None, use_system_store: bool
) -> tuple[x509.Certificate, ...]:
    roots: list[x509.Certificate] = []
    if use_system_store:
        roots.extend(_system_certificates())
    if cafile is not None:
        with open(cafile, "rb") as f:
            from_file = _parse_cadata(f.read())
        if not from_file:
            raise ValueError(f"no certificates in {cafile!r}")
        roots.extend(from_file)
    if cadata is not None:
        roots.extend(_parse_cadata(cadata))
    return tuple(roots)


def load_trust_store(
    cafile: str | os.PathLike[str] | None = None,
    cadata: bytes | None = None,
    use_system_store: bool = False,
) -> list[x509.Certificate]:
    """Read the trusted roots once per configuration (cached by arguments).

    Args:
        cafile: path of a PEM bundle (or one DER certificate) of trusted roots.
        cadata: the same, in memory.
        use_system_store: add the operating system's roots (the first of
            :data:`SYSTEM_CA_FILES` that exists); unparseable system roots are skipped.

    Raises:
        OSError: ``cafile`` cannot be read.
        ValueError: ``cafile`` or ``cadata`` holds no or malformed certificates.
    """
    path = None if cafile is None else os.fspath(cafile)
    return list(_load_trust_store(path, cadata, use_system_store))


@attrs.frozen
class _Anchors:
    store: Store | None  # None when nothing is trusted (cryptography refuses empty stores)
    by_subject: dict[x509.Name, list[x509.Certificate]]


@functools.lru_cache(maxsize=16)
def _trust_anchors(cafile: str | None, cadata: bytes | None, use_system_store: bool) -> _Anchors:
    roots = _load_trust_store(cafile, cadata, use_system_store)
    by_subject: dict[x509.Name, list[x509.Certificate]] = {}
    for root in roots:
        by_subject.setdefault(root.subject, []).append(root)
    return _Anchors(Store(list(roots)) if roots else None, by_subject)


def _anchor_of(chain: Sequence[x509.Certificate], anchors: _Anchors) -> x509.Certificate | None:
    """A trusted root that issued (or is) one of ``chain``'s certificates, if any."""
    for cert in chain:
        for root in anchors.by_subject.get(cert.issuer, ()):
            if root == cert:
                return root
            try:
                cert.verify_directly_issued_by(root)
            except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
                continue
            return root
    return None


@functools.lru_cache(maxsize=256)  # a pure function of the name; each connection asks twice
def server_name_host(server_name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | str:
    """An IP literal (brackets allowed) as an address; else the DNS name in ASCII (A-labels),
    without a trailing dot.  The SNI sender and the certificate check read names alike.

    Raises:
        UnicodeError: a name IDNA cannot encode.
    """
    host = server_name[1:-1] if server_name.startswith("[") else server_name
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    host = host.rstrip(".")
    try:
        host.encode("ascii")
    except UnicodeEncodeError:
        host = host.encode("idna").decode("ascii")
    return host


def _subject(server_name: str) -> x509.DNSName | x509.IPAddress:
    try:
        host = server_name_host(server_name)
    except UnicodeError:
        raise AlertError(
            AlertDescription.bad_certificate, f"invalid server name {server_name!r}"
        ) from None
    return x509.DNSName(host) if isinstance(host, str) else x509.IPAddress(host)


def _leaf_subject(leaf: x509.Certificate) -> x509.DNSName | x509.IPAddress:
    # no server name to check: verify the chain for a name the leaf itself claims
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        raise AlertError(
            AlertDescription.bad_certificate, "certificate has no subjectAltName"
        ) from None
    for address in san.get_values_for_type(x509.IPAddress):
        return x509.IPAddress(address)
    for name in san.get_values_for_type(x509.DNSName):
        return x509.DNSName("x" + name[1:] if name.startswith("*.") else name)
    raise AlertError(AlertDescription.bad_certificate, "certificate names no host or address")


def _is_valid_at(cert: x509.Certificate, now: datetime.datetime) -> bool:
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now.tzinfo is None:  # naive: UTC by convention, as in cryptography
        start, end = start.replace(tzinfo=None), end.replace(tzinfo=None)
    return start <= now <= end


#: Chains that verified, by (server certificate?, server name, chain): the trust anchors they
#: verified against, the validity window of the whole path, the path.  A handshake that
#: brings the same certificates for the same name, against the same anchors and inside that
#: window, gets the same answer without running the path building and signature checks
#: again: the verifier is a pure function of these inputs and time enters only through the
#: certificates' validity periods (RFC 5280 §6.1.3).  The window is open at both ends, so a
#: time on a boundary is always verified afresh.
_VERIFIED: Final[dict[
    tuple[bool, str | None, tuple[x509.Certificate, ...]],
    tuple[_Anchors, datetime.datetime, datetime.datetime, tuple[x509.Certificate, ...]],
]] = {}


def verify_certificate_chain(
    chain: Sequence[x509.Certificate],
    *,
    server_name: str | None,
    now: datetime.datetime,
    cafile: str | os.PathLike[str] | None = None,
    cadata: bytes | None = None,
    use_system_store: bool = False,
    is_server_cert: bool = True,
) -> list[x509.Certificate]:
    """Verify the peer's certificate chain with ``cryptography.x509.verification``.

    Web-PKI rules apply (RFC 5280 path building, EKU ``serverAuth`` or ``clientAuth``,
    subjectAltName matching; no common-name fallback).

    Args:
        chain: the peer's certificates, leaf first, as sent in its Certificate message.
        server_name: the name the client connected to; an IP address (optionally in
            brackets) is matched against IP SANs, anything else against DNS SANs. ``None``
            verifies the chain without a name check. Ignored for client certificates.
        now: the wall-clock time to check validity at (naive means UTC).
        cafile: trusted roots, see :func:`load_trust_store` (read once and cached).
        cadata: trusted roots in memory.
        use_system_store: also trust the operating system's roots.
        is_server_cert: verify a server certificate (we are the client); False verifies a
            client certificate (we are the server).

    Returns:
        The verified path, leaf first, ending with the trusted root.

    Raises:
        AlertError: ``bad_certificate`` (empty server chain, name mismatch, malformed or
            unacceptable certificate), ``certificate_required`` (empty client chain),
            ``unknown_ca`` (no path to a trusted root), ``certificate_expired`` (a
            certificate on the path is expired or not yet valid).
    """
    if not chain:
        if is_server_cert:
            raise AlertError(AlertDescription.bad_certificate, "empty certificate chain")
        raise AlertError(AlertDescription.certificate_required, "client sent no certificate")
    anchors = _trust_anchors(
        None if cafile is None else os.fspath(cafile), cadata, use_system_store
    )
    if anchors.store is None:
        raise AlertError(AlertDescription.unknown_ca, "no trusted roots configured")
    key = (is_server_cert, server_name, tuple(chain))
    known = _VERIFIED.get(key)
    if known is not None and known[0] is anchors:
        start, end = known[1], known[2]
        if now.tzinfo is None:  # naive: UTC by convention, as in _is_valid_at
            start, end = start.replace(tzinfo=None), end.replace(tzinfo=None)
        if start < now < end:
            return list(known[3])
    leaf = chain[0]
    intermediates = list(chain[1:])
    builder = PolicyBuilder().store(anchors.store).time(now)
    try:
        if is_server_cert:
            subject = _leaf_subject(leaf) if server_name is None else _subject(server_name)
            path = builder.build_server_verifier(subject).verify(leaf, intermediates)
        else:
            path = builder.build_client_verifier().verify(leaf, intermediates).chain
    except (VerificationError, ValueError) as exc:
        error = exc
    else:
        remember(_VERIFIED, key, (
            anchors, max(cert.not_valid_before_utc for cert in path),
            min(cert.not_valid_after_utc for cert in path), tuple(path)), _MAX_CACHED)
        return path
    # cryptography reports one message; classify by checking the usual causes ourselves
    try:
        anchor = _anchor_of(chain, anchors)
        if anchor is None:
            raise AlertError(
                AlertDescription.unknown_ca, f"no path to a trusted root: {error}"
            ) from error
        if not all(_is_valid_at(cert, now) for cert in (*chain, anchor)):
            raise AlertError(
                AlertDescription.certificate_expired,
                f"certificate expired or not yet valid: {error}",
            ) from error
        raise AlertError(AlertDescription.bad_certificate, str(error)) from error
    finally:
        del error  # its traceback holds this frame: no cycle through it
