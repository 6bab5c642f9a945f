"""QUIC error codes (RFC 9000 §20.1) and the core's exception classes.

Two families:

* :class:`TransportError` and its subclasses are *remote violations*.  They are raised deep in
  parsing and caught at one boundary per entry point of the connection, which turns them into
  CONNECTION_CLOSE with :attr:`TransportError.error_code` (and the offending frame type).
  They never escape ``receive_datagram``.
* :class:`QuicError` and its subclasses are *caller misuse* and raise at once.
"""

from __future__ import annotations

import enum
from typing import ClassVar

__all__ = [
    "CRYPTO_ERROR_FIRST",
    "CRYPTO_ERROR_LAST",
    "ConnectionIdLimitError",
    "CryptoError",
    "FinalSizeError",
    "FlowControlError",
    "FrameEncodingError",
    "InternalError",
    "InvalidTokenError",
    "KeyUpdateError",
    "ProtocolViolation",
    "QuicError",
    "StreamLimitError",
    "StreamStateError",
    "StreamStateViolation",
    "TransportError",
    "TransportErrorCode",
    "TransportParameterError",
    "crypto_error_code",
]

CRYPTO_ERROR_FIRST = 0x0100
CRYPTO_ERROR_LAST = 0x01FF


class TransportErrorCode(enum.IntEnum):
    """Transport error codes (RFC 9000 §20.1, RFC 9368 §10.2).

    ``CRYPTO_ERROR`` is the first of the range 0x0100-0x01ff: the TLS alert number is added
    to it (:func:`crypto_error_code`).
    """

    NO_ERROR = 0x00
    INTERNAL_ERROR = 0x01
    CONNECTION_REFUSED = 0x02
    FLOW_CONTROL_ERROR = 0x03
    STREAM_LIMIT_ERROR = 0x04
    STREAM_STATE_ERROR = 0x05
    FINAL_SIZE_ERROR = 0x06
    FRAME_ENCODING_ERROR = 0x07
    TRANSPORT_PARAMETER_ERROR = 0x08
    CONNECTION_ID_LIMIT_ERROR = 0x09
    PROTOCOL_VIOLATION = 0x0A
    INVALID_TOKEN = 0x0B
    APPLICATION_ERROR = 0x0C
    CRYPTO_BUFFER_EXCEEDED = 0x0D
    KEY_UPDATE_ERROR = 0x0E
    AEAD_LIMIT_REACHED = 0x0F
    NO_VIABLE_PATH = 0x10
    VERSION_NEGOTIATION_ERROR = 0x11
    CRYPTO_ERROR = CRYPTO_ERROR_FIRST


def crypto_error_code(alert: int) -> int:
    """The transport error code for TLS alert ``alert`` (RFC 9001 §4.8)."""
    if not 0 <= alert <= 0xFF:
        raise ValueError(f"TLS alert {alert} out of range")
    return CRYPTO_ERROR_FIRST + alert


class TransportError(Exception):
    """A peer violated the protocol; closes the connection with :attr:`error_code`."""

    error_code: ClassVar[int] = TransportErrorCode.PROTOCOL_VIOLATION

    def __init__(self, reason: str = "", *, frame_type: int | None = None,
                 error_code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.frame_type = frame_type
        if error_code is not None:
            self.error_code = error_code  # type: ignore[misc]


class InternalError(TransportError):
    error_code = TransportErrorCode.INTERNAL_ERROR


class FlowControlError(TransportError):
    error_code = TransportErrorCode.FLOW_CONTROL_ERROR


class StreamLimitError(TransportError):
    error_code = TransportErrorCode.STREAM_LIMIT_ERROR


class StreamStateViolation(TransportError):
    """The peer used a stream in a state that forbids it (STREAM_STATE_ERROR on the wire)."""

    error_code = TransportErrorCode.STREAM_STATE_ERROR


class FinalSizeError(TransportError):
    error_code = TransportErrorCode.FINAL_SIZE_ERROR


class FrameEncodingError(TransportError):
    error_code = TransportErrorCode.FRAME_ENCODING_ERROR


class TransportParameterError(TransportError):
    error_code = TransportErrorCode.TRANSPORT_PARAMETER_ERROR


class ConnectionIdLimitError(TransportError):
    error_code = TransportErrorCode.CONNECTION_ID_LIMIT_ERROR


class ProtocolViolation(TransportError):
    error_code = TransportErrorCode.PROTOCOL_VIOLATION


class InvalidTokenError(TransportError):
    error_code = TransportErrorCode.INVALID_TOKEN


class KeyUpdateError(TransportError):
    error_code = TransportErrorCode.KEY_UPDATE_ERROR


class CryptoError(TransportError):
    """TLS failed with ``alert``; the wire code is 0x0100 + alert."""

    def __init__(self, alert: int, reason: str = "") -> None:
        super().__init__(reason, error_code=crypto_error_code(alert))
        self.alert = alert


class QuicError(Exception):
    """The caller used the API wrongly (raised at once, nothing goes on the wire)."""


class StreamStateError(QuicError):
    """The stream does not exist here or is in a state that forbids the command."""
