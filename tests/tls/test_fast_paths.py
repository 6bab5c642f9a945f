"""Fast paths of the handshake compared with their general (or standard-library) spelling.

Each optimisation that duplicates a general path is checked here against that path on many
inputs, so a divergence fails.
"""

from __future__ import annotations

import hmac
import random

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from trio_zttp._tls.suites import hkdf_expand_label, hmac_digest, hmac_new

_HASHES = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384()}


@pytest.mark.parametrize("name", ["sha256", "sha384"])
def test_hmac_digest_matches_stdlib(name: str) -> None:
    rng = random.Random(1)
    for _ in range(300):
        key = rng.randbytes(rng.randrange(0, 200))  # longer than a block too
        message = rng.randbytes(rng.randrange(0, 300))
        expected = hmac.digest(key, message, name)
        assert hmac_digest(key, message, name) == expected
        assert hmac_new(key, message, name).digest() == expected


@pytest.mark.parametrize("name", ["sha256", "sha384"])
def test_hkdf_expand_label_matches_cryptography_hkdf(name: str) -> None:
    rng = random.Random(2)
    size = 32 if name == "sha256" else 48
    for _ in range(200):
        secret = rng.randbytes(size)
        label = rng.randbytes(rng.randrange(1, 30))
        context = rng.randbytes(rng.choice((0, size)))
        length = rng.randrange(1, 3 * size)
        full = b"tls13 " + label
        info = length.to_bytes(2, "big") + bytes((len(full),)) + full
        info += bytes((len(context),)) + context
        expected = HKDFExpand(_HASHES[name], length, info).derive(secret)
        assert hkdf_expand_label(name, secret, label, context, length) == expected
