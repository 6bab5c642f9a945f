"""The key schedule against RFC 8448 §3 and §4, value for value."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from hypothesis import given
from hypothesis import strategies as st

from trio_zttp._tls.extensions import NamedGroup
from trio_zttp._tls.key_exchange import ClientKeyShare, server_key_exchange
from trio_zttp._tls.key_schedule import KeySchedule, Transcript, resumption_psk
from trio_zttp._tls.suites import CipherSuite, hkdf_expand_label

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "rfc8448"


def load(name: str) -> dict[str, bytes]:
    values: dict[str, bytes] = {}
    for line in (VECTORS / name).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition(":")
            values[key.strip()] = bytes.fromhex(value.strip())
    return values


S3 = load("section3_simple_1rtt.txt")
S4 = load("section4_resumed_0rtt.txt")
SUITE = CipherSuite.AES_128_GCM_SHA256


def never_random(n: int) -> bytes:
    raise AssertionError("the trace injects every key")


def test_key_schedule_rfc8448_x25519_shared_secret() -> None:
    client = ClientKeyShare(NamedGroup.x25519, never_random, S3["client_x25519_private"])
    assert client.public == S3["client_x25519_public"]
    server_public, server_shared = server_key_exchange(
        NamedGroup.x25519, client.public, never_random, S3["server_x25519_private"]
    )
    assert server_public == S3["server_x25519_public"]
    assert server_shared == S3["ecdhe_shared_secret"]
    assert client.exchange(server_public) == S3["ecdhe_shared_secret"]


def test_key_schedule_rfc8448_simple_1rtt_every_secret() -> None:
    transcript = Transcript()
    transcript.add(S3["client_hello"])
    transcript.set_hash("sha256")
    transcript.add(S3["server_hello"])
    th_sh = transcript.digest()
    assert th_sh == S3["transcript_hash_client_hello_server_hello"]

    ks = KeySchedule(SUITE)
    assert ks.early_secret == S3["early_secret"]
    ks.set_shared_secret(S3["ecdhe_shared_secret"])
    assert ks.handshake_secret == S3["handshake_secret"]
    c_hs = ks.client_handshake_traffic_secret(th_sh)
    s_hs = ks.server_handshake_traffic_secret(th_sh)
    assert c_hs == S3["client_handshake_traffic_secret"]
    assert s_hs == S3["server_handshake_traffic_secret"]
    ks.set_master()
    assert ks.master_secret == S3["master_secret"]

    for name in ("encrypted_extensions", "certificate", "certificate_verify"):
        transcript.add(S3[name])
    assert ks.finished_key(s_hs) == S3["server_finished_key"]
    assert ks.verify_data(s_hs, transcript.digest()) == S3["server_finished_verify_data"]
    transcript.add(S3["server_finished"])
    th_sf = transcript.digest()
    assert th_sf == S3["transcript_hash_client_hello_server_finished"]
    assert ks.client_application_traffic_secret(th_sf) == S3["client_application_traffic_secret"]
    assert ks.server_application_traffic_secret(th_sf) == S3["server_application_traffic_secret"]
    assert ks.exporter_master_secret(th_sf) == S3["exporter_master_secret"]

    assert ks.finished_key(c_hs) == S3["client_finished_key"]
    assert ks.verify_data(c_hs, th_sf) == S3["client_finished_verify_data"]
    transcript.add(S3["client_finished"])
    th_cf = transcript.digest()
    assert th_cf == S3["transcript_hash_client_hello_client_finished"]
    rms = ks.resumption_master_secret(th_cf)
    assert rms == S3["resumption_master_secret"]
    assert resumption_psk(SUITE, rms, b"\x00\x00") == S3["resumption_psk"]


@pytest.mark.parametrize(
    ("secret", "prefix"),
    [
        ("server_handshake_traffic_secret", "server_handshake"),
        ("client_handshake_traffic_secret", "client_handshake"),
        ("server_application_traffic_secret", "server_application"),
        ("client_application_traffic_secret", "client_application"),
    ],
)
def test_key_schedule_rfc8448_traffic_keys(secret: str, prefix: str) -> None:
    # the traffic secrets feed record protection (QUIC uses "quic key"; TLS uses "key")
    assert hkdf_expand_label("sha256", S3[secret], b"key", b"", 16) == S3[prefix + "_key"]
    assert hkdf_expand_label("sha256", S3[secret], b"iv", b"", 12) == S3[prefix + "_iv"]


def test_key_schedule_rfc8448_psk_binder() -> None:
    ks = KeySchedule(SUITE, psk=S4["resumption_psk"])
    assert ks.early_secret == S4["early_secret"]
    binder_key = ks.binder_key()
    assert binder_key == S4["binder_key"]
    assert ks.finished_key(binder_key) == S4["binder_finished_key"]
    hello = S4["client_hello"]
    prefix = hello[: len(hello) - 35]  # binders list: 2-byte length, 1-byte length, 32 bytes
    transcript = Transcript()
    assert transcript.digest_with(prefix, "sha256") == S4["binder_hash"]
    assert ks.verify_data(binder_key, S4["binder_hash"]) == S4["binder"]
    assert hello.endswith(S4["binder"])


def test_key_schedule_hello_retry_rewrites_client_hello() -> None:
    transcript = Transcript()
    transcript.add(b"\x01\x00\x00\x02ab")
    transcript.restart_for_hello_retry("sha384")
    inner = hashlib.sha384(b"\x01\x00\x00\x02ab").digest()
    assert transcript.digest() == hashlib.sha384(b"\xfe\x00\x00\x30" + inner).digest()


def test_key_schedule_sha384_suite_lengths() -> None:
    ks = KeySchedule(CipherSuite.AES_256_GCM_SHA384)
    assert len(ks.early_secret) == 48
    ks.set_shared_secret(bytes(32))
    ks.set_master()
    assert len(ks.client_application_traffic_secret(bytes(48))) == 48
    assert ks.early_secret != KeySchedule(SUITE).early_secret


def test_key_schedule_stage_order_enforced() -> None:
    ks = KeySchedule(SUITE)
    with pytest.raises(ValueError):
        ks.client_handshake_traffic_secret(bytes(32))
    with pytest.raises(ValueError):
        Transcript().digest()


@given(
    st.sampled_from(["sha256", "sha384"]),
    st.binary(min_size=1, max_size=64),
    st.binary(min_size=1, max_size=40),
    st.binary(max_size=64),
    st.integers(1, 200),
)
def test_hkdf_expand_label_matches_cryptography_hkdf_expand(
    name: str, secret: bytes, label: bytes, context: bytes, length: int
) -> None:
    # the one-HMAC path (length up to the hash size) and the block loop against an
    # independent HKDF-Expand over the HkdfLabel built by hand (RFC 8446 §7.1)
    full = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes((len(full),)) + full + bytes((len(context),))
    algorithm = hashes.SHA256() if name == "sha256" else hashes.SHA384()
    expected = HKDFExpand(algorithm, length, info + context).derive(secret)
    assert hkdf_expand_label(name, secret, label, context, length) == expected
    assert hkdf_expand_label(name, secret, label, context, length) == expected  # cached head


def test_key_schedule_without_psk_equals_a_zero_psk_schedule() -> None:
    # the cached no-PSK early and "derived" secrets against the general path: a PSK of
    # hash-length zeros is the same input to HKDF-Extract (RFC 8446 §7.1)
    for suite in CipherSuite:
        cached = KeySchedule(suite)
        general = KeySchedule(suite, bytes(cached.hash_length))
        assert cached.early_secret == general.early_secret
        cached.set_shared_secret(b"\x01" * 32)
        general.set_shared_secret(b"\x01" * 32)
        assert cached.handshake_secret == general.handshake_secret
