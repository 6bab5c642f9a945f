"""Retry tokens (RFC 9000 §8.1.2-§8.1.4): sealed, address-bound, expiring, tamper-evident."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_zttp.quic._tokens import RETRY_TOKEN_LIFETIME, AddressTokens, RetryTokenContents

KEY = bytes(range(32))
ADDRESS = ("192.0.2.7", 4433)


def _counter_random():
    counter = itertools.count()
    return lambda n: next(counter).to_bytes(n, "big")


def _codec(key: bytes = KEY) -> AddressTokens:
    return AddressTokens(key, _counter_random())


def _token(codec: AddressTokens, **overrides) -> bytes:
    values = {
        "address": ADDRESS,
        "original_destination_connection_id": b"\x01" * 8,
        "retry_source_connection_id": b"\x02" * 8,
        "now": 100.0,
    }
    values.update(overrides)
    return codec.encode_retry_token(**values)


cids = st.binary(min_size=0, max_size=20)
hosts = st.one_of(
    st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str), st.just("localhost")
)


@given(odcid=cids, rscid=cids, host=hosts, port=st.integers(0, 65535),
       now=st.floats(-1e9, 1e9, allow_nan=False))
def test_tokens_round_trip(odcid: bytes, rscid: bytes, host: str, port: int, now: float) -> None:
    codec = _codec()
    token = codec.encode_retry_token(
        address=(host, port), original_destination_connection_id=odcid,
        retry_source_connection_id=rscid, now=now,
    )  # fmt: skip
    assert codec.decode_retry_token(token, address=(host, port), now=now) == RetryTokenContents(
        original_destination_connection_id=odcid, retry_source_connection_id=rscid
    )


def test_tokens_expire() -> None:
    codec = _codec()
    token = _token(codec, now=100.0)
    deadline = 100.0 + RETRY_TOKEN_LIFETIME
    assert codec.decode_retry_token(token, address=ADDRESS, now=deadline)
    assert codec.decode_retry_token(token, address=ADDRESS, now=deadline + 0.1) is None
    short = _token(codec, now=0.0, lifetime=1.0)
    assert codec.decode_retry_token(short, address=ADDRESS, now=1.5) is None


def test_tokens_are_bound_to_the_address() -> None:
    codec = _codec()
    token = _token(codec)
    assert codec.decode_retry_token(token, address=ADDRESS, now=100.0) is not None
    assert codec.decode_retry_token(token, address=("192.0.2.8", 4433), now=100.0) is None
    assert codec.decode_retry_token(token, address=("192.0.2.7", 4434), now=100.0) is None


def test_tokens_from_another_key_are_refused() -> None:
    token = _token(_codec(bytes(32)))
    assert _codec().decode_retry_token(token, address=ADDRESS, now=100.0) is None


def test_tokens_every_flipped_bit_is_refused() -> None:
    codec = _codec()
    token = _token(codec)
    for i in range(len(token)):
        for bit in (0x01, 0x80):
            tampered = bytearray(token)
            tampered[i] ^= bit
            assert codec.decode_retry_token(bytes(tampered), address=ADDRESS, now=100.0) is None


def test_tokens_truncated_at_every_byte_are_refused() -> None:
    codec = _codec()
    token = _token(codec)
    for cut in range(len(token)):
        assert codec.decode_retry_token(token[:cut], address=ADDRESS, now=100.0) is None
    assert codec.decode_retry_token(token + b"\0", address=ADDRESS, now=100.0) is None


def test_tokens_use_fresh_nonces() -> None:
    codec = _codec()
    assert _token(codec) != _token(codec)


def test_tokens_reject_bad_arguments() -> None:
    with pytest.raises(ValueError):
        AddressTokens(b"short", _counter_random())
    with pytest.raises(ValueError):
        _token(_codec(), original_destination_connection_id=bytes(21))
