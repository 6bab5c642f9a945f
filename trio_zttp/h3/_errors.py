"""HTTP/3 error codes (RFC 9114 §8.1, RFC 9204 §6, RFC 9297 §5.2) and the core's exceptions.

:class:`ErrorCode` is the public registry of wire codes.  :class:`H3Error` and its subclasses
are *remote violations*: they are raised deep in parsing (frames, SETTINGS, field sections,
capsules, HTTP/3 datagrams) and caught at one boundary in the connection, which turns them into
CONNECTION_CLOSE or, for the stream-scoped ones (:attr:`H3Error.stream_error`), a stream reset
with :attr:`H3Error.error_code`.  Caller misuse raises ``ValueError``/``TypeError`` at once.

The reserved ("GREASE") code points ``0x1f * N + 0x21`` shared by HTTP/3 error codes, frame
types, stream types and setting identifiers are computed here (:func:`grease_error_code`,
:func:`is_reserved_code`) and reused by the other modules of the namespace.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import ClassVar, Final

from .._buffer import VARINT_MAX

__all__ = [
    "GREASE_MAX_N",
    "ClosedCriticalStreamError",
    "DatagramError",
    "ErrorCode",
    "ExcessiveLoadError",
    "FrameError",
    "FrameUnexpectedError",
    "GeneralProtocolError",
    "H3Error",
    "IdError",
    "InternalError",
    "MessageError",
    "MissingSettingsError",
    "QpackDecoderStreamError",
    "QpackDecompressionFailedError",
    "QpackEncoderStreamError",
    "SettingsError",
    "StreamCreationError",
    "grease_error_code",
    "grease_value",
    "is_grease_value",
    "is_reserved_code",
    "random_grease",
]


class ErrorCode(enum.IntEnum):
    """HTTP/3 error codes, including the QPACK codes and H3_DATAGRAM_ERROR.

    RFC 9114 §8.1 (0x100-0x110), RFC 9204 §6 (0x200-0x202), RFC 9297 §5.2 (0x33).
    """

    H3_DATAGRAM_ERROR = 0x33
    H3_NO_ERROR = 0x100
    H3_GENERAL_PROTOCOL_ERROR = 0x101
    H3_INTERNAL_ERROR = 0x102
    H3_STREAM_CREATION_ERROR = 0x103
    H3_CLOSED_CRITICAL_STREAM = 0x104
    H3_FRAME_UNEXPECTED = 0x105
    H3_FRAME_ERROR = 0x106
    H3_EXCESSIVE_LOAD = 0x107
    H3_ID_ERROR = 0x108
    H3_SETTINGS_ERROR = 0x109
    H3_MISSING_SETTINGS = 0x10A
    H3_REQUEST_REJECTED = 0x10B
    H3_REQUEST_CANCELLED = 0x10C
    H3_REQUEST_INCOMPLETE = 0x10D
    H3_MESSAGE_ERROR = 0x10E
    H3_CONNECT_ERROR = 0x10F
    H3_VERSION_FALLBACK = 0x110
    QPACK_DECOMPRESSION_FAILED = 0x200
    QPACK_ENCODER_STREAM_ERROR = 0x201
    QPACK_DECODER_STREAM_ERROR = 0x202


# --- reserved code points: 0x1f * N + 0x21 (RFC 9114 §6.2.3, §7.2.4.1, §7.2.8, §8.1) ---------

_GREASE_STEP: Final = 0x1F
_GREASE_BASE: Final = 0x21
#: Largest N for which ``0x1f * N + 0x21`` still fits in a QUIC varint.
GREASE_MAX_N: Final = (VARINT_MAX - _GREASE_BASE) // _GREASE_STEP


def grease_value(n: int) -> int:
    """The ``n``-th reserved value ``0x1f * n + 0x21`` (shared by codes, types and settings)."""
    if not 0 <= n <= GREASE_MAX_N:
        raise ValueError(f"GREASE index {n} out of range 0..{GREASE_MAX_N}")
    return _GREASE_STEP * n + _GREASE_BASE


def is_grease_value(value: int) -> bool:
    """Whether ``value`` has the reserved form ``0x1f * N + 0x21``."""
    return value >= _GREASE_BASE and (value - _GREASE_BASE) % _GREASE_STEP == 0


def random_grease(random_bytes: Callable[[int], bytes], *, max_n: int = GREASE_MAX_N) -> int:
    """A reserved value ``0x1f * N + 0x21`` with N drawn from the injected ``random_bytes``.

    Args:
        random_bytes: The configuration's randomness source (``random_bytes(n) -> bytes``).
        max_n: Upper bound for N; a small bound keeps the varint short (``max_n=1`` gives
            a one-byte value, ``max_n=16`` fits two bytes).
    """
    if not 0 <= max_n <= GREASE_MAX_N:
        raise ValueError(f"max_n {max_n} out of range 0..{GREASE_MAX_N}")
    n = int.from_bytes(random_bytes(8), "big") % (max_n + 1)
    return grease_value(n)


def grease_error_code(n: int) -> int:
    """The ``n``-th reserved error code ``0x1f * n + 0x21`` (RFC 9114 §8.1)."""
    return grease_value(n)


def is_reserved_code(code: int) -> bool:
    """Whether ``code`` is a reserved (GREASE) error code, to be treated like H3_NO_ERROR."""
    return is_grease_value(code)


# --- exceptions ------------------------------------------------------------------------------


class H3Error(Exception):
    """A peer violated HTTP/3; the connection closes (or resets a stream) with ``error_code``.

    Attributes:
        reason: Human-readable detail for the CONNECTION_CLOSE reason phrase and logs.
        frame_type: The HTTP/3 frame type being processed, when known.
    """

    error_code: ClassVar[int] = ErrorCode.H3_GENERAL_PROTOCOL_ERROR
    #: True when the RFC makes this a stream error (reset the stream), not a connection error.
    stream_error: ClassVar[bool] = False

    def __init__(self, reason: str = "", *, frame_type: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.frame_type = frame_type


class GeneralProtocolError(H3Error):
    """H3_GENERAL_PROTOCOL_ERROR: a violation with no more specific code."""

    error_code = ErrorCode.H3_GENERAL_PROTOCOL_ERROR


class InternalError(H3Error):
    """H3_INTERNAL_ERROR."""

    error_code = ErrorCode.H3_INTERNAL_ERROR


class StreamCreationError(H3Error):
    """H3_STREAM_CREATION_ERROR: a stream the peer may not create (second control stream...)."""

    error_code = ErrorCode.H3_STREAM_CREATION_ERROR


class ClosedCriticalStreamError(H3Error):
    """H3_CLOSED_CRITICAL_STREAM: a control or QPACK stream was closed."""

    error_code = ErrorCode.H3_CLOSED_CRITICAL_STREAM


class FrameUnexpectedError(H3Error):
    """H3_FRAME_UNEXPECTED: a frame not permitted on this stream or in this state."""

    error_code = ErrorCode.H3_FRAME_UNEXPECTED


class FrameError(H3Error):
    """H3_FRAME_ERROR: a frame violating its layout (truncated, trailing bytes)."""

    error_code = ErrorCode.H3_FRAME_ERROR


class ExcessiveLoadError(H3Error):
    """H3_EXCESSIVE_LOAD: the peer asks us to hold more than our limits allow."""

    error_code = ErrorCode.H3_EXCESSIVE_LOAD


class IdError(H3Error):
    """H3_ID_ERROR: a stream or push ID used incorrectly."""

    error_code = ErrorCode.H3_ID_ERROR


class SettingsError(H3Error):
    """H3_SETTINGS_ERROR: a SETTINGS frame with invalid content."""

    error_code = ErrorCode.H3_SETTINGS_ERROR


class MissingSettingsError(H3Error):
    """H3_MISSING_SETTINGS: the control stream did not start with SETTINGS."""

    error_code = ErrorCode.H3_MISSING_SETTINGS


class MessageError(H3Error):
    """H3_MESSAGE_ERROR: a malformed request or response (a stream error, RFC 9114 §4.1.2)."""

    error_code = ErrorCode.H3_MESSAGE_ERROR
    stream_error = True


class DatagramError(H3Error):
    """H3_DATAGRAM_ERROR: an HTTP/3 datagram that cannot be parsed (RFC 9297 §2.1)."""

    error_code = ErrorCode.H3_DATAGRAM_ERROR


class QpackDecompressionFailedError(H3Error):
    """QPACK_DECOMPRESSION_FAILED: a field section the decoder cannot interpret."""

    error_code = ErrorCode.QPACK_DECOMPRESSION_FAILED


class QpackEncoderStreamError(H3Error):
    """QPACK_ENCODER_STREAM_ERROR: an invalid instruction on the peer's encoder stream."""

    error_code = ErrorCode.QPACK_ENCODER_STREAM_ERROR


class QpackDecoderStreamError(H3Error):
    """QPACK_DECODER_STREAM_ERROR: an invalid instruction on the peer's decoder stream."""

    error_code = ErrorCode.QPACK_DECODER_STREAM_ERROR
