"""CertificateVerify signatures and certificate-chain verification (RFC 8446 §4.2.3, §4.4)."""

from __future__ import annotations

import datetime
import ipaddress
import warnings
from pathlib import Path

import pytest
from aioquic import tls as aioquic_tls
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from trio_zttp._tls.alerts import AlertDescription, AlertError
from trio_zttp._tls.verify import (
    DEFAULT_SIGNATURE_SCHEMES,
    SYSTEM_CA_FILES,
    SignatureScheme,
    SigningKey,
    certificate_verify_content,
    choose_signature_scheme,
    load_trust_store,
    parse_certificate,
    schemes_for_key,
    server_name_host,
    sign_certificate_verify,
    verify_certificate_chain,
    verify_certificate_verify,
)
from trio_zttp.testing import CertificateAuthority, IssuedCertificate

NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)
S = SignatureScheme
HASH32 = bytes(range(32))


# ------------------------------------------------------------------ keys and certificates


def bare_certificate(key: SigningKey) -> x509.Certificate:
    """A minimal self-signed certificate around ``key`` (signatures only look at its key)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sig")])
    algorithm = (
        None
        if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey)
        else hashes.SHA256()
    )
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + DAY)
        .sign(key, algorithm)
    )


KEYS: dict[str, SigningKey] = {
    "p256": ec.generate_private_key(ec.SECP256R1()),
    "p384": ec.generate_private_key(ec.SECP384R1()),
    "p521": ec.generate_private_key(ec.SECP521R1()),
    "rsa2048": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "ed25519": ed25519.Ed25519PrivateKey.generate(),
    "ed448": ed448.Ed448PrivateKey.generate(),
}
CERTS = {name: bare_certificate(key) for name, key in KEYS.items()}
EXPECTED_SCHEMES = {
    "p256": (S.ecdsa_secp256r1_sha256,),
    "p384": (S.ecdsa_secp384r1_sha384,),
    "p521": (S.ecdsa_secp521r1_sha512,),
    "rsa2048": (S.rsa_pss_rsae_sha256, S.rsa_pss_rsae_sha384, S.rsa_pss_rsae_sha512),
    "ed25519": (S.ed25519,),
    "ed448": (S.ed448,),
}
KEY_SCHEME_PAIRS = [
    (name, scheme) for name, schemes in EXPECTED_SCHEMES.items() for scheme in schemes
]


def independent_content(transcript_hash: bytes, server: bool) -> bytes:
    # RFC 8446 §4.4.3, written out by hand
    context = "server" if server else "client"
    return (
        bytes([0x20] * 64)
        + f"TLS 1.3, {context} CertificateVerify".encode("ascii")
        + bytes([0])
        + transcript_hash
    )


def alert_of(call: object) -> AlertDescription:
    assert callable(call)
    with pytest.raises(AlertError) as info:
        call()
    return info.value.description


# ------------------------------------------------------------------ CertificateVerify


def test_verify_content_layout_matches_rfc8446() -> None:
    for server in (True, False):
        for digest in (HASH32, bytes(48)):
            content = certificate_verify_content(digest, server)
            assert content == independent_content(digest, server)
            assert len(content) == 64 + 33 + 1 + len(digest)


def test_verify_scheme_code_points() -> None:
    expected = {
        "ecdsa_secp256r1_sha256": 0x0403,
        "ecdsa_secp384r1_sha384": 0x0503,
        "rsa_pss_rsae_sha256": 0x0804,
        "rsa_pss_rsae_sha384": 0x0805,
        "rsa_pss_rsae_sha512": 0x0806,
        "ed25519": 0x0807,
        "rsa_pkcs1_sha256": 0x0401,
        "rsa_pss_pss_sha256": 0x0809,
    }
    for name, code in expected.items():
        assert SignatureScheme[name] == code
    # same registry as aioquic's enum
    for scheme in SignatureScheme:
        assert aioquic_tls.SignatureAlgorithm(int(scheme)).value == scheme


@pytest.mark.parametrize("name", list(KEYS))
def test_verify_schemes_for_key(name: str) -> None:
    assert schemes_for_key(KEYS[name]) == EXPECTED_SCHEMES[name]
    assert schemes_for_key(KEYS[name].public_key()) == EXPECTED_SCHEMES[name]


def test_verify_schemes_for_small_rsa_key_drop_sha512() -> None:
    # RSA-1024: 128-byte modulus < 2 * 64 + 2 needed by PSS-SHA512 with a 64-byte salt
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    assert schemes_for_key(small) == (S.rsa_pss_rsae_sha256, S.rsa_pss_rsae_sha384)


def test_verify_schemes_for_unsupported_key_is_empty() -> None:
    from cryptography.hazmat.primitives.asymmetric import x25519

    assert schemes_for_key(x25519.X25519PrivateKey.generate()) == ()
    assert schemes_for_key(ec.generate_private_key(ec.SECP256K1())) == ()


@pytest.mark.parametrize(("name", "scheme"), KEY_SCHEME_PAIRS)
@pytest.mark.parametrize("server", [True, False])
def test_verify_sign_verify_round_trip(name: str, scheme: SignatureScheme, server: bool) -> None:
    signature = sign_certificate_verify(KEYS[name], scheme, HASH32, server)
    verify_certificate_verify(CERTS[name], scheme, signature, HASH32, server)
    # the other side's context string does not verify
    with pytest.raises(AlertError) as info:
        verify_certificate_verify(CERTS[name], scheme, signature, HASH32, not server)
    assert info.value.description == AlertDescription.decrypt_error


@pytest.mark.parametrize(("name", "scheme"), KEY_SCHEME_PAIRS)
def test_verify_tampered_signature_is_decrypt_error(name: str, scheme: SignatureScheme) -> None:
    signature = bytearray(sign_certificate_verify(KEYS[name], scheme, HASH32, True))
    signature[len(signature) // 2] ^= 0x01
    assert (
        alert_of(
            lambda: verify_certificate_verify(CERTS[name], scheme, bytes(signature), HASH32, True)
        )
        == AlertDescription.decrypt_error
    )
    good = sign_certificate_verify(KEYS[name], scheme, HASH32, True)
    other_hash = bytes(31) + b"\x01"
    assert (
        alert_of(lambda: verify_certificate_verify(CERTS[name], scheme, good, other_hash, True))
        == AlertDescription.decrypt_error
    )
    assert (
        alert_of(lambda: verify_certificate_verify(CERTS[name], scheme, b"", HASH32, True))
        == AlertDescription.decrypt_error
    )


@given(transcript_hash=st.binary(min_size=32, max_size=48), server=st.booleans())
def test_verify_ecdsa_round_trip_any_transcript(transcript_hash: bytes, server: bool) -> None:
    signature = sign_certificate_verify(
        KEYS["p256"], S.ecdsa_secp256r1_sha256, transcript_hash, server
    )
    verify_certificate_verify(
        CERTS["p256"], S.ecdsa_secp256r1_sha256, signature, transcript_hash, server
    )


@pytest.mark.parametrize(
    ("name", "scheme"),
    [
        ("p384", S.ecdsa_secp256r1_sha256),  # ECDSA scheme binds the curve
        ("p256", S.ecdsa_secp384r1_sha384),
        ("p256", S.rsa_pss_rsae_sha256),
        ("rsa2048", S.ecdsa_secp256r1_sha256),
        ("rsa2048", S.ed25519),
        ("ed25519", S.ed448),
        ("ed448", S.ed25519),
        ("rsa2048", S.rsa_pss_pss_sha256),  # rsaEncryption key: rsae only
        ("rsa2048", S.rsa_pkcs1_sha256),  # PKCS#1 v1.5 never in CertificateVerify
        ("rsa2048", S.rsa_pkcs1_sha1),
        ("p256", S.ecdsa_sha1),
        ("p256", 0x1234),  # unknown code point
    ],
)
def test_verify_scheme_key_mismatch_is_illegal_parameter(name: str, scheme: int) -> None:
    # a real signature from the key with one of its own schemes, labelled with another
    signature = sign_certificate_verify(KEYS[name], EXPECTED_SCHEMES[name][0], HASH32, True)
    assert (
        alert_of(lambda: verify_certificate_verify(CERTS[name], scheme, signature, HASH32, True))
        == AlertDescription.illegal_parameter
    )


def test_verify_scheme_not_offered_is_illegal_parameter() -> None:
    signature = sign_certificate_verify(KEYS["ed25519"], S.ed25519, HASH32, False)
    offered = [S.ecdsa_secp256r1_sha256, S.rsa_pss_rsae_sha256]
    assert (
        alert_of(
            lambda: verify_certificate_verify(
                CERTS["ed25519"], S.ed25519, signature, HASH32, False, offered=offered
            )
        )
        == AlertDescription.illegal_parameter
    )
    verify_certificate_verify(
        CERTS["ed25519"], S.ed25519, signature, HASH32, False, offered=DEFAULT_SIGNATURE_SCHEMES
    )


def test_verify_sign_with_wrong_scheme_is_value_error() -> None:
    with pytest.raises(ValueError):
        sign_certificate_verify(KEYS["p256"], S.ecdsa_secp384r1_sha384, HASH32, True)
    with pytest.raises(ValueError):
        sign_certificate_verify(KEYS["rsa2048"], S.rsa_pkcs1_sha256, HASH32, True)


def aioquic_params(scheme: SignatureScheme) -> tuple[object, ...]:
    params: tuple[object, ...] = aioquic_tls.signature_algorithm_params(
        aioquic_tls.SignatureAlgorithm(int(scheme))
    )
    return params


@pytest.mark.parametrize(("name", "scheme"), KEY_SCHEME_PAIRS)
def test_verify_signature_interoperates_with_aioquic_parameters(
    name: str, scheme: SignatureScheme
) -> None:
    # ours -> checked with aioquic's padding/hash choice over hand-built content
    signature = sign_certificate_verify(KEYS[name], scheme, HASH32, True)
    public_key = KEYS[name].public_key()
    public_key.verify(signature, independent_content(HASH32, True), *aioquic_params(scheme))  # type: ignore[arg-type]
    # aioquic's parameters -> checked by ours
    theirs = KEYS[name].sign(independent_content(HASH32, False), *aioquic_params(scheme))  # type: ignore[arg-type]
    verify_certificate_verify(CERTS[name], scheme, theirs, HASH32, False)


def test_verify_rsa_pss_uses_digest_length_salt() -> None:
    signature = sign_certificate_verify(KEYS["rsa2048"], S.rsa_pss_rsae_sha384, HASH32, True)
    public_key = KEYS["rsa2048"].public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_key.verify(
        signature,
        independent_content(HASH32, True),
        padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48),
        hashes.SHA384(),
    )
    # a maximal-salt signature (cryptography's usual default) is refused
    private_key = KEYS["rsa2048"]
    assert isinstance(private_key, rsa.RSAPrivateKey)
    wrong = private_key.sign(
        independent_content(HASH32, True),
        padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=padding.PSS.MAX_LENGTH),
        hashes.SHA384(),
    )
    assert (
        alert_of(
            lambda: verify_certificate_verify(
                CERTS["rsa2048"], S.rsa_pss_rsae_sha384, wrong, HASH32, True
            )
        )
        == AlertDescription.decrypt_error
    )


def test_verify_choose_scheme_follows_peer_preference() -> None:
    rsa_key = KEYS["rsa2048"]
    peer = [S.ecdsa_secp256r1_sha256, S.rsa_pss_rsae_sha384, S.rsa_pss_rsae_sha256]
    assert choose_signature_scheme(rsa_key, peer) == S.rsa_pss_rsae_sha384
    assert choose_signature_scheme(KEYS["p256"], peer) == S.ecdsa_secp256r1_sha256
    assert choose_signature_scheme(KEYS["ed25519"], [0xFAFA, S.ed25519]) == S.ed25519
    assert isinstance(choose_signature_scheme(KEYS["ed25519"], [S.ed25519]), SignatureScheme)


@pytest.mark.parametrize(
    ("name", "peer"),
    [
        ("rsa2048", [S.rsa_pkcs1_sha256, S.rsa_pss_pss_sha256, S.ecdsa_secp256r1_sha256]),
        ("p384", [S.ecdsa_secp256r1_sha256, S.ecdsa_secp521r1_sha512]),
        ("ed25519", []),
    ],
)
def test_verify_choose_scheme_without_match_is_handshake_failure(
    name: str, peer: list[int]
) -> None:
    assert (
        alert_of(lambda: choose_signature_scheme(KEYS[name], peer))
        == AlertDescription.handshake_failure
    )


def test_verify_default_schemes_cover_every_signing_key() -> None:
    for name, key in KEYS.items():
        assert choose_signature_scheme(key, DEFAULT_SIGNATURE_SCHEMES) == EXPECTED_SCHEMES[name][0]
    assert len(set(DEFAULT_SIGNATURE_SCHEMES)) == len(DEFAULT_SIGNATURE_SCHEMES)


def test_verify_parse_certificate() -> None:
    der = CERTS["p256"].public_bytes(serialization.Encoding.DER)
    assert parse_certificate(der) == CERTS["p256"]
    assert alert_of(lambda: parse_certificate(der[:-1])) == AlertDescription.bad_certificate
    assert alert_of(lambda: parse_certificate(b"\x30\x00")) == AlertDescription.bad_certificate


# ------------------------------------------------------------------ chains


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create()


@pytest.fixture(scope="module")
def server(ca: CertificateAuthority) -> IssuedCertificate:
    return ca.issue(["localhost", "127.0.0.1", "::1"])


def verify(
    issued: IssuedCertificate,
    ca: CertificateAuthority,
    server_name: str | None = "localhost",
    now: datetime.datetime = NOW,
    is_server_cert: bool = True,
) -> list[x509.Certificate]:
    return verify_certificate_chain(
        list(issued.chain),
        server_name=server_name,
        cadata=ca.pem,
        now=now,
        is_server_cert=is_server_cert,
    )


def chain_alert(
    issued: IssuedCertificate,
    ca: CertificateAuthority,
    server_name: str | None = "localhost",
    now: datetime.datetime = NOW,
    is_server_cert: bool = True,
) -> AlertDescription:
    return alert_of(lambda: verify(issued, ca, server_name, now, is_server_cert))


@pytest.mark.parametrize(
    "name", ["localhost", "LOCALHOST", "localhost.", "127.0.0.1", "::1", "[::1]", None]
)
def test_verify_chain_valid_passes(
    ca: CertificateAuthority, server: IssuedCertificate, name: str | None
) -> None:
    assert verify(server, ca, name) == [server.certificate, ca.certificate]


@pytest.mark.parametrize("key_type", ["ecdsa-p384", "rsa-2048", "ed25519"])
def test_verify_chain_leaf_key_types(ca: CertificateAuthority, key_type: str) -> None:
    rsa_ca = CertificateAuthority.create(key_type="rsa-2048")
    for authority in (ca, rsa_ca):
        leaf = authority.issue(key_type=key_type)
        assert verify(leaf, authority)[0] == leaf.certificate


def test_verify_chain_with_intermediate(ca: CertificateAuthority) -> None:
    intermediate = ca.intermediate()
    leaf = intermediate.issue()
    assert verify(leaf, ca) == [leaf.certificate, intermediate.certificate, ca.certificate]
    leaf_only = IssuedCertificate(
        certificate=leaf.certificate, private_key=leaf.private_key, chain=(leaf.certificate,)
    )
    assert chain_alert(leaf_only, ca) == AlertDescription.unknown_ca


@pytest.mark.parametrize(
    ("not_before", "not_after"),
    [(None, NOW - DAY), (NOW + DAY, None), (NOW - 3 * DAY, NOW - 2 * DAY)],
)
def test_verify_chain_expired_or_future_leaf_is_certificate_expired(
    ca: CertificateAuthority,
    not_before: datetime.datetime | None,
    not_after: datetime.datetime | None,
) -> None:
    leaf = ca.issue(not_before=not_before, not_after=not_after)
    assert chain_alert(leaf, ca) == AlertDescription.certificate_expired
    assert chain_alert(leaf, ca, server_name=None) == AlertDescription.certificate_expired


def test_verify_chain_validity_follows_injected_now(
    ca: CertificateAuthority, server: IssuedCertificate
) -> None:
    later = server.certificate.not_valid_after_utc + DAY
    assert chain_alert(server, ca, now=later) == AlertDescription.certificate_expired
    # naive datetimes are UTC
    assert verify(server, ca, now=NOW.replace(tzinfo=None))[0] == server.certificate
    naive_later = later.replace(tzinfo=None)
    assert chain_alert(server, ca, now=naive_later) == AlertDescription.certificate_expired


def test_verify_chain_expired_intermediate_is_certificate_expired(
    ca: CertificateAuthority,
) -> None:
    intermediate = ca.intermediate(not_after=NOW - DAY)
    leaf = intermediate.issue(not_before=NOW - 3 * DAY)
    assert chain_alert(leaf, ca) == AlertDescription.certificate_expired


def test_verify_chain_expired_root_is_certificate_expired() -> None:
    old = CertificateAuthority.create(not_after=NOW - DAY)
    leaf = old.issue(not_before=NOW - 3 * DAY)
    assert chain_alert(leaf, old) == AlertDescription.certificate_expired


def test_verify_chain_unknown_ca(ca: CertificateAuthority, server: IssuedCertificate) -> None:
    stranger = CertificateAuthority.create(name="stranger")
    namesake = CertificateAuthority.create()  # same subject name, different key
    assert chain_alert(server, stranger) == AlertDescription.unknown_ca
    assert chain_alert(server, namesake) == AlertDescription.unknown_ca
    assert chain_alert(server, stranger, server_name=None) == AlertDescription.unknown_ca


@pytest.mark.parametrize(
    "name", ["example.com", "localhost.example", "127.0.0.2", "::2", "10.0.0.1"]
)
def test_verify_chain_wrong_name_is_bad_certificate(
    ca: CertificateAuthority, server: IssuedCertificate, name: str
) -> None:
    assert chain_alert(server, ca, name) == AlertDescription.bad_certificate


def test_verify_chain_ip_needs_ip_san(ca: CertificateAuthority) -> None:
    dns_only = ca.issue(["localhost"])
    assert chain_alert(dns_only, ca, "127.0.0.1") == AlertDescription.bad_certificate
    ip_only = ca.issue(["192.0.2.7", "2001:db8::1"])
    assert verify(ip_only, ca, "192.0.2.7")[0] == ip_only.certificate
    assert verify(ip_only, ca, "2001:db8:0::1")[0] == ip_only.certificate
    assert chain_alert(ip_only, ca, "192.0.2.8") == AlertDescription.bad_certificate
    # an address written as a DNS name in the SAN is not an IP SAN match
    assert chain_alert(ip_only, ca, "localhost") == AlertDescription.bad_certificate


def test_verify_chain_wildcard(ca: CertificateAuthority) -> None:
    wildcard = ca.issue(["*.example.test"])
    assert verify(wildcard, ca, "www.example.test")[0] == wildcard.certificate
    assert verify(wildcard, ca, None)[0] == wildcard.certificate
    for name in ["example.test", "a.b.example.test"]:
        assert chain_alert(wildcard, ca, name) == AlertDescription.bad_certificate


def test_verify_chain_empty(ca: CertificateAuthority) -> None:
    def empty(is_server_cert: bool) -> object:
        return verify_certificate_chain(
            [], server_name="localhost", cadata=ca.pem, now=NOW, is_server_cert=is_server_cert
        )

    assert alert_of(lambda: empty(True)) == AlertDescription.bad_certificate
    assert alert_of(lambda: empty(False)) == AlertDescription.certificate_required


def test_verify_chain_client_certificates(
    ca: CertificateAuthority, server: IssuedCertificate
) -> None:
    client = ca.issue(["alice.example"], client=True, key_type="ed25519")
    path = verify(client, ca, server_name=None, is_server_cert=False)
    assert path == [client.certificate, ca.certificate]
    # EKU decides the role
    assert chain_alert(client, ca, "alice.example") == AlertDescription.bad_certificate
    assert chain_alert(server, ca, None, is_server_cert=False) == AlertDescription.bad_certificate
    stranger = CertificateAuthority.create(name="stranger")
    assert chain_alert(client, stranger, None, is_server_cert=False) == AlertDescription.unknown_ca
    expired = ca.issue(["bob"], client=True, not_after=NOW - DAY)
    assert (
        chain_alert(expired, ca, None, is_server_cert=False) == AlertDescription.certificate_expired
    )


def test_verify_chain_self_signed_ca_as_leaf_is_refused(ca: CertificateAuthority) -> None:
    as_leaf = IssuedCertificate(
        certificate=ca.certificate, private_key=ca.private_key, chain=(ca.certificate,)
    )
    assert chain_alert(as_leaf, ca) == AlertDescription.bad_certificate


def test_verify_chain_agrees_with_aioquic(
    ca: CertificateAuthority, server: IssuedCertificate
) -> None:
    # aioquic's verifier (pyOpenSSL + service_identity) judges the same cases alike
    expired = ca.issue(not_after=NOW - DAY)
    cases = [
        (server, "localhost", None),
        (server, "::1", None),
        (server, "example.com", AlertDescription.bad_certificate),
        (server, "127.0.0.9", AlertDescription.bad_certificate),
        (expired, "localhost", AlertDescription.certificate_expired),
    ]
    for issued, name, expected in cases:
        try:
            aioquic_tls.verify_certificate(
                issued.certificate, list(issued.chain[1:]), server_name=name, cadata=ca.pem
            )
            theirs = None
        except aioquic_tls.Alert as exc:
            theirs = AlertDescription(int(exc.description))
        ours = None
        try:
            verify(issued, ca, name)
        except AlertError as exc:
            ours = exc.description
        assert ours == theirs == expected, name


# ------------------------------------------------------------------ trust store


def test_verify_trust_store_from_file_and_data(ca: CertificateAuthority, tmp_path: Path) -> None:
    other = CertificateAuthority.create(name="other")
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(b"# comment\n" + ca.pem + b"\n" + other.pem)
    assert load_trust_store(cafile=bundle) == [ca.certificate, other.certificate]
    assert load_trust_store(cafile=str(bundle)) == [ca.certificate, other.certificate]
    der = other.certificate.public_bytes(serialization.Encoding.DER)
    assert load_trust_store(cadata=der) == [other.certificate]
    both = load_trust_store(cafile=bundle, cadata=der)
    assert both == [ca.certificate, other.certificate, other.certificate]
    leaf = ca.issue()
    path = verify_certificate_chain(
        list(leaf.chain), server_name="localhost", cafile=bundle, now=NOW
    )
    assert path[-1] == ca.certificate


def test_verify_trust_store_bad_input(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        load_trust_store(cafile=tmp_path / "missing.pem")
    empty = tmp_path / "empty.pem"
    empty.write_bytes(b"")
    with pytest.raises(ValueError):
        load_trust_store(cafile=empty)
    with pytest.raises(ValueError):
        load_trust_store(cadata=b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(ValueError):
        load_trust_store(cadata=b"not a certificate")


def test_verify_trust_store_empty_trusts_nothing(server: IssuedCertificate) -> None:
    assert load_trust_store() == []
    assert (
        alert_of(
            lambda: verify_certificate_chain(list(server.chain), server_name="localhost", now=NOW)
        )
        == AlertDescription.unknown_ca
    )


SYSTEM_FILE = next((p for p in SYSTEM_CA_FILES if Path(p).is_file()), None)


@pytest.mark.skipif(SYSTEM_FILE is None, reason="no system CA bundle on this machine")
def test_verify_system_store_loads_every_root_without_warnings(
    server: IssuedCertificate,
) -> None:
    assert SYSTEM_FILE is not None
    expected = Path(SYSTEM_FILE).read_bytes().count(b"-----BEGIN CERTIFICATE-----")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # a path spelling the cache has not seen: parsed now, under warnings-as-errors
        roots = load_trust_store(cafile=Path(SYSTEM_FILE))
        system = load_trust_store(use_system_store=True)
    assert len(roots) == expected > 100
    assert system == roots
    # cached: the same objects come back
    assert load_trust_store(use_system_store=True)[0] is system[0]
    # our test CA is not among them
    assert (
        alert_of(
            lambda: verify_certificate_chain(
                list(server.chain), server_name="localhost", use_system_store=True, now=NOW
            )
        )
        == AlertDescription.unknown_ca
    )


def test_verify_system_store_plus_cadata(
    ca: CertificateAuthority, server: IssuedCertificate
) -> None:
    path = verify_certificate_chain(
        list(server.chain), server_name="localhost", cadata=ca.pem, use_system_store=True, now=NOW
    )
    assert path == [server.certificate, ca.certificate]


@pytest.mark.parametrize(
    ("server_name", "expected"),
    [
        ("example.com.", "example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("192.0.2.1", ipaddress.ip_address("192.0.2.1")),
        ("[2001:db8::1]", ipaddress.ip_address("2001:db8::1")),
    ],
)
def test_server_name_host_reads_ip_literals_and_dns_names(
    server_name: str, expected: object
) -> None:
    assert server_name_host(server_name) == expected


def test_server_name_host_rejects_names_idna_cannot_encode() -> None:
    with pytest.raises(UnicodeError):
        server_name_host("a" * 64 + "ü.example")


def test_verify_parse_certificate_with_invalid_version_is_bad_certificate() -> None:
    # a peer's certificate whose version field is 1 (neither v1=0 nor v3=2): cryptography raises
    # x509.InvalidVersion, which must become bad_certificate, not internal_error
    from cryptography.hazmat.primitives.serialization import Encoding

    from trio_zttp._tls.alerts import AlertDescription, AlertError
    from trio_zttp._tls.verify import parse_certificate
    from trio_zttp.testing import CertificateAuthority

    leaf = CertificateAuthority.create().issue(["localhost"]).certificate
    der = bytearray(leaf.public_bytes(Encoding.DER))
    at = der.index(bytes.fromhex("a003020102"))  # [0] EXPLICIT INTEGER 2 (v3)
    der[at + 4] = 1
    with pytest.raises(AlertError) as info:
        parse_certificate(bytes(der))
    assert info.value.description == AlertDescription.bad_certificate
