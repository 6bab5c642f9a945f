"""Certificate factory for tests: a CA and the leaves it issues.

The certificates follow the web-PKI profile that ``cryptography.x509.verification`` enforces
(and that aioquic, qh3 and ngtcp2 accept): the CA carries ``basicConstraints CA:TRUE``,
``keyUsage keyCertSign`` and a subject key identifier; each leaf carries a subjectAltName,
an authority key identifier, a subject key identifier and an extended key usage
(``serverAuth``, or ``clientAuth`` for client certificates).  Verifiers refuse a CA with an
Ed25519 key, so CAs are ECDSA or RSA; leaves may use any of the key types in
:class:`KeyType`.

This module is test tooling, not sans-IO core: its defaults read the wall clock and the OS
random source through :mod:`trio_zttp._defaults`.

Example::

    ca = CertificateAuthority.create()
    server = ca.issue(["localhost", "127.0.0.1", "::1"])
    server.write_pem("cert.pem", "key.pem")
    ca.write_pem("ca.pem")
"""

from __future__ import annotations

import datetime
import enum
import ipaddress
import os
from collections.abc import Callable, Sequence
from typing import TypeAlias, final

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .. import _defaults

__all__ = [
    "CertificateAuthority",
    "IssuedCertificate",
    "KeyType",
    "PrivateKey",
    "self_signed_leaf",
]

PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
"""The private key types this factory generates."""

_CLOCK_SKEW = datetime.timedelta(hours=1)
_LEAF_LIFETIME = datetime.timedelta(days=30)
_CA_LIFETIME = datetime.timedelta(days=3650)


class KeyType(enum.StrEnum):
    """Key algorithms for generated certificates (``str`` values are accepted too)."""

    ECDSA_P256 = "ecdsa-p256"
    ECDSA_P384 = "ecdsa-p384"
    RSA_2048 = "rsa-2048"
    ED25519 = "ed25519"


def _generate_key(key_type: KeyType) -> PrivateKey:
    if key_type is KeyType.ECDSA_P256:
        return ec.generate_private_key(ec.SECP256R1())
    if key_type is KeyType.ECDSA_P384:
        return ec.generate_private_key(ec.SECP384R1())
    if key_type is KeyType.RSA_2048:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ed25519.Ed25519PrivateKey.generate()


def _signing_hash(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384 | None:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def _serial_number(random_bytes: Callable[[int], bytes]) -> int:
    # RFC 5280 §4.1.2.2: positive, at most 20 octets; 63 random bits is plenty and never zero
    return (int.from_bytes(random_bytes(8), "big") >> 1) | 1


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _validity(
    not_before: datetime.datetime | None,
    not_after: datetime.datetime | None,
    lifetime: datetime.timedelta,
) -> tuple[datetime.datetime, datetime.datetime]:
    # a default end follows an explicit start (and vice versa), so an expired or
    # not-yet-valid certificate needs only the one date that makes it so
    if not_before is None and not_after is None:
        now = _defaults.wall_clock()
        return now - _CLOCK_SKEW, now + lifetime
    if not_before is None:
        assert not_after is not None
        now = _defaults.wall_clock()
        return min(now - _CLOCK_SKEW, not_after - lifetime), not_after
    if not_after is None:
        now = _defaults.wall_clock()
        return not_before, max(now + lifetime, not_before + lifetime)
    return not_before, not_after


def _write(path: str | os.PathLike[str], data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


@final
@attrs.frozen(kw_only=True)
class IssuedCertificate:
    """A leaf certificate, its private key, and the chain a peer should send."""

    certificate: x509.Certificate
    """The leaf certificate."""
    private_key: PrivateKey
    """The leaf's private key."""
    chain: tuple[x509.Certificate, ...]
    """Leaf first, then any intermediates; never the root (peers already trust it)."""

    @property
    def certificate_pem(self) -> bytes:
        """The whole chain as PEM, leaf first (what a server's ``certfile`` holds)."""
        return b"".join(_cert_pem(cert) for cert in self.chain)

    @property
    def private_key_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM."""
        return _key_pem(self.private_key)

    def write_pem(
        self, cert_path: str | os.PathLike[str], key_path: str | os.PathLike[str]
    ) -> None:
        """Write the chain (leaf first) to ``cert_path`` and the key to ``key_path``."""
        _write(cert_path, self.certificate_pem)
        _write(key_path, self.private_key_pem)


@final
@attrs.frozen(kw_only=True)
class CertificateAuthority:
    """A certificate authority that issues leaf (and intermediate) certificates.

    Build one with :meth:`create`; trust :attr:`certificate` (or :attr:`pem`) on the
    verifying side and hand an :class:`IssuedCertificate` from :meth:`issue` to the peer.
    """

    certificate: x509.Certificate
    """This CA's certificate."""
    private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    """This CA's signing key."""
    chain: tuple[x509.Certificate, ...] = ()
    """Intermediates between this CA and the root, this CA first; empty for a root."""
    random_bytes: Callable[[int], bytes] = _defaults.random_bytes
    """Source of serial numbers."""

    @classmethod
    def create(
        cls,
        *,
        key_type: KeyType | str = KeyType.ECDSA_P256,
        name: str = "trio_zttp test CA",
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
        random_bytes: Callable[[int], bytes] = _defaults.random_bytes,
    ) -> CertificateAuthority:
        """Create a self-signed root CA.

        Args:
            key_type: ECDSA or RSA; Ed25519 is refused because verifiers refuse such CAs.
            name: the CA's common name.
            not_before: start of validity (default: one hour ago).
            not_after: end of validity (default: ten years from now).
            random_bytes: source of serial numbers.

        Raises:
            ValueError: ``key_type`` is Ed25519.
        """
        key = _ca_key(KeyType(key_type))
        start, end = _validity(not_before, not_after, _CA_LIFETIME)
        subject = _common_name(name)
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        builder = (
            _builder(subject, key, start, end, random_bytes, ca=True)
            .issuer_name(subject)
            .add_extension(ski, critical=False)
        )
        certificate = builder.sign(key, _signing_hash(key))
        return cls(certificate=certificate, private_key=key, random_bytes=random_bytes)

    @property
    def pem(self) -> bytes:
        """This CA's certificate as PEM (what a verifier's ``cafile`` holds)."""
        return _cert_pem(self.certificate)

    def write_pem(self, path: str | os.PathLike[str]) -> None:
        """Write :attr:`pem` to ``path``."""
        _write(path, self.pem)

    def intermediate(
        self,
        *,
        key_type: KeyType | str = KeyType.ECDSA_P256,
        name: str = "trio_zttp test intermediate CA",
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
    ) -> CertificateAuthority:
        """Issue an intermediate CA; leaves it issues carry it in their chain.

        Args:
            key_type: ECDSA or RSA.
            name: the intermediate's common name.
            not_before: start of validity (default: one hour ago).
            not_after: end of validity (default: ten years from now).
        """
        key = _ca_key(KeyType(key_type))
        start, end = _validity(not_before, not_after, _CA_LIFETIME)
        subject = _common_name(name)
        builder = (
            _builder(subject, key, start, end, self.random_bytes, ca=True)
            .issuer_name(self.certificate.subject)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(self._authority_key_identifier(), critical=False)
        )
        certificate = builder.sign(self.private_key, _signing_hash(self.private_key))
        return CertificateAuthority(
            certificate=certificate,
            private_key=key,
            chain=(certificate, *self.chain),
            random_bytes=self.random_bytes,
        )

    def issue(
        self,
        names: Sequence[str] = ("localhost", "127.0.0.1", "::1"),
        *,
        key_type: KeyType | str = KeyType.ECDSA_P256,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
        client: bool = False,
    ) -> IssuedCertificate:
        """Issue a leaf certificate.

        Args:
            names: DNS names and IP addresses for the subjectAltName; the first is also the
                common name.
            key_type: the leaf's key algorithm.
            not_before: start of validity (default: one hour ago).
            not_after: end of validity (default: thirty days from now).
            client: issue a client certificate (``clientAuth``) instead of a server one.

        Raises:
            ValueError: ``names`` is empty.
        """
        if not names:
            raise ValueError("a leaf certificate needs at least one name")
        key = _generate_key(KeyType(key_type))
        start, end = _validity(not_before, not_after, _LEAF_LIFETIME)
        builder = _leaf_builder(names, key, start, end, client, self.random_bytes)
        builder = builder.issuer_name(self.certificate.subject).add_extension(
            self._authority_key_identifier(), critical=False
        )
        certificate = builder.sign(self.private_key, _signing_hash(self.private_key))
        return IssuedCertificate(
            certificate=certificate, private_key=key, chain=(certificate, *self.chain)
        )

    def _authority_key_identifier(self) -> x509.AuthorityKeyIdentifier:
        ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value)


def self_signed_leaf(
    names: Sequence[str] = ("localhost", "127.0.0.1", "::1"),
    *,
    key_type: KeyType | str = KeyType.ECDSA_P256,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> IssuedCertificate:
    """A one-off self-signed server certificate (``basicConstraints CA:FALSE``).

    Meant for peers that do not verify (a CLI's on-the-fly certificate).
    ``cryptography.x509.verification`` accepts it when the leaf itself is the trust anchor,
    but other verifiers may not: for tests prefer ``CertificateAuthority.create().issue()``
    and trust the CA.
    """
    if not names:
        raise ValueError("a leaf certificate needs at least one name")
    key = _generate_key(KeyType(key_type))
    start, end = _validity(not_before, not_after, _LEAF_LIFETIME)
    builder = _leaf_builder(names, key, start, end, False, _defaults.random_bytes)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = builder.issuer_name(_common_name(names[0])).add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
    )
    certificate = builder.sign(key, _signing_hash(key))
    return IssuedCertificate(certificate=certificate, private_key=key, chain=(certificate,))


def _ca_key(key_type: KeyType) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    key = _generate_key(key_type)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raise ValueError("verifiers refuse Ed25519 CAs; use an ECDSA or RSA key for a CA")
    return key


def _common_name(name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])


def _builder(
    subject: x509.Name,
    key: PrivateKey,
    start: datetime.datetime,
    end: datetime.datetime,
    random_bytes: Callable[[int], bytes],
    *,
    ca: bool,
) -> x509.CertificateBuilder:
    """What CA and leaf certificates share: subject, key, serial, validity, basic constraints
    and key usage (a CA signs certificates and CRLs, a leaf only handshakes)."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .public_key(key.public_key())
        .serial_number(_serial_number(random_bytes))
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )


def _leaf_builder(
    names: Sequence[str],
    key: PrivateKey,
    start: datetime.datetime,
    end: datetime.datetime,
    client: bool,
    random_bytes: Callable[[int], bytes],
) -> x509.CertificateBuilder:
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    return (
        _builder(_common_name(names[0]), key, start, end, random_bytes, ca=False)
        .add_extension(
            x509.SubjectAlternativeName([_general_name(name) for name in names]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
