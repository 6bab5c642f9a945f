"""QUIC frame bytes: hot-path parsers and writers, and the generic codec (RFC 9000 §19, RFC 9221).

Two levels:

* **Hot path**, no object per frame.  The parsers (:func:`parse_stream`, :func:`parse_ack`,
  :func:`parse_crypto`, :func:`parse_datagram`, :func:`skip_padding`) take the payload and the
  position just after the frame type and return plain tuples ending with the new position
  (data slices are zero-copy views of a ``memoryview`` payload); :func:`decode_frame_body`
  takes any other frame; the writers append straight to a ``bytearray``.

* **Generic**: :func:`decode_frame` / :func:`decode_frames` build the value classes of
  :mod:`._frames` (on top of the hot-path parsers), :func:`encode_frame` writes any of them
  and :func:`encoded_size` says how many bytes that takes.

Every malformed or truncated input raises :class:`FrameEncodingError` carrying the frame type
(RFC 9000 §12.4, §19); a frame type not in its shortest varint form raises
:class:`ProtocolViolation`.  No ``IndexError``, ``struct.error`` or ``BufferReadError`` escapes.
Encoding invalid values (caller misuse) raises ``ValueError``.

ACK frames: a decoded ACK keeps at most :data:`MAX_ACK_RANGES` ranges, the newest ones.  Every
range is still parsed and validated (the work is bounded by the packet size, and a range
count larger than the bytes left fails at once), but older ranges beyond the cap are dropped
silently: a peer may legitimately acknowledge many ranges, and losing the oldest only risks a
spurious retransmission.
"""

from __future__ import annotations

from typing import Final, TypeVar

from .._buffer import VARINT_MAX, BufferReadError, Writer, decode_varint, encode_varint, varint_size
from ._errors import FrameEncodingError, ProtocolViolation
from ._frames import (
    _KNOWN,
    AckFrame,
    ConnectionCloseFrame,
    CryptoFrame,
    DataBlockedFrame,
    DatagramFrame,
    Frame,
    HandshakeDoneFrame,
    MaxDataFrame,
    MaxStreamDataFrame,
    MaxStreamsFrame,
    NewConnectionIdFrame,
    NewTokenFrame,
    PaddingFrame,
    PathChallengeFrame,
    PathResponseFrame,
    PingFrame,
    ResetStreamFrame,
    RetireConnectionIdFrame,
    StopSendingFrame,
    StreamDataBlockedFrame,
    StreamFrame,
    StreamsBlockedFrame,
)

__all__ = [
    "MAX_ACK_RANGES",
    "MAX_STREAMS_LIMIT",
    "ack_frame_size",
    "crypto_data_capacity",
    "decode_frame",
    "decode_frame_body",
    "decode_frames",
    "encode_frame",
    "encoded_size",
    "parse_ack",
    "parse_crypto",
    "parse_datagram",
    "parse_stream",
    "read_frame_type",
    "skip_padding",
    "stream_data_capacity",
    "stream_frame_header",
    "stream_frame_overhead",
    "write_ack_frame",
    "write_crypto_frame",
    "write_datagram_frame",
    "write_stream_frame",
]

MAX_ACK_RANGES: Final = 256
"""Most ACK ranges a decoded ACK frame keeps (the newest; older ones are dropped)."""

MAX_STREAMS_LIMIT: Final = 1 << 60
"""Largest value of MAX_STREAMS / STREAMS_BLOCKED (RFC 9000 §19.11, §19.14)."""

_Buf = TypeVar("_Buf", bytes, bytearray, memoryview)
_AnyBuf = bytes | bytearray | memoryview

_PING: Final = PingFrame()
_HANDSHAKE_DONE: Final = HandshakeDoneFrame()
_RESET_TOKEN_LENGTH: Final = 16
_PATH_DATA_LENGTH: Final = 8
_MAX_CID_LENGTH: Final = 20


# --------------------------------------------------------------------------------------------
# Hot-path parsers


def read_frame_type(buf: _AnyBuf, pos: int) -> tuple[int, int]:
    """Read the frame type at ``buf[pos]``; return ``(frame_type, position after it)``.

    Raises:
        FrameEncodingError: Truncated or unknown frame type (RFC 9000 §12.4).
        ProtocolViolation: The type is not in its shortest varint encoding (RFC 9000 §12.4).
    """
    try:
        first = buf[pos]
    except IndexError:
        raise FrameEncodingError("frame type past the end of the payload") from None
    if first < 0x40:
        if _KNOWN[first]:
            return first, pos + 1
        raise FrameEncodingError(f"unknown frame type 0x{first:02x}", frame_type=first)
    try:
        value, end = decode_varint(buf, pos)
    except BufferReadError:
        raise FrameEncodingError("truncated frame type") from None
    if end - pos != varint_size(value):
        raise ProtocolViolation(
            f"frame type 0x{value:x} not in its shortest encoding", frame_type=value
        )
    # every defined frame type fits in one byte, so any longer shortest-form type is unknown
    raise FrameEncodingError(f"unknown frame type 0x{value:x}", frame_type=value)


def skip_padding(buf: _AnyBuf, pos: int) -> int:
    """Skip a run of PADDING; ``pos`` is just after the first 0x00 byte.

    Returns:
        The position of the first non-zero byte after the run (or the end of ``buf``).
    """
    end = len(buf)
    if pos >= end or buf[pos]:
        return pos
    # Probe geometrically growing windows: the cost stays proportional to the run length,
    # and int.from_bytes finds the first non-zero byte of a window at C speed.
    size = 32
    while pos < end:
        stop = pos + size
        if stop > end:
            stop = end
        value = int.from_bytes(buf[pos:stop], "big")
        if value:
            return stop - ((value.bit_length() + 7) >> 3)
        pos = stop
        size <<= 3
    return end


def parse_stream(buf: _Buf, pos: int, frame_type: int) -> tuple[int, int, _Buf, bool, int]:
    """Parse a STREAM frame body (RFC 9000 §19.8); ``pos`` is just after the type.

    Returns:
        ``(stream_id, offset, data, fin, new_pos)``; ``data`` is a slice of ``buf`` (a
        zero-copy view when ``buf`` is a memoryview).  Without the LEN bit the data runs to
        the end of ``buf``.

    Raises:
        FrameEncodingError: Truncated, or offset + length exceeds 2**62-1.
    """
    try:  # one- and two-byte varints decoded inline: a STREAM frame is parsed per packet
        first = buf[pos]
        if first < 0x40:
            stream_id = first
            pos += 1
        elif first < 0x80:
            stream_id = (first & 0x3F) << 8 | buf[pos + 1]
            pos += 2
        else:
            stream_id, pos = decode_varint(buf, pos)
        offset = 0
        if frame_type & 0x04:
            first = buf[pos]
            if first < 0x40:
                offset = first
                pos += 1
            elif first < 0x80:
                offset = (first & 0x3F) << 8 | buf[pos + 1]
                pos += 2
            else:
                offset, pos = decode_varint(buf, pos)
        if frame_type & 0x02:
            first = buf[pos]
            if first < 0x40:
                length = first
                pos += 1
            elif first < 0x80:
                length = (first & 0x3F) << 8 | buf[pos + 1]
                pos += 2
            else:
                length, pos = decode_varint(buf, pos)
            end = pos + length
            if end > len(buf):
                raise FrameEncodingError("STREAM data past the end", frame_type=frame_type)
        else:
            end = len(buf)
    except (BufferReadError, IndexError):
        raise FrameEncodingError("truncated STREAM frame", frame_type=frame_type) from None
    if offset + end - pos > VARINT_MAX:
        raise FrameEncodingError("STREAM offset + length above 2**62-1", frame_type=frame_type)
    return stream_id, offset, buf[pos:end], bool(frame_type & 0x01), end


def parse_crypto(buf: _Buf, pos: int) -> tuple[int, _Buf, int]:
    """Parse a CRYPTO frame body (RFC 9000 §19.6); return ``(offset, data, new_pos)``.

    Raises:
        FrameEncodingError: Truncated, or offset + length exceeds 2**62-1.
    """
    try:
        offset, pos = decode_varint(buf, pos)
        length, pos = decode_varint(buf, pos)
    except BufferReadError:
        raise FrameEncodingError("truncated CRYPTO frame", frame_type=0x06) from None
    end = pos + length
    if end > len(buf):
        raise FrameEncodingError("CRYPTO data past the end", frame_type=0x06)
    if offset + length > VARINT_MAX:
        raise FrameEncodingError("CRYPTO offset + length above 2**62-1", frame_type=0x06)
    return offset, buf[pos:end], end


def parse_datagram(buf: _Buf, pos: int, frame_type: int) -> tuple[_Buf, int]:
    """Parse a DATAGRAM frame body (RFC 9221 §4); return ``(data, new_pos)``.

    Type 0x30 has no Length field: the datagram runs to the end of ``buf``.

    Raises:
        FrameEncodingError: Truncated.
    """
    if frame_type & 0x01:
        try:
            length, pos = decode_varint(buf, pos)
        except BufferReadError:
            raise FrameEncodingError("truncated DATAGRAM frame", frame_type=frame_type) from None
        end = pos + length
        if end > len(buf):
            raise FrameEncodingError("DATAGRAM data past the end", frame_type=frame_type)
    else:
        end = len(buf)
    return buf[pos:end], end


def parse_ack(
    buf: _AnyBuf, pos: int, frame_type: int
) -> tuple[tuple[tuple[int, int], ...], int, tuple[int, int, int] | None, int]:
    """Parse an ACK / ACK_ECN frame body (RFC 9000 §19.3); ``pos`` is just after the type.

    Returns:
        ``(ranges, ack_delay, ecn_counts, new_pos)``: ``ranges`` as inclusive
        ``(smallest, largest)`` pairs, newest first, at most :data:`MAX_ACK_RANGES` of them;
        ``ack_delay`` still encoded; ``ecn_counts`` None for type 0x02.

    Raises:
        FrameEncodingError: Truncated, or a range reaches below packet number 0.
    """
    try:
        # the fields of the usual ACK fit in one or two bytes: decoded inline
        byte = buf[pos]
        if byte < 0x40:
            largest = byte
            pos += 1
        elif byte < 0x80:
            largest = (byte & 0x3F) << 8 | buf[pos + 1]
            pos += 2
        else:
            largest, pos = decode_varint(buf, pos)
        byte = buf[pos]
        if byte < 0x40:
            ack_delay = byte
            pos += 1
        elif byte < 0x80:
            ack_delay = (byte & 0x3F) << 8 | buf[pos + 1]
            pos += 2
        else:
            ack_delay, pos = decode_varint(buf, pos)
        byte = buf[pos]
        if byte < 0x40:
            count = byte
            pos += 1
        else:
            count, pos = decode_varint(buf, pos)
        byte = buf[pos]
        if byte < 0x40:
            first = byte
            pos += 1
        else:
            first, pos = decode_varint(buf, pos)
        smallest = largest - first
        if not count and not frame_type & 0x01 and smallest >= 0:
            return ((smallest, largest),), ack_delay, None, pos  # one range, no ECN counts
        if smallest < 0:
            raise FrameEncodingError("ACK range below packet number 0", frame_type=frame_type)
        # each further range takes at least two bytes: refuse impossible counts up front
        if count > (len(buf) - pos) >> 1:
            raise FrameEncodingError("ACK range count exceeds the frame", frame_type=frame_type)
        ranges = [(smallest, largest)]
        for _ in range(count):
            gap, pos = decode_varint(buf, pos)
            length, pos = decode_varint(buf, pos)
            largest = smallest - gap - 2
            smallest = largest - length
            if smallest < 0:
                raise FrameEncodingError(
                    "ACK range below packet number 0", frame_type=frame_type
                )
            if len(ranges) < MAX_ACK_RANGES:
                ranges.append((smallest, largest))
        ecn_counts = None
        if frame_type & 0x01:
            ect0, pos = decode_varint(buf, pos)
            ect1, pos = decode_varint(buf, pos)
            ce, pos = decode_varint(buf, pos)
            ecn_counts = (ect0, ect1, ce)
    except (BufferReadError, IndexError):
        raise FrameEncodingError("truncated ACK frame", frame_type=frame_type) from None
    return tuple(ranges), ack_delay, ecn_counts, pos


# --------------------------------------------------------------------------------------------
# Hot-path writers


def stream_frame_overhead(
    stream_id: int, offset: int, length: int, *, with_length: bool = True
) -> int:
    """Bytes a STREAM frame takes besides its data (type, stream ID, offset, length)."""
    size = 1 + varint_size(stream_id)
    if offset:
        size += varint_size(offset)
    if with_length:
        size += varint_size(length)
    return size


def stream_data_capacity(
    stream_id: int, offset: int, space: int, *, with_length: bool = True
) -> int:
    """Most data bytes a STREAM frame can carry within ``space`` bytes.

    Returns:
        The largest ``n`` with ``stream_frame_overhead(..., n) + n <= space``, or -1 when not
        even an empty frame fits.
    """
    remaining = space - 1 - varint_size(stream_id)
    if offset:
        remaining -= varint_size(offset)
    return _data_capacity(remaining, with_length)


def crypto_data_capacity(offset: int, space: int) -> int:
    """Most data bytes a CRYPTO frame at ``offset`` can carry within ``space`` (-1: none)."""
    return _data_capacity(space - 1 - varint_size(offset), True)


def _data_capacity(remaining: int, with_length: bool) -> int:
    if not with_length:
        return remaining if remaining >= 0 else -1
    # the Length field's own size depends on the length: take the best of each varint width
    best = -1
    for width, limit in ((1, 0x3F), (2, 0x3FFF), (4, 0x3FFFFFFF), (8, VARINT_MAX)):
        n = min(remaining - width, limit)
        if n > best:
            best = n
        if remaining - width <= limit:
            break
    return best


def stream_frame_header(
    stream_id: int, offset: int, length: int, fin: bool, *, with_length: bool = True
) -> bytes:
    """The bytes of a STREAM frame before its data (OFF set only for a non-zero offset).

    Raises:
        ValueError: A field does not fit in a varint, or offset + length exceeds 2**62-1.
    """
    if offset + length > VARINT_MAX:
        raise ValueError("STREAM offset + length above 2**62-1")
    frame_type = 0x08
    if fin:
        frame_type |= 0x01
    if with_length:
        frame_type |= 0x02
    if offset:
        header = bytes((frame_type | 0x04,)) + encode_varint(stream_id) + encode_varint(offset)
    else:
        header = bytes((frame_type,)) + encode_varint(stream_id)
    if with_length:
        header += encode_varint(length)
    return header


def write_stream_frame(
    buf: bytearray,
    stream_id: int,
    offset: int,
    data: _AnyBuf,
    fin: bool,
    *,
    with_length: bool = True,
) -> None:
    """Append a STREAM frame to ``buf``; omit the Length field only for a packet's last frame.

    Raises:
        ValueError: As :func:`stream_frame_header`.
    """
    buf += stream_frame_header(stream_id, offset, len(data), fin, with_length=with_length)
    buf += data


def write_crypto_frame(buf: bytearray, offset: int, data: _AnyBuf) -> None:
    """Append a CRYPTO frame to ``buf``.

    Raises:
        ValueError: offset + length exceeds 2**62-1.
    """
    if offset + len(data) > VARINT_MAX:
        raise ValueError("CRYPTO offset + length above 2**62-1")
    buf.append(0x06)
    buf += encode_varint(offset)
    buf += encode_varint(len(data))
    buf += data


def write_datagram_frame(buf: bytearray, data: _AnyBuf, *, with_length: bool = True) -> None:
    """Append a DATAGRAM frame (0x31, or 0x30 without length for a packet's last frame)."""
    if with_length:
        buf.append(0x31)
        buf += encode_varint(len(data))
    else:
        buf.append(0x30)
    buf += data


def write_ack_frame(
    buf: bytearray,
    ranges: tuple[tuple[int, int], ...],
    ack_delay: int,
    ecn_counts: tuple[int, int, int] | None = None,
    *,
    capacity: int | None = None,
) -> int:
    """Append an ACK (or ACK_ECN) frame for ``ranges`` to ``buf``.

    Args:
        buf: Destination.
        ranges: Inclusive ``(smallest, largest)`` pairs, newest first, separated by at least
            one missing packet number.
        ack_delay: The encoded ACK delay.
        ecn_counts: (ECT0, ECT1, ECN-CE) for ACK_ECN, or None.
        capacity: If given, the frame takes at most this many bytes: the oldest ranges that
            do not fit are left out (RFC 9000 §13.2.3).

    Returns:
        How many ranges were written; 0 (and nothing written) when not even the newest fits.

    Raises:
        ValueError: ``ranges`` is empty, badly ordered or overlapping, or a value does not
            fit in a varint.
    """
    if not ranges:
        raise ValueError("an ACK frame needs at least one range")
    smallest, largest = ranges[0]
    if not 0 <= smallest <= largest:
        raise ValueError(f"bad ACK range {ranges[0]}")
    if len(ranges) == 1 and ecn_counts is None:
        # the usual ACK: one range, no ECN counts
        frame = (b"\x02" + encode_varint(largest) + encode_varint(ack_delay) + b"\x00"
                 + encode_varint(largest - smallest))
        if capacity is not None and len(frame) > capacity:
            return 0
        buf += frame
        return 1
    if ecn_counts is None:
        head = b"\x02" + encode_varint(largest) + encode_varint(ack_delay)
        tail = b""
    else:
        head = b"\x03" + encode_varint(largest) + encode_varint(ack_delay)
        tail = b"".join(encode_varint(count) for count in ecn_counts)
    body = encode_varint(largest - smallest)
    extra = 0
    fixed = len(head) + len(tail)
    for index in range(1, len(ranges)):
        low, high = ranges[index]
        gap = smallest - high - 2
        if gap < 0 or low > high or low < 0:
            raise ValueError(f"ACK ranges out of order or overlapping at {ranges[index]}")
        piece = encode_varint(gap) + encode_varint(high - low)
        if capacity is not None and (
            fixed + varint_size(extra + 1) + len(body) + len(piece) > capacity
        ):
            break
        body += piece
        extra += 1
        smallest = low
    if capacity is not None and fixed + varint_size(extra) + len(body) > capacity:
        return 0
    buf += head
    buf += encode_varint(extra)
    buf += body
    buf += tail
    return extra + 1


def ack_frame_size(
    ranges: tuple[tuple[int, int], ...],
    ack_delay: int,
    ecn_counts: tuple[int, int, int] | None = None,
) -> int:
    """Bytes :func:`write_ack_frame` takes for all of ``ranges`` (no validation)."""
    smallest, largest = ranges[0]
    size = 1 + varint_size(largest) + varint_size(ack_delay) + varint_size(len(ranges) - 1)
    size += varint_size(largest - smallest)
    for low, high in ranges[1:]:
        size += varint_size(smallest - high - 2) + varint_size(high - low)
        smallest = low
    if ecn_counts is not None:
        size += sum(varint_size(count) for count in ecn_counts)
    return size


# --------------------------------------------------------------------------------------------
# Generic decoding into frame values


def _take(buf: memoryview, pos: int, length: int) -> tuple[bytes, int]:
    end = pos + length
    if end > len(buf):
        raise BufferReadError("field past the end of the frame")
    return bytes(buf[pos:end]), end


def _decode_body(buf: memoryview, pos: int, frame_type: int) -> tuple[Frame, int]:
    """Decode one frame body; BufferReadError is mapped by the caller."""
    if 0x08 <= frame_type <= 0x0F:
        stream_id, offset, data, fin, pos = parse_stream(buf, pos, frame_type)
        return StreamFrame(stream_id=stream_id, offset=offset, data=bytes(data), fin=fin), pos
    if frame_type == 0x00:
        end = skip_padding(buf, pos)
        return PaddingFrame(length=end - pos + 1), end
    if frame_type == 0x02 or frame_type == 0x03:
        ranges, ack_delay, ecn_counts, pos = parse_ack(buf, pos, frame_type)
        return AckFrame(ranges=ranges, ack_delay=ack_delay, ecn_counts=ecn_counts), pos
    if frame_type == 0x06:
        offset, data, pos = parse_crypto(buf, pos)
        return CryptoFrame(offset=offset, data=bytes(data)), pos
    if frame_type == 0x30 or frame_type == 0x31:
        data, pos = parse_datagram(buf, pos, frame_type)
        return DatagramFrame(data=bytes(data)), pos
    if frame_type == 0x01:
        return _PING, pos
    if frame_type == 0x1E:
        return _HANDSHAKE_DONE, pos
    if frame_type == 0x1A or frame_type == 0x1B:
        challenge, pos = _take(buf, pos, _PATH_DATA_LENGTH)
        if frame_type == 0x1A:
            return PathChallengeFrame(data=challenge), pos
        return PathResponseFrame(data=challenge), pos
    first, pos = decode_varint(buf, pos)
    if frame_type == 0x10:
        return MaxDataFrame(maximum_data=first), pos
    if frame_type == 0x14:
        return DataBlockedFrame(maximum_data=first), pos
    if frame_type == 0x19:
        return RetireConnectionIdFrame(sequence_number=first), pos
    if 0x12 <= frame_type <= 0x13 or 0x16 <= frame_type <= 0x17:
        if first > MAX_STREAMS_LIMIT:
            raise FrameEncodingError("stream limit above 2**60", frame_type=frame_type)
        bidirectional = not frame_type & 0x01
        if frame_type <= 0x13:
            return MaxStreamsFrame(bidirectional=bidirectional, maximum_streams=first), pos
        return StreamsBlockedFrame(bidirectional=bidirectional, maximum_streams=first), pos
    if frame_type == 0x07:
        if first == 0:
            raise FrameEncodingError("empty NEW_TOKEN token", frame_type=frame_type)
        token, pos = _take(buf, pos, first)
        return NewTokenFrame(token=token), pos
    if frame_type == 0x1C or frame_type == 0x1D:
        trigger: int | None = None
        if frame_type == 0x1C:
            trigger, pos = decode_varint(buf, pos)
        length, pos = decode_varint(buf, pos)
        reason, pos = _take(buf, pos, length)
        return ConnectionCloseFrame(error_code=first, frame_type=trigger, reason_phrase=reason), pos
    second, pos = decode_varint(buf, pos)
    if frame_type == 0x04:
        final_size, pos = decode_varint(buf, pos)
        return ResetStreamFrame(stream_id=first, error_code=second, final_size=final_size), pos
    if frame_type == 0x05:
        return StopSendingFrame(stream_id=first, error_code=second), pos
    if frame_type == 0x11:
        return MaxStreamDataFrame(stream_id=first, maximum_stream_data=second), pos
    if frame_type == 0x15:
        return StreamDataBlockedFrame(stream_id=first, maximum_stream_data=second), pos
    if frame_type == 0x18:
        if second > first:
            raise FrameEncodingError(
                "NEW_CONNECTION_ID retire_prior_to above sequence_number", frame_type=frame_type
            )
        if pos >= len(buf):
            raise BufferReadError("NEW_CONNECTION_ID length past the end")
        length = buf[pos]
        if not 1 <= length <= _MAX_CID_LENGTH:
            raise FrameEncodingError(
                f"NEW_CONNECTION_ID length {length} outside 1..20", frame_type=frame_type
            )
        cid, pos = _take(buf, pos + 1, length)
        token, pos = _take(buf, pos, _RESET_TOKEN_LENGTH)
        return NewConnectionIdFrame(
            sequence_number=first, retire_prior_to=second, connection_id=cid,
            stateless_reset_token=token,
        ), pos
    raise FrameEncodingError(f"unknown frame type 0x{frame_type:x}", frame_type=frame_type)


def decode_frame_body(buf: _AnyBuf, pos: int, frame_type: int) -> tuple[Frame, int]:
    """Decode the body of a frame of type ``frame_type`` starting at ``pos``.

    ``pos`` is just after the frame type (as returned by :func:`read_frame_type`).

    Returns:
        ``(frame, new_pos)``; byte fields are copied into ``bytes``.

    Raises:
        FrameEncodingError: Truncated or malformed frame, or unknown type.
    """
    view = buf if isinstance(buf, memoryview) else memoryview(buf)
    try:
        return _decode_body(view, pos, frame_type)
    except BufferReadError:
        raise FrameEncodingError(
            f"truncated frame of type 0x{frame_type:02x}", frame_type=frame_type
        ) from None


def decode_frame(buf: _AnyBuf, pos: int = 0) -> tuple[Frame, int]:
    """Decode the frame starting at ``buf[pos]`` (its type included); return ``(frame, new_pos)``.

    Raises:
        FrameEncodingError: Truncated, malformed or unknown frame.
        ProtocolViolation: Frame type not in its shortest encoding.
    """
    frame_type, pos = read_frame_type(buf, pos)
    return decode_frame_body(buf, pos, frame_type)


def decode_frames(payload: _AnyBuf) -> list[Frame]:
    """Decode every frame of a packet payload, in order.

    Consecutive PADDING bytes come back as one :class:`PaddingFrame`.  An empty payload gives
    an empty list; rejecting a packet without frames (PROTOCOL_VIOLATION, RFC 9000 §12.4) is
    the caller's job.

    Raises:
        FrameEncodingError: Truncated, malformed or unknown frame.
        ProtocolViolation: Frame type not in its shortest encoding.
    """
    view = payload if isinstance(payload, memoryview) else memoryview(payload)
    frames: list[Frame] = []
    pos, end = 0, len(view)
    while pos < end:
        frame_type, pos = read_frame_type(view, pos)
        frame, pos = decode_frame_body(view, pos, frame_type)
        frames.append(frame)
    return frames


# --------------------------------------------------------------------------------------------
# Generic encoding


def _check_stream_limit(value: int) -> None:
    if not 0 <= value <= MAX_STREAMS_LIMIT:
        raise ValueError(f"stream limit {value} outside 0..2**60")


def _check_new_connection_id(frame: NewConnectionIdFrame) -> None:
    if not 1 <= len(frame.connection_id) <= _MAX_CID_LENGTH:
        raise ValueError("connection ID must be 1 to 20 bytes")
    if len(frame.stateless_reset_token) != _RESET_TOKEN_LENGTH:
        raise ValueError("stateless reset token must be 16 bytes")
    if frame.retire_prior_to > frame.sequence_number:
        raise ValueError("retire_prior_to above sequence_number")


def encode_frame(writer: Writer, frame: Frame) -> None:
    """Append ``frame`` to ``writer`` (STREAM and DATAGRAM always with their Length field).

    Raises:
        ValueError: A field is out of range (varint overflow, wrong token or challenge size,
            empty NEW_TOKEN, zero-length PADDING, disordered ACK ranges ...).
    """
    buf = writer.buffer
    match frame:
        case StreamFrame(stream_id=stream_id, offset=offset, data=data, fin=fin):
            write_stream_frame(buf, stream_id, offset, data, fin)
        case AckFrame(ranges=ranges, ack_delay=ack_delay, ecn_counts=ecn_counts):
            write_ack_frame(buf, ranges, ack_delay, ecn_counts)
        case PaddingFrame(length=length):
            if length < 1:
                raise ValueError("PADDING length must be at least 1")
            buf += bytes(length)
        case CryptoFrame(offset=offset, data=data):
            write_crypto_frame(buf, offset, data)
        case DatagramFrame(data=data):
            write_datagram_frame(buf, data)
        case PingFrame():
            buf.append(0x01)
        case HandshakeDoneFrame():
            buf.append(0x1E)
        case ResetStreamFrame(stream_id=stream_id, error_code=error_code, final_size=size):
            buf += (b"\x04" + encode_varint(stream_id) + encode_varint(error_code)
                    + encode_varint(size))
        case StopSendingFrame(stream_id=stream_id, error_code=error_code):
            buf += b"\x05" + encode_varint(stream_id) + encode_varint(error_code)
        case NewTokenFrame(token=token):
            if not token:
                raise ValueError("NEW_TOKEN token must not be empty")
            buf += b"\x07" + encode_varint(len(token)) + token
        case MaxDataFrame(maximum_data=maximum):
            buf += b"\x10" + encode_varint(maximum)
        case MaxStreamDataFrame(stream_id=stream_id, maximum_stream_data=maximum):
            buf += b"\x11" + encode_varint(stream_id) + encode_varint(maximum)
        case MaxStreamsFrame(bidirectional=bidi, maximum_streams=maximum):
            _check_stream_limit(maximum)
            buf += (b"\x12" if bidi else b"\x13") + encode_varint(maximum)
        case DataBlockedFrame(maximum_data=maximum):
            buf += b"\x14" + encode_varint(maximum)
        case StreamDataBlockedFrame(stream_id=stream_id, maximum_stream_data=maximum):
            buf += b"\x15" + encode_varint(stream_id) + encode_varint(maximum)
        case StreamsBlockedFrame(bidirectional=bidi, maximum_streams=maximum):
            _check_stream_limit(maximum)
            buf += (b"\x16" if bidi else b"\x17") + encode_varint(maximum)
        case NewConnectionIdFrame():
            _check_new_connection_id(frame)
            buf += (b"\x18" + encode_varint(frame.sequence_number)
                    + encode_varint(frame.retire_prior_to)
                    + bytes((len(frame.connection_id),)) + frame.connection_id
                    + frame.stateless_reset_token)
        case RetireConnectionIdFrame(sequence_number=sequence_number):
            buf += b"\x19" + encode_varint(sequence_number)
        case PathChallengeFrame(data=data) | PathResponseFrame(data=data):
            if len(data) != _PATH_DATA_LENGTH:
                raise ValueError("PATH_CHALLENGE/PATH_RESPONSE data must be 8 bytes")
            buf += (b"\x1a" if isinstance(frame, PathChallengeFrame) else b"\x1b") + data
        case ConnectionCloseFrame(error_code=code, frame_type=trigger, reason_phrase=reason):
            if trigger is None:
                buf += b"\x1d" + encode_varint(code)
            else:
                buf += b"\x1c" + encode_varint(code) + encode_varint(trigger)
            buf += encode_varint(len(reason)) + reason
        case _:  # pragma: no cover - exhaustive over Frame
            raise TypeError(f"not a QUIC frame: {frame!r}")


def encoded_size(frame: Frame) -> int:
    """Bytes :func:`encode_frame` writes for ``frame`` (fields assumed valid)."""
    match frame:
        case StreamFrame(stream_id=stream_id, offset=offset, data=data):
            return stream_frame_overhead(stream_id, offset, len(data)) + len(data)
        case AckFrame(ranges=ranges, ack_delay=ack_delay, ecn_counts=ecn_counts):
            return ack_frame_size(ranges, ack_delay, ecn_counts)
        case PaddingFrame(length=length):
            return length
        case CryptoFrame(offset=offset, data=data):
            return 1 + varint_size(offset) + varint_size(len(data)) + len(data)
        case DatagramFrame(data=data) | NewTokenFrame(token=data):
            return 1 + varint_size(len(data)) + len(data)
        case PingFrame() | HandshakeDoneFrame():
            return 1
        case ResetStreamFrame(stream_id=stream_id, error_code=error_code, final_size=size):
            return 1 + varint_size(stream_id) + varint_size(error_code) + varint_size(size)
        case (StopSendingFrame(stream_id=first, error_code=second)
              | MaxStreamDataFrame(stream_id=first, maximum_stream_data=second)
              | StreamDataBlockedFrame(stream_id=first, maximum_stream_data=second)):
            return 1 + varint_size(first) + varint_size(second)
        case (MaxDataFrame(maximum_data=value) | DataBlockedFrame(maximum_data=value)
              | MaxStreamsFrame(maximum_streams=value)
              | StreamsBlockedFrame(maximum_streams=value)
              | RetireConnectionIdFrame(sequence_number=value)):
            return 1 + varint_size(value)
        case NewConnectionIdFrame():
            return (1 + varint_size(frame.sequence_number) + varint_size(frame.retire_prior_to)
                    + 1 + len(frame.connection_id) + _RESET_TOKEN_LENGTH)
        case PathChallengeFrame() | PathResponseFrame():
            return 1 + _PATH_DATA_LENGTH
        case ConnectionCloseFrame(error_code=code, frame_type=trigger, reason_phrase=reason):
            size = 1 + varint_size(code) + varint_size(len(reason)) + len(reason)
            return size if trigger is None else size + varint_size(trigger)
        case _:  # pragma: no cover - exhaustive over Frame
            raise TypeError(f"not a QUIC frame: {frame!r}")
