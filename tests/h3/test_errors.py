"""HTTP/3 error codes and exception classes (RFC 9114 §8.1, RFC 9204 §6, RFC 9297 §5.2)."""

from __future__ import annotations

import random

import pytest

from trio_zttp import h3
from trio_zttp.h3 import _errors
from trio_zttp.h3._errors import (
    ErrorCode,
    H3Error,
    MessageError,
    grease_error_code,
    is_reserved_code,
    random_grease,
)

# RFC 9114 §8.1 and §11.2.3, RFC 9204 §8.3, RFC 9297 §5.2: name -> value, from the RFC text.
REGISTRY = {
    "H3_NO_ERROR": 0x0100,
    "H3_GENERAL_PROTOCOL_ERROR": 0x0101,
    "H3_INTERNAL_ERROR": 0x0102,
    "H3_STREAM_CREATION_ERROR": 0x0103,
    "H3_CLOSED_CRITICAL_STREAM": 0x0104,
    "H3_FRAME_UNEXPECTED": 0x0105,
    "H3_FRAME_ERROR": 0x0106,
    "H3_EXCESSIVE_LOAD": 0x0107,
    "H3_ID_ERROR": 0x0108,
    "H3_SETTINGS_ERROR": 0x0109,
    "H3_MISSING_SETTINGS": 0x010A,
    "H3_REQUEST_REJECTED": 0x010B,
    "H3_REQUEST_CANCELLED": 0x010C,
    "H3_REQUEST_INCOMPLETE": 0x010D,
    "H3_MESSAGE_ERROR": 0x010E,
    "H3_CONNECT_ERROR": 0x010F,
    "H3_VERSION_FALLBACK": 0x0110,
    "QPACK_DECOMPRESSION_FAILED": 0x0200,
    "QPACK_ENCODER_STREAM_ERROR": 0x0201,
    "QPACK_DECODER_STREAM_ERROR": 0x0202,
    "H3_DATAGRAM_ERROR": 0x33,
}


def test_errors_registry_values() -> None:
    assert {code.name: int(code) for code in ErrorCode} == REGISTRY
    assert h3.ErrorCode is ErrorCode


def test_errors_codes_match_aioquic() -> None:
    from aioquic.h3.connection import ErrorCode as AioquicErrorCode

    assert {c.name: int(c) for c in AioquicErrorCode} == {c.name: int(c) for c in ErrorCode}


def test_errors_every_subclass_carries_a_distinct_wire_code() -> None:
    classes = [
        obj
        for obj in vars(_errors).values()
        if isinstance(obj, type) and issubclass(obj, H3Error) and obj is not H3Error
    ]
    assert len(classes) >= 14
    codes = [cls.error_code for cls in classes]
    assert all(code in ErrorCode.__members__.values() for code in codes)
    assert len(set(codes)) == len(codes)
    assert [cls for cls in classes if cls.stream_error] == [MessageError]


def test_errors_carry_reason_and_frame_type() -> None:
    exc = _errors.FrameError("bad frame", frame_type=4)
    assert (exc.reason, exc.frame_type, exc.error_code) == ("bad frame", 4, 0x106)
    assert str(exc) == "bad frame"
    assert _errors.DatagramError().error_code == 0x33


def test_errors_grease_codes() -> None:
    assert [grease_error_code(n) for n in range(4)] == [0x21, 0x40, 0x5F, 0x7E]
    assert all(is_reserved_code(grease_error_code(n)) for n in (0, 1, 1000, 2**57))
    assert not any(is_reserved_code(int(code)) for code in ErrorCode)
    assert not is_reserved_code(0) and not is_reserved_code(0x20)
    largest = grease_error_code(_errors.GREASE_MAX_N)
    assert largest <= 2**62 - 1 < largest + 0x1F
    with pytest.raises(ValueError):
        grease_error_code(_errors.GREASE_MAX_N + 1)


def test_errors_random_grease_uses_the_injected_source() -> None:
    rng = random.Random(3)
    values = {random_grease(rng.randbytes) for _ in range(50)}
    assert len(values) > 40 and all(is_reserved_code(v) for v in values)
    small = {random_grease(rng.randbytes, max_n=1) for _ in range(50)}
    assert small == {0x21, 0x40}
    assert random_grease(lambda n: b"\x00" * n) == 0x21
