"""HTTP/3 SETTINGS (RFC 9114 §7.2.4, RFC 9204 §5, RFC 9220 §3, RFC 9297 §2.1.1)."""

from __future__ import annotations

import random

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_zttp._buffer import BufferReadError, Reader, encode_varint
from trio_zttp.h3._errors import (
    ErrorCode,
    FrameError,
    QpackDecoderStreamError,
    SettingsError,
    is_grease_value,
    is_reserved_code,
)
from trio_zttp.h3._settings import (
    RESERVED_HTTP2_SETTINGS,
    Settings,
    SettingsId,
    check_datagram_support,
    check_resumed_settings,
    decode_settings,
    encode_settings,
    grease_setting_id,
)

VARINT = st.integers(0, 2**62 - 1)
KNOWN = {int(s) for s in SettingsId}
extension_ids = VARINT.filter(
    lambda i: i not in KNOWN and i not in RESERVED_HTTP2_SETTINGS and not is_reserved_code(i)
)
settings_strategy = st.builds(
    Settings,
    qpack_max_table_capacity=VARINT,
    max_field_section_size=st.none() | VARINT,
    qpack_blocked_streams=VARINT,
    enable_connect_protocol=st.booleans(),
    h3_datagram=st.booleans(),
    unknown=st.lists(st.tuples(extension_ids, VARINT), max_size=4, unique_by=lambda p: p[0]).map(
        tuple
    ),
)


def pairs(payload: bytes) -> list[tuple[int, int]]:
    reader = Reader(payload)
    out = []
    while not reader.eof():
        out.append((reader.pull_varint(), reader.pull_varint()))
    return out


def encode_pairs(items: list[tuple[int, int]]) -> bytes:
    return b"".join(encode_varint(i) + encode_varint(v) for i, v in items)


@given(settings=settings_strategy, seed=st.integers(0, 2**32))
def test_settings_round_trip(settings: Settings, seed: int) -> None:
    assert decode_settings(encode_settings(settings, grease=False)) == settings
    # reserved identifiers carry no meaning and are dropped on receipt
    assert decode_settings(encode_settings(settings)) == settings
    greased = encode_settings(settings, random_bytes=random.Random(seed).randbytes)
    assert decode_settings(greased) == settings
    assert sum(is_reserved_code(i) for i, _ in pairs(greased)) == 1


def test_settings_defaults_are_omitted_and_known_order() -> None:
    assert encode_settings(Settings(), grease=False) == b""
    assert encode_settings(Settings()) == b"\x21\x00"  # the fixed GREASE setting
    assert decode_settings(b"") == Settings()
    full = Settings(
        qpack_max_table_capacity=4096,
        max_field_section_size=0,
        qpack_blocked_streams=16,
        enable_connect_protocol=True,
        h3_datagram=True,
        unknown=((0x2B603742, 1),),
    )
    assert pairs(encode_settings(full, grease=False)) == [
        (0x1, 4096), (0x6, 0), (0x7, 16), (0x8, 1), (0x33, 1), (0x2B603742, 1)
    ]


def test_settings_grease_avoids_identifiers_already_present() -> None:
    taken = Settings(unknown=((grease_setting_id(0), 5),))
    assert pairs(encode_settings(taken)) == [(0x21, 5), (0x40, 0)]
    assert decode_settings(encode_settings(taken)) == Settings()  # both reserved: dropped


def test_settings_zero_valued_booleans_decode_false() -> None:
    decoded = decode_settings(encode_pairs([(0x8, 0), (0x33, 0), (0x6, 100)]))
    assert decoded == Settings(max_field_section_size=100)


@pytest.mark.parametrize("identifier", sorted(RESERVED_HTTP2_SETTINGS))
def test_settings_http2_identifiers_are_settings_error(identifier: int) -> None:
    with pytest.raises(SettingsError) as info:
        decode_settings(encode_pairs([(0x1, 10), (identifier, 0)]))
    assert info.value.error_code == ErrorCode.H3_SETTINGS_ERROR == 0x109


@pytest.mark.parametrize("identifier", [0x1, 0x6, 0x33, 0x21, 0x99])
def test_settings_duplicates_are_settings_error(identifier: int) -> None:
    with pytest.raises(SettingsError):
        decode_settings(encode_pairs([(identifier, 1), (0x7, 1), (identifier, 1)]))


@pytest.mark.parametrize("identifier", [SettingsId.ENABLE_CONNECT_PROTOCOL, SettingsId.H3_DATAGRAM])
@pytest.mark.parametrize("value", [2, 3, 2**62 - 1])
def test_settings_boolean_values_must_be_zero_or_one(identifier: int, value: int) -> None:
    with pytest.raises(SettingsError) as info:
        decode_settings(encode_pairs([(identifier, value)]))
    assert info.value.error_code == ErrorCode.H3_SETTINGS_ERROR


def test_settings_truncated_at_every_byte_is_frame_error() -> None:
    items = [(0x1, 4096), (0x2B603742, 2**40), (0x7, 100), (0x33, 1)]
    payload = encode_pairs(items)
    boundaries = {0}
    for i in range(1, len(items) + 1):
        boundaries.add(len(encode_pairs(items[:i])))
    for cut in range(len(payload) + 1):
        if cut in boundaries:
            decode_settings(payload[:cut])
        else:
            with pytest.raises(FrameError) as info:
                decode_settings(payload[:cut])
            assert info.value.error_code == ErrorCode.H3_FRAME_ERROR == 0x106


@pytest.mark.parametrize(
    "kwargs",
    [
        {"qpack_max_table_capacity": -1},
        {"qpack_blocked_streams": 2**62},
        {"max_field_section_size": -5},
        {"unknown": ((0x1, 3),)},
        {"unknown": ((0x2, 3),)},
        {"unknown": ((0x99, 3), (0x99, 4))},
        {"unknown": ((0x99, 2**62),)},
    ],
)
def test_settings_rejects_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Settings(**kwargs)  # type: ignore[arg-type]


def test_settings_datagram_support_rule() -> None:
    check_datagram_support(Settings(h3_datagram=True), 1200)
    check_datagram_support(Settings(h3_datagram=False), None)
    check_datagram_support(Settings(), 0)
    for missing in (None, 0):
        with pytest.raises(SettingsError) as info:
            check_datagram_support(Settings(h3_datagram=True), missing)
        assert info.value.error_code == ErrorCode.H3_SETTINGS_ERROR


REMEMBERED = Settings(
    qpack_max_table_capacity=4096,
    max_field_section_size=16384,
    qpack_blocked_streams=10,
    enable_connect_protocol=True,
    h3_datagram=True,
)


def test_settings_resumed_compatible() -> None:
    check_resumed_settings(REMEMBERED, REMEMBERED)
    check_resumed_settings(
        REMEMBERED,
        Settings(
            qpack_max_table_capacity=4096,
            max_field_section_size=None,
            qpack_blocked_streams=20,
            enable_connect_protocol=True,
            h3_datagram=True,
            unknown=((0x99, 1),),
        ),
    )
    # RFC 9204 §3.2.3: a zero remembered capacity may become non-zero
    check_resumed_settings(Settings(), Settings(qpack_max_table_capacity=100))


@pytest.mark.parametrize(
    "change",
    [
        {"qpack_blocked_streams": 9},
        {"max_field_section_size": 100},
        {"enable_connect_protocol": False},
        {"h3_datagram": False},
    ],
)
def test_settings_resumed_reduced_is_settings_error(change: dict[str, object]) -> None:
    received = attrs.evolve(REMEMBERED, **change)
    with pytest.raises(SettingsError):
        check_resumed_settings(REMEMBERED, received)


def test_settings_resumed_unlimited_field_section_must_stay_unlimited() -> None:
    with pytest.raises(SettingsError):
        check_resumed_settings(Settings(), Settings(max_field_section_size=2**40))


@pytest.mark.parametrize("capacity", [0, 4095, 8192])
def test_settings_resumed_table_capacity_must_not_change(capacity: int) -> None:
    received = attrs.evolve(REMEMBERED, qpack_max_table_capacity=capacity)
    with pytest.raises(QpackDecoderStreamError) as info:
        check_resumed_settings(REMEMBERED, received)
    assert info.value.error_code == ErrorCode.QPACK_DECODER_STREAM_ERROR


def _reference_decode(payload: bytes) -> Settings:
    """The plain reading of RFC 9114 §7.2.4.1, one pair at a time, nothing remembered."""
    reader = Reader(payload)
    pairs: dict[int, int] = {}
    try:
        while not reader.eof():
            identifier, value = reader.pull_varint(), reader.pull_varint()
            if identifier in RESERVED_HTTP2_SETTINGS or identifier in pairs:
                raise SettingsError("reserved or repeated")
            if identifier in (0x8, 0x33) and value > 1:
                raise SettingsError("boolean")
            pairs[identifier] = value
    except BufferReadError:
        raise FrameError("truncated") from None
    return Settings(
        qpack_max_table_capacity=pairs.get(0x1, 0),
        max_field_section_size=pairs.get(0x6),
        qpack_blocked_streams=pairs.get(0x7, 0),
        enable_connect_protocol=pairs.get(0x8) == 1,
        h3_datagram=pairs.get(0x33) == 1,
        unknown=tuple(
            (i, v) for i, v in pairs.items() if i not in KNOWN and not is_grease_value(i)
        ),
    )


_pair_ids = st.sampled_from([0x0, 0x1, 0x2, 0x6, 0x7, 0x8, 0x21, 0x33, 0x40, 0x1F * 9 + 0x21,
                             2**30, 2**62 - 1])
_pair_values = st.sampled_from([0, 1, 2, 63, 64, 16383, 16384, 2**62 - 1])


@given(st.lists(st.tuples(_pair_ids, _pair_values), max_size=6), st.integers(0, 3))
def test_settings_decoding_matches_a_plain_reading(
    pairs: list[tuple[int, int]], cut: int
) -> None:
    """Decoded (and remembered) settings equal a plain one-pair-at-a-time reading, with the
    same error for reserved, repeated, non-boolean and truncated input; twice in a row, so
    the second decoding comes from what the first remembered."""
    payload = b"".join(encode_varint(i) + encode_varint(v) for i, v in pairs)
    payload = payload[: len(payload) - cut] if cut and payload else payload
    for _ in range(2):
        try:
            expected: Settings | type[Exception] = _reference_decode(payload)
        except (SettingsError, FrameError) as exc:
            expected = type(exc)
        try:
            got: Settings | type[Exception] = decode_settings(memoryview(payload))
        except (SettingsError, FrameError) as exc:
            got = type(exc)
        assert got == expected


@given(settings_strategy, st.integers(0, 2**32))
def test_settings_encoding_is_the_same_when_remembered(settings: Settings, seed: int) -> None:
    first = encode_settings(settings, random_bytes=random.Random(seed).randbytes)
    again = encode_settings(attrs.evolve(settings), random_bytes=random.Random(seed).randbytes)
    assert first == again
    assert decode_settings(first) == settings
