"""Key exchange: every group agrees, bad shares end in illegal_parameter, and the hybrid
X25519MLKEM768 secret is ML-KEM's secret followed by X25519's (draft-ietf-tls-ecdhe-mlkem §3)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, mlkem, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from trio_zttp._tls.alerts import AlertDescription, AlertError
from trio_zttp._tls.extensions import NamedGroup
from trio_zttp._tls.key_exchange import SUPPORTED_GROUPS, ClientKeyShare, server_key_exchange


def seeded(seed: int) -> Callable[[int], bytes]:
    rng = random.Random(seed)
    return lambda n: rng.randbytes(n)


@pytest.mark.parametrize("group", sorted(SUPPORTED_GROUPS))
def test_key_exchange_both_sides_agree(group: int) -> None:
    client = ClientKeyShare(group, seeded(1))
    server_share, server_secret = server_key_exchange(group, client.public, seeded(2))
    assert client.exchange(server_share) == server_secret
    expected = {
        NamedGroup.x25519: (32, 32, 32),
        NamedGroup.secp256r1: (65, 65, 32),
        NamedGroup.secp384r1: (97, 97, 48),
        NamedGroup.X25519MLKEM768: (1216, 1120, 64),
    }[NamedGroup(group)]
    assert (len(client.public), len(server_share), len(server_secret)) == expected


@pytest.mark.parametrize("group", sorted(SUPPORTED_GROUPS))
def test_key_exchange_private_keys_come_from_random_bytes(group: int) -> None:
    assert ClientKeyShare(group, seeded(7)).public == ClientKeyShare(group, seeded(7)).public
    assert ClientKeyShare(group, seeded(7)).public != ClientKeyShare(group, seeded(8)).public


def test_key_exchange_hybrid_known_answer_composition() -> None:
    seed = hashlib.sha512(b"mlkem seed").digest()
    x_private = hashlib.sha256(b"x25519 client").digest()
    client = ClientKeyShare(NamedGroup.X25519MLKEM768, seeded(0), seed + x_private)

    # the client share is the encapsulation key, then the X25519 public key
    kem = mlkem.MLKEM768PrivateKey.from_seed_bytes(seed)
    xkey = x25519.X25519PrivateKey.from_private_bytes(x_private)
    encapsulation_key = kem.public_key().public_bytes_raw()
    assert client.public == encapsulation_key + xkey.public_key().public_bytes_raw()

    server_x = hashlib.sha256(b"x25519 server").digest()
    server_share, secret = server_key_exchange(
        NamedGroup.X25519MLKEM768, client.public, seeded(0), server_x
    )
    ciphertext, server_public = server_share[:1088], server_share[1088:]
    server_xkey = x25519.X25519PrivateKey.from_private_bytes(server_x)
    assert server_public == server_xkey.public_key().public_bytes_raw()
    kem_secret = kem.decapsulate(ciphertext)
    x_secret = xkey.exchange(x25519.X25519PublicKey.from_public_bytes(server_public))
    assert secret == kem_secret + x_secret  # ML-KEM first, then X25519
    assert client.exchange(server_share) == kem_secret + x_secret


BAD_SHARES = [
    (NamedGroup.x25519, b"\x01" * 31),
    (NamedGroup.x25519, bytes(32)),  # low-order point: all-zero shared secret
    (NamedGroup.secp256r1, b"\x04" + bytes(64)),  # not on the curve
    (NamedGroup.secp256r1, b"\x02" + bytes(32)),  # compressed points are not allowed
    (NamedGroup.secp384r1, b"\x04" + b"\x01" * 96),
    (NamedGroup.X25519MLKEM768, bytes(1215)),
    (NamedGroup.X25519MLKEM768, b"\xff" * 1184 + b"\x09" + bytes(31)),  # ek check fails
]


@pytest.mark.parametrize(("group", "share"), BAD_SHARES)
def test_key_exchange_bad_client_share_is_illegal_parameter(group: int, share: bytes) -> None:
    with pytest.raises(AlertError) as info:
        server_key_exchange(group, share, seeded(3))
    assert info.value.description == AlertDescription.illegal_parameter


@pytest.mark.parametrize(
    ("group", "share"),
    [
        (NamedGroup.x25519, bytes(32)),
        (NamedGroup.secp256r1, b"\x04" + bytes(64)),
        (NamedGroup.X25519MLKEM768, bytes(1119)),
    ],
)
def test_key_exchange_bad_server_share_is_illegal_parameter(group: int, share: bytes) -> None:
    client = ClientKeyShare(group, seeded(4))
    with pytest.raises(AlertError) as info:
        client.exchange(share)
    assert info.value.description == AlertDescription.illegal_parameter


def test_key_exchange_secp256r1_matches_cryptography() -> None:
    client = ClientKeyShare(NamedGroup.secp256r1, seeded(5))
    peer = ec.generate_private_key(ec.SECP256R1())
    point = peer.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    ours = client.exchange(point)
    theirs = peer.exchange(
        ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), client.public)
    )
    assert ours == theirs
