"""Reader/Writer and QUIC varints (RFC 9000 §16, examples from Appendix A.1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_zttp._buffer import (
    VARINT_MAX,
    BufferReadError,
    Reader,
    Writer,
    decode_varint,
    encode_varint,
    varint_size,
)

# RFC 9000 §A.1 sample variable-length integer decodings
RFC_SAMPLES = [
    ("c2197c5eff14e88c", 151288809941952652),
    ("9d7f3e7d", 494878333),
    ("7bbd", 15293),
    ("25", 37),
    ("4025", 37),  # two-byte encoding of 37 decodes too
]


@pytest.mark.parametrize(("hexdata", "value"), RFC_SAMPLES)
def test_varint_rfc9000_samples_decode(hexdata: str, value: int) -> None:
    data = bytes.fromhex(hexdata)
    assert decode_varint(data, 0) == (value, len(data))
    reader = Reader(data)
    assert reader.pull_varint() == value
    assert reader.eof()


@pytest.mark.parametrize(("hexdata", "value"), RFC_SAMPLES[:4])
def test_varint_rfc9000_samples_encode_shortest(hexdata: str, value: int) -> None:
    assert encode_varint(value).hex() == hexdata


@given(st.integers(min_value=0, max_value=VARINT_MAX))
def test_varint_round_trip(value: int) -> None:
    data = encode_varint(value)
    assert len(data) == varint_size(value)
    assert decode_varint(data, 0) == (value, len(data))
    writer = Writer()
    writer.push_varint(value)
    assert Reader(writer.getvalue()).pull_varint() == value


@given(st.integers(min_value=0, max_value=VARINT_MAX))
def test_varint_truncated_at_every_boundary_raises(value: int) -> None:
    data = encode_varint(value)
    for cut in range(len(data)):
        with pytest.raises(BufferReadError):
            Reader(data[:cut]).pull_varint()
        with pytest.raises(BufferReadError):
            decode_varint(data[:cut], 0)


@pytest.mark.parametrize("value", [-1, VARINT_MAX + 1, 1 << 64])
def test_varint_out_of_range_rejected(value: int) -> None:
    with pytest.raises(ValueError):
        encode_varint(value)
    with pytest.raises(ValueError):
        varint_size(value)


def test_reader_fixed_width_values() -> None:
    writer = Writer()
    writer.push_uint8(0xAB)
    writer.push_uint16(0xBEEF)
    writer.push_uint24(0x123456)
    writer.push_uint32(0xDEADBEEF)
    writer.push_uint64(0x0102030405060708)
    writer.push_uint(0x0A0B0C, 3)
    writer.push_uint8_bytes(b"abc")
    writer.push_uint16_bytes(b"defg")
    writer.push_uint24_bytes(b"hi")
    writer.push_varint_bytes(b"jk")
    reader = Reader(writer.getvalue())
    assert reader.pull_uint8() == 0xAB
    assert reader.pull_uint16() == 0xBEEF
    assert reader.pull_uint24() == 0x123456
    assert reader.pull_uint32() == 0xDEADBEEF
    assert reader.pull_uint64() == 0x0102030405060708
    assert reader.pull_uint(3) == 0x0A0B0C
    assert reader.pull_uint8_bytes() == b"abc"
    assert reader.pull_uint16_bytes() == b"defg"
    assert reader.pull_uint24_bytes() == b"hi"
    assert reader.pull_varint_bytes() == b"jk"
    assert reader.eof() and reader.remaining == 0


@pytest.mark.parametrize(
    "method",
    ["pull_uint8", "pull_uint16", "pull_uint24", "pull_uint32", "pull_uint64", "pull_varint",
     "pull_uint8_bytes", "pull_uint16_bytes", "pull_uint24_bytes", "pull_varint_bytes"],
)
def test_reader_past_end_raises_buffer_read_error(method: str) -> None:
    full = b"\x05\x00\x00\x00\x05\x01\x02\x03\x04\x05\x06\x07\x08"
    for cut in range(len(full)):
        reader = Reader(full[: min(cut, 1)] if method == "pull_uint8" else full[:cut])
        try:
            getattr(reader, method)()
        except BufferReadError:
            continue
        # a successful read must have consumed only bytes that exist
        assert reader.position <= cut


def test_reader_pull_bytes_negative_and_overlong() -> None:
    reader = Reader(b"abc")
    with pytest.raises(BufferReadError):
        reader.pull_bytes(4)
    with pytest.raises(BufferReadError):
        reader.pull_bytes(-1)
    assert reader.pull_bytes(3) == b"abc"
    with pytest.raises(BufferReadError):
        reader.pull_uint8()


def test_reader_sub_reader_is_bounded() -> None:
    reader = Reader(b"\x02abXY")
    sub = reader.sub_reader(reader.pull_uint8())
    assert sub.pull_bytes(2) == b"ab"
    with pytest.raises(BufferReadError):
        sub.pull_uint8()
    assert reader.pull_rest() == b"XY"


def test_reader_view_is_zero_copy() -> None:
    data = bytearray(b"hello")
    view = Reader(data).pull_view(5)
    data[0] = ord("j")
    assert bytes(view) == b"jello"


def test_reader_over_memoryview_slice() -> None:
    data = memoryview(b"xx\x40\x25yy")[2:4]
    assert Reader(data).pull_varint() == 37


_PULLS = ["pull_uint8", "pull_uint16", "pull_uint24", "pull_uint32", "pull_uint64",
          "pull_varint", "pull_uint8_bytes", "pull_uint16_bytes", "pull_uint24_bytes",
          "pull_varint_bytes"]


def _drain(reader: Reader, methods: list[str]) -> list[object]:
    out: list[object] = []
    for method in methods:
        try:
            out.append(getattr(reader, method)())
        except BufferReadError:
            out.append("error")
            break
    out.append(reader.position)
    return out


@given(st.binary(max_size=40), st.binary(max_size=40),
       st.lists(st.sampled_from(_PULLS), min_size=1, max_size=8))
def test_reader_bounds_are_the_end_not_the_buffer(
    data: bytes, tail: bytes, methods: list[str]
) -> None:
    # a reader (or sub-reader) ending inside a longer buffer reads exactly what a reader over
    # the cut-out bytes reads, and fails where it fails: the inline bound checks
    expected = _drain(Reader(data), methods)
    assert _drain(Reader(data + tail, 0, len(data)), methods) == expected
    outer = Reader(b"\x00" + data + tail)
    outer.pull_uint8()
    sub = outer.sub_reader(len(data))
    got = _drain(sub, methods)
    assert got[:-1] == expected[:-1] and got[-1] == expected[-1] + 1
    assert outer.position == 1 + len(data)


@given(st.integers(min_value=0, max_value=VARINT_MAX), st.binary(max_size=3))
def test_varint_decoders_agree(value: int, tail: bytes) -> None:
    data = encode_varint(value) + tail
    reader = Reader(data)
    assert (reader.pull_varint(), reader.position) == decode_varint(data, 0)
    assert decode_varint(memoryview(bytearray(data)), 0) == decode_varint(data, 0)


def test_reader_rejects_bounds_outside_the_data() -> None:
    for pos, end in ((4, None), (-1, None), (0, 4), (2, 1), (-1, 2)):
        with pytest.raises(ValueError):
            Reader(b"abc", pos, end)
    assert Reader(b"abc", 3).eof()


@pytest.mark.parametrize("method", _PULLS)
def test_reader_bounded_inside_longer_data_stops_at_its_end(method: str) -> None:
    full = b"\x05\x00\x00\x00\x05\x01\x02\x03\x04\x05\x06\x07\x08" + b"\xc0" * 8
    for cut in range(len(full)):
        expected = _drain(Reader(full[:cut]), [method, method])
        assert _drain(Reader(full, 0, cut), [method, method]) == expected
        outer = Reader(full)
        sub = outer.sub_reader(cut)
        assert _drain(sub, [method, method]) == expected
