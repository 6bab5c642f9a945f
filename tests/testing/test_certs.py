"""The test certificate factory: its output must satisfy verifiers nobody here wrote.

``cryptography.x509.verification`` (web-PKI rules) and aioquic's ``verify_certificate``
(pyOpenSSL + service_identity) are the judges.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import pytest
from aioquic import tls as aioquic_tls
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

import trio_zttp.testing
from trio_zttp.testing import CertificateAuthority, IssuedCertificate, KeyType, self_signed_leaf

NOW = datetime.datetime.now(datetime.UTC)
LEAF_KEYS = ["ecdsa-p256", "ecdsa-p384", "rsa-2048", "ed25519"]


@pytest.fixture(scope="module", params=["ecdsa-p256", "rsa-2048"])
def ca(request: pytest.FixtureRequest) -> CertificateAuthority:
    return CertificateAuthority.create(key_type=request.param)


@pytest.fixture(scope="module")
def ec_ca() -> CertificateAuthority:
    return CertificateAuthority.create()


def verify_server(
    issued: IssuedCertificate,
    roots: list[x509.Certificate],
    name: str,
    at: datetime.datetime = NOW,
) -> list[x509.Certificate]:
    subject: x509.DNSName | x509.IPAddress
    try:
        subject = x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        subject = x509.DNSName(name)
    verifier = PolicyBuilder().store(Store(roots)).time(at).build_server_verifier(subject)
    return verifier.verify(issued.certificate, list(issued.chain[1:]))


@pytest.mark.parametrize("leaf_key", LEAF_KEYS)
@pytest.mark.parametrize("name", ["localhost", "127.0.0.1", "::1"])
def test_certs_leaf_verifies_with_cryptography(
    ca: CertificateAuthority, leaf_key: str, name: str
) -> None:
    issued = ca.issue(["localhost", "127.0.0.1", "::1"], key_type=leaf_key)
    path = verify_server(issued, [ca.certificate], name)
    assert path == [issued.certificate, ca.certificate]


@pytest.mark.parametrize("leaf_key", LEAF_KEYS)
def test_certs_leaf_verifies_with_aioquic(ca: CertificateAuthority, leaf_key: str) -> None:
    issued = ca.issue(key_type=leaf_key)
    for name in ["localhost", "127.0.0.1", "::1"]:
        aioquic_tls.verify_certificate(
            issued.certificate, list(issued.chain[1:]), server_name=name, cadata=ca.pem
        )
    with pytest.raises(aioquic_tls.AlertBadCertificate):
        aioquic_tls.verify_certificate(
            issued.certificate, [], server_name="example.com", cadata=ca.pem
        )


def test_certs_leaf_key_types_match_request(ec_ca: CertificateAuthority) -> None:
    expected = {
        KeyType.ECDSA_P256: (ec.EllipticCurvePrivateKey, 256),
        KeyType.ECDSA_P384: (ec.EllipticCurvePrivateKey, 384),
        KeyType.RSA_2048: (rsa.RSAPrivateKey, 2048),
    }
    for key_type, (cls, size) in expected.items():
        key = ec_ca.issue(key_type=key_type).private_key
        assert isinstance(key, cls)
        assert not isinstance(key, ed25519.Ed25519PrivateKey)
        assert key.key_size == size
    issued = ec_ca.issue(key_type=KeyType.ED25519)
    assert isinstance(issued.private_key, ed25519.Ed25519PrivateKey)
    assert issued.certificate.public_key() == issued.private_key.public_key()


def test_certs_san_holds_dns_and_ip_entries(ec_ca: CertificateAuthority) -> None:
    issued = ec_ca.issue(["example.test", "10.1.2.3", "2001:db8::7"])
    san = issued.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["example.test"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.1.2.3"),
        ipaddress.ip_address("2001:db8::7"),
    ]
    with pytest.raises(VerificationError):
        verify_server(issued, [ec_ca.certificate], "localhost")


def test_certs_explicit_dates_are_used() -> None:
    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    end = datetime.datetime(2020, 2, 1, tzinfo=datetime.UTC)
    ec_ca = CertificateAuthority.create(not_before=start - datetime.timedelta(days=1))
    assert ec_ca.certificate.not_valid_before_utc == start - datetime.timedelta(days=1)
    issued = ec_ca.issue(not_before=start, not_after=end)
    assert issued.certificate.not_valid_before_utc == start
    assert issued.certificate.not_valid_after_utc == end
    with pytest.raises(VerificationError, match="not valid at validation time"):
        verify_server(issued, [ec_ca.certificate], "localhost")
    verify_server(issued, [ec_ca.certificate], "localhost", at=start + datetime.timedelta(days=3))


def test_certs_one_date_alone_makes_expired_or_future_cert(ec_ca: CertificateAuthority) -> None:
    expired = ec_ca.issue(not_after=NOW - datetime.timedelta(days=1))
    future = ec_ca.issue(not_before=NOW + datetime.timedelta(days=1))
    assert expired.certificate.not_valid_before_utc < expired.certificate.not_valid_after_utc
    assert future.certificate.not_valid_after_utc > future.certificate.not_valid_before_utc
    for issued in (expired, future):
        with pytest.raises(VerificationError, match="not valid at validation time"):
            verify_server(issued, [ec_ca.certificate], "localhost")


def test_certs_default_validity_covers_now(ec_ca: CertificateAuthority) -> None:
    cert = ec_ca.issue().certificate
    assert cert.not_valid_before_utc < NOW < cert.not_valid_after_utc
    assert ec_ca.certificate.not_valid_before_utc < NOW < ec_ca.certificate.not_valid_after_utc


def test_certs_unrelated_ca_is_not_trusted(ec_ca: CertificateAuthority) -> None:
    other = CertificateAuthority.create(name="another CA")
    with pytest.raises(VerificationError):
        verify_server(ec_ca.issue(), [other.certificate], "localhost")


def test_certs_intermediate_chain_verifies(ca: CertificateAuthority) -> None:
    intermediate = ca.intermediate()
    issued = intermediate.issue(key_type="ed25519")
    assert issued.chain == (issued.certificate, intermediate.certificate)
    path = verify_server(issued, [ca.certificate], "localhost")
    assert path == [issued.certificate, intermediate.certificate, ca.certificate]
    aioquic_tls.verify_certificate(
        issued.certificate, list(issued.chain[1:]), server_name="localhost", cadata=ca.pem
    )
    # without the intermediate there is no path to the root
    leaf_only = IssuedCertificate(
        certificate=issued.certificate, private_key=issued.private_key, chain=(issued.certificate,)
    )
    with pytest.raises(VerificationError):
        verify_server(leaf_only, [ca.certificate], "localhost")


def test_certs_two_level_intermediates(ec_ca: CertificateAuthority) -> None:
    lower = ec_ca.intermediate().intermediate(key_type="rsa-2048", name="lower")
    issued = lower.issue()
    assert len(issued.chain) == 3
    assert len(verify_server(issued, [ec_ca.certificate], "::1")) == 4


def test_certs_ed25519_ca_is_refused() -> None:
    with pytest.raises(ValueError, match="Ed25519"):
        CertificateAuthority.create(key_type="ed25519")


def test_certs_unknown_key_type_is_refused() -> None:
    with pytest.raises(ValueError):
        CertificateAuthority.create(key_type="dsa-1024")


def test_certs_empty_names_refused(ec_ca: CertificateAuthority) -> None:
    with pytest.raises(ValueError):
        ec_ca.issue([])
    with pytest.raises(ValueError):
        self_signed_leaf([])


def test_certs_client_certificate_verifies_as_client_only(ec_ca: CertificateAuthority) -> None:
    client = ec_ca.issue(["alice.example"], client=True)
    eku = client.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    verified = (
        PolicyBuilder()
        .store(Store([ec_ca.certificate]))
        .time(NOW)
        .build_client_verifier()
        .verify(client.certificate, [])
    )
    assert verified.subjects == [x509.DNSName("alice.example")]
    with pytest.raises(VerificationError, match="EKU"):
        verify_server(client, [ec_ca.certificate], "alice.example")
    server = ec_ca.issue()
    with pytest.raises(VerificationError, match="EKU"):
        PolicyBuilder().store(Store([ec_ca.certificate])).time(NOW).build_client_verifier().verify(
            server.certificate, []
        )


def test_certs_ca_extensions_follow_webpki(ec_ca: CertificateAuthority) -> None:
    ext = ec_ca.certificate.extensions
    basic = ext.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and basic.value.ca
    assert ext.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    ski = ext.get_extension_for_class(x509.SubjectKeyIdentifier).value
    leaf = ec_ca.issue().certificate.extensions
    aki = leaf.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert not leaf.get_extension_for_class(x509.BasicConstraints).value.ca


def test_certs_write_pem_round_trips(ec_ca: CertificateAuthority, tmp_path: Path) -> None:
    intermediate = ec_ca.intermediate()
    issued = intermediate.issue(key_type="rsa-2048")
    issued.write_pem(tmp_path / "cert.pem", tmp_path / "key.pem")
    ec_ca.write_pem(tmp_path / "ca.pem")
    chain = x509.load_pem_x509_certificates((tmp_path / "cert.pem").read_bytes())
    assert chain == [issued.certificate, intermediate.certificate]
    key = serialization.load_pem_private_key((tmp_path / "key.pem").read_bytes(), None)
    assert key.public_key() == issued.private_key.public_key()
    assert x509.load_pem_x509_certificates((tmp_path / "ca.pem").read_bytes()) == [
        ec_ca.certificate
    ]
    assert ec_ca.pem == (tmp_path / "ca.pem").read_bytes()


def test_certs_serial_numbers_are_distinct_and_positive(ec_ca: CertificateAuthority) -> None:
    serials = {ec_ca.issue().certificate.serial_number for _ in range(5)}
    assert len(serials) == 5
    assert all(0 < serial < 2**159 for serial in serials)


def test_certs_injected_randomness_sets_serials() -> None:
    ca = CertificateAuthority.create(random_bytes=lambda n: bytes(range(1, n + 1)))
    assert ca.certificate.serial_number == ca.issue().certificate.serial_number
    assert ca.certificate.serial_number == int.from_bytes(bytes(range(1, 9))) >> 1 | 1


def test_certs_self_signed_leaf_is_its_own_anchor() -> None:
    issued = self_signed_leaf(["localhost", "127.0.0.1"], key_type="ed25519")
    cert = issued.certificate
    assert cert.issuer == cert.subject
    assert issued.chain == (cert,)
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    cert.verify_directly_issued_by(cert)
    verify_server(issued, [cert], "127.0.0.1")


def test_certs_public_namespace_exports() -> None:
    for name in ["CertificateAuthority", "IssuedCertificate", "KeyType", "self_signed_leaf"]:
        assert name in trio_zttp.testing.__all__
        assert hasattr(trio_zttp.testing, name)
