"""QPACK error codes (RFC 9204 §6) and exceptions.

Every exception a peer can cause derives from :class:`QpackError` and carries the wire code
in :attr:`QpackError.error_code`:

* :class:`DecompressionFailed` (``QPACK_DECOMPRESSION_FAILED``, 0x0200): a field section
  could not be decoded (bad index, bad Huffman, truncated, impossible Required Insert Count,
  too many blocked streams).  Connection error.
* :class:`EncoderStreamError` (``QPACK_ENCODER_STREAM_ERROR``, 0x0201): a bad instruction on
  the peer's encoder stream.  Connection error.
* :class:`DecoderStreamError` (``QPACK_DECODER_STREAM_ERROR``, 0x0202): a bad instruction on
  the peer's decoder stream.  Connection error.
* :class:`FieldSectionTooLargeError` (``H3_MESSAGE_ERROR``, 0x010e): the decoded field section
  would exceed the decoder's ``max_field_section_size`` (RFC 9114 §4.2.2, counted as
  name + value + 32 per field line).  This is **not** a QPACK failure and not a connection
  error: the encoding was valid, the message is just bigger than we accept.  Decoding stops
  at the first field line that crosses the limit, so a "QPACK bomb" (a small section that
  references one huge dynamic entry many times) costs almost nothing.  RFC 9114 §10.5.1 says
  such a message may be treated as malformed, hence ``H3_MESSAGE_ERROR`` as a *stream* error
  (a server may answer 431 instead).  The exception carries :attr:`decoder_stream_data`: the
  Section Acknowledgment the decoder owes for the section (the section was received in
  full and every dynamic entry it needs had arrived), which the caller must send so the
  peer's encoder releases its references.

:class:`StreamBlocked` is not an error: the section needs dynamic table entries that have not
arrived yet; the decoder keeps it and ``Decoder.feed_encoder`` later names the stream.
"""

from __future__ import annotations

import enum
from typing import ClassVar

__all__ = [
    "DecoderStreamError",
    "DecompressionFailed",
    "EncoderStreamError",
    "EncodingError",
    "ErrorCode",
    "FieldSectionTooLargeError",
    "QpackError",
    "StreamBlocked",
]

H3_MESSAGE_ERROR = 0x010E


class ErrorCode(enum.IntEnum):
    """QPACK error codes, registered in the HTTP/3 error code registry (RFC 9204 §6)."""

    QPACK_DECOMPRESSION_FAILED = 0x0200
    QPACK_ENCODER_STREAM_ERROR = 0x0201
    QPACK_DECODER_STREAM_ERROR = 0x0202


class QpackError(Exception):
    """A peer sent QPACK data we cannot accept; :attr:`error_code` is the HTTP/3 code to send."""

    error_code: ClassVar[int]

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


# DecompressionFailed keeps pylsqpack's name although STYLE.md wants an ``Error`` suffix: the
# qpack API mirrors pylsqpack's so an HTTP/3 layer can take either, exceptions included (so
# does StreamBlocked, a signal rather than an error).  Names pylsqpack does not have
# (FieldSectionTooLargeError) follow STYLE.md.
class DecompressionFailed(QpackError):
    """An encoded field section is invalid (connection error QPACK_DECOMPRESSION_FAILED)."""

    error_code = ErrorCode.QPACK_DECOMPRESSION_FAILED


class EncoderStreamError(QpackError):
    """An encoder-stream instruction is invalid (connection error QPACK_ENCODER_STREAM_ERROR)."""

    error_code = ErrorCode.QPACK_ENCODER_STREAM_ERROR


class DecoderStreamError(QpackError):
    """A decoder-stream instruction is invalid (connection error QPACK_DECODER_STREAM_ERROR)."""

    error_code = ErrorCode.QPACK_DECODER_STREAM_ERROR


class FieldSectionTooLargeError(QpackError):
    """The decoded field section exceeds ``max_field_section_size`` (stream error).

    Attributes:
        decoder_stream_data: decoder-stream bytes to send (Section Acknowledgment and any
            pending Insert Count Increment); may be empty.
        limit: the decoder's ``max_field_section_size``.
    """

    error_code = H3_MESSAGE_ERROR

    def __init__(self, reason: str, *, decoder_stream_data: bytes, limit: int) -> None:
        super().__init__(reason)
        self.decoder_stream_data = decoder_stream_data
        self.limit = limit


class StreamBlocked(Exception):
    """The field section needs dynamic table entries that have not arrived yet."""


class EncodingError(ValueError):
    """Internal: malformed primitive (integer overflow, bad Huffman, impossible length).

    Raised by the primitive codecs; each entry point maps it to the error of its stream.
    """
