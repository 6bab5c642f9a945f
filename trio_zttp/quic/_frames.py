"""QUIC frame types, frame values and the rules tables (RFC 9000 §12.4, §12.5, §19; RFC 9221).

This module is data: the :class:`FrameType` registry, one frozen value class per frame and the
module-level tables that say where each frame may appear and how it counts for
acknowledgement, probing and congestion control.  The byte codec lives in
:mod:`trio_zttp.quic._frame_codec` (hot-path parsers/writers plus the generic
``decode_frame`` / ``decode_frames`` / ``encode_frame``).

Field names follow the RFC's frame layouts.  Integers are the raw wire values: in particular
:attr:`AckFrame.ack_delay` is the *encoded* delay, to be scaled by the peer's
``ack_delay_exponent`` by the receiver (RFC 9000 §19.3).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, TypeAlias, final

import attrs

from .._tls.suites import Epoch
from ._errors import FrameEncodingError, ProtocolViolation

__all__ = [
    "ACK_ELICITING_FRAME_TYPES",
    "ALLOWED_EPOCHS",
    "CONGESTION_EXEMPT_FRAME_TYPES",
    "FLOW_CONTROLLED_FRAME_TYPES",
    "FRAME_PACKET_TYPES",
    "IN_FLIGHT_FRAME_TYPES",
    "PROBING_FRAME_TYPES",
    "STREAM_FIN_BIT",
    "STREAM_LEN_BIT",
    "STREAM_OFF_BIT",
    "ZERO_RTT_FORBIDDEN_FRAME_TYPES",
    "AckFrame",
    "ConnectionCloseFrame",
    "CryptoFrame",
    "DataBlockedFrame",
    "DatagramFrame",
    "Frame",
    "FrameType",
    "HandshakeDoneFrame",
    "MaxDataFrame",
    "MaxStreamDataFrame",
    "MaxStreamsFrame",
    "NewConnectionIdFrame",
    "NewTokenFrame",
    "PaddingFrame",
    "PathChallengeFrame",
    "PathResponseFrame",
    "PingFrame",
    "ResetStreamFrame",
    "RetireConnectionIdFrame",
    "StopSendingFrame",
    "StreamDataBlockedFrame",
    "StreamFrame",
    "StreamsBlockedFrame",
    "check_frame_allowed",
    "frame_type_of",
    "is_known_frame_type",
]


class FrameType(enum.IntEnum):
    """Every frame type value of RFC 9000 §19 / Table 3 and RFC 9221 §4.

    STREAM (0x08-0x0f) carries the OFF (0x04), LEN (0x02) and FIN (0x01) bits in its type, so
    each of the eight values has a member; ACK, MAX_STREAMS, STREAMS_BLOCKED,
    CONNECTION_CLOSE and DATAGRAM have two each.
    """

    PADDING = 0x00
    PING = 0x01
    ACK = 0x02
    ACK_ECN = 0x03
    RESET_STREAM = 0x04
    STOP_SENDING = 0x05
    CRYPTO = 0x06
    NEW_TOKEN = 0x07
    STREAM = 0x08
    STREAM_FIN = 0x09
    STREAM_LEN = 0x0A
    STREAM_LEN_FIN = 0x0B
    STREAM_OFF = 0x0C
    STREAM_OFF_FIN = 0x0D
    STREAM_OFF_LEN = 0x0E
    STREAM_OFF_LEN_FIN = 0x0F
    MAX_DATA = 0x10
    MAX_STREAM_DATA = 0x11
    MAX_STREAMS_BIDI = 0x12
    MAX_STREAMS_UNI = 0x13
    DATA_BLOCKED = 0x14
    STREAM_DATA_BLOCKED = 0x15
    STREAMS_BLOCKED_BIDI = 0x16
    STREAMS_BLOCKED_UNI = 0x17
    NEW_CONNECTION_ID = 0x18
    RETIRE_CONNECTION_ID = 0x19
    PATH_CHALLENGE = 0x1A
    PATH_RESPONSE = 0x1B
    CONNECTION_CLOSE = 0x1C
    CONNECTION_CLOSE_APPLICATION = 0x1D
    HANDSHAKE_DONE = 0x1E
    DATAGRAM = 0x30
    DATAGRAM_LEN = 0x31


STREAM_OFF_BIT: Final = 0x04
STREAM_LEN_BIT: Final = 0x02
STREAM_FIN_BIT: Final = 0x01

_STREAM_TYPES: Final = frozenset(FrameType(t) for t in range(0x08, 0x10))

# A 64-entry lookup (all defined types fit in one varint byte): truthy where the type is known.
_KNOWN: Final = bytes(1 if t in FrameType._value2member_map_ else 0 for t in range(0x40))


def is_known_frame_type(frame_type: int) -> bool:
    """True for the frame types this implementation understands (RFC 9000 + RFC 9221)."""
    return 0 <= frame_type < 0x40 and _KNOWN[frame_type] == 1


# --------------------------------------------------------------------------------------------
# Frame values


@final
@attrs.frozen(kw_only=True)
class PaddingFrame:
    """A run of PADDING bytes (RFC 9000 §19.1); consecutive 0x00 bytes decode as one value."""

    length: int = 1
    """Number of PADDING bytes (each a one-byte frame)."""


@final
@attrs.frozen(kw_only=True)
class PingFrame:
    """PING (RFC 9000 §19.2): no fields, elicits an acknowledgement."""


@final
@attrs.frozen(kw_only=True)
class AckFrame:
    """ACK / ACK_ECN (RFC 9000 §19.3).

    ``ranges`` holds inclusive ``(smallest, largest)`` packet-number pairs in *descending*
    order: the first pair holds the largest acknowledged packet, and each following pair lies
    strictly below the previous one with at least one unacknowledged packet between them.
    """

    ranges: tuple[tuple[int, int], ...]
    """Acknowledged packet numbers, newest range first."""
    ack_delay: int
    """Encoded ACK delay (microseconds scaled down by the sender's ack_delay_exponent)."""
    ecn_counts: tuple[int, int, int] | None = None
    """(ECT0, ECT1, ECN-CE) counts for ACK_ECN (0x03); None for plain ACK (0x02)."""

    @property
    def largest_acknowledged(self) -> int:
        """The largest packet number this frame acknowledges."""
        return self.ranges[0][1]


@final
@attrs.frozen(kw_only=True)
class ResetStreamFrame:
    """RESET_STREAM (RFC 9000 §19.4)."""

    stream_id: int
    """The stream being terminated."""
    error_code: int
    """Application protocol error code."""
    final_size: int
    """Final size of the stream in bytes."""


@final
@attrs.frozen(kw_only=True)
class StopSendingFrame:
    """STOP_SENDING (RFC 9000 §19.5)."""

    stream_id: int
    """The stream being ignored."""
    error_code: int
    """Application protocol error code."""


@final
@attrs.frozen(kw_only=True)
class CryptoFrame:
    """CRYPTO (RFC 9000 §19.6)."""

    offset: int
    """Byte offset of ``data`` in the epoch's crypto stream."""
    data: bytes
    """Handshake bytes."""


@final
@attrs.frozen(kw_only=True)
class NewTokenFrame:
    """NEW_TOKEN (RFC 9000 §19.7); the token is never empty."""

    token: bytes
    """Opaque address-validation token for a future Initial packet."""


@final
@attrs.frozen(kw_only=True)
class StreamFrame:
    """STREAM (RFC 9000 §19.8).

    ``encode_frame`` always writes the Length field (and the Offset field only when non-zero);
    the hot-path writer can omit the length for the last frame of a packet.
    """

    stream_id: int
    """The stream the data belongs to."""
    offset: int = 0
    """Byte offset of ``data`` in the stream."""
    data: bytes = b""
    """Stream bytes."""
    fin: bool = False
    """True if this frame ends the stream."""


@final
@attrs.frozen(kw_only=True)
class MaxDataFrame:
    """MAX_DATA (RFC 9000 §19.9)."""

    maximum_data: int
    """Connection-level flow control limit in bytes."""


@final
@attrs.frozen(kw_only=True)
class MaxStreamDataFrame:
    """MAX_STREAM_DATA (RFC 9000 §19.10)."""

    stream_id: int
    """The stream whose limit rises."""
    maximum_stream_data: int
    """Stream-level flow control limit in bytes."""


@final
@attrs.frozen(kw_only=True)
class MaxStreamsFrame:
    """MAX_STREAMS (RFC 9000 §19.11); ``maximum_streams`` never exceeds 2**60."""

    bidirectional: bool
    """True for 0x12 (bidirectional), False for 0x13 (unidirectional)."""
    maximum_streams: int
    """Cumulative number of streams of that type the peer may open."""


@final
@attrs.frozen(kw_only=True)
class DataBlockedFrame:
    """DATA_BLOCKED (RFC 9000 §19.12)."""

    maximum_data: int
    """The connection-level limit at which the sender is blocked."""


@final
@attrs.frozen(kw_only=True)
class StreamDataBlockedFrame:
    """STREAM_DATA_BLOCKED (RFC 9000 §19.13)."""

    stream_id: int
    """The blocked stream."""
    maximum_stream_data: int
    """The stream-level limit at which the sender is blocked."""


@final
@attrs.frozen(kw_only=True)
class StreamsBlockedFrame:
    """STREAMS_BLOCKED (RFC 9000 §19.14); ``maximum_streams`` never exceeds 2**60."""

    bidirectional: bool
    """True for 0x16 (bidirectional), False for 0x17 (unidirectional)."""
    maximum_streams: int
    """The stream limit at which the sender is blocked."""


@final
@attrs.frozen(kw_only=True)
class NewConnectionIdFrame:
    """NEW_CONNECTION_ID (RFC 9000 §19.15)."""

    sequence_number: int
    """Sequence number the issuer assigned to the connection ID."""
    retire_prior_to: int
    """Connection IDs with lower sequence numbers must be retired (≤ sequence_number)."""
    connection_id: bytes
    """The connection ID, 1 to 20 bytes."""
    stateless_reset_token: bytes
    """The 16-byte stateless reset token for this connection ID."""


@final
@attrs.frozen(kw_only=True)
class RetireConnectionIdFrame:
    """RETIRE_CONNECTION_ID (RFC 9000 §19.16)."""

    sequence_number: int
    """Sequence number of the connection ID being retired."""


@final
@attrs.frozen(kw_only=True)
class PathChallengeFrame:
    """PATH_CHALLENGE (RFC 9000 §19.17)."""

    data: bytes
    """Eight unpredictable bytes."""


@final
@attrs.frozen(kw_only=True)
class PathResponseFrame:
    """PATH_RESPONSE (RFC 9000 §19.18)."""

    data: bytes
    """The eight bytes of the PATH_CHALLENGE being answered."""


@final
@attrs.frozen(kw_only=True)
class ConnectionCloseFrame:
    """CONNECTION_CLOSE (RFC 9000 §19.19).

    A transport close (0x1c) names the frame type that triggered it (0 when unknown); an
    application close (0x1d) has ``frame_type=None``.
    """

    error_code: int
    """Transport error code (0x1c) or application protocol error code (0x1d)."""
    frame_type: int | None = 0
    """Triggering frame type for 0x1c; None makes this an application close (0x1d)."""
    reason_phrase: bytes = b""
    """Additional diagnostic information, meant to be UTF-8 (not checked)."""


@final
@attrs.frozen(kw_only=True)
class HandshakeDoneFrame:
    """HANDSHAKE_DONE (RFC 9000 §19.20): no fields, server to client only."""


@final
@attrs.frozen(kw_only=True)
class DatagramFrame:
    """DATAGRAM (RFC 9221 §4); :func:`encode_frame` writes the length form (0x31)."""

    data: bytes
    """The unreliable application datagram."""


Frame: TypeAlias = (
    PaddingFrame
    | PingFrame
    | AckFrame
    | ResetStreamFrame
    | StopSendingFrame
    | CryptoFrame
    | NewTokenFrame
    | StreamFrame
    | MaxDataFrame
    | MaxStreamDataFrame
    | MaxStreamsFrame
    | DataBlockedFrame
    | StreamDataBlockedFrame
    | StreamsBlockedFrame
    | NewConnectionIdFrame
    | RetireConnectionIdFrame
    | PathChallengeFrame
    | PathResponseFrame
    | ConnectionCloseFrame
    | HandshakeDoneFrame
    | DatagramFrame
)
"""Any decoded QUIC frame value."""

_FIXED_TYPES: Final[Mapping[type, FrameType]] = MappingProxyType({
    PaddingFrame: FrameType.PADDING,
    PingFrame: FrameType.PING,
    ResetStreamFrame: FrameType.RESET_STREAM,
    StopSendingFrame: FrameType.STOP_SENDING,
    CryptoFrame: FrameType.CRYPTO,
    NewTokenFrame: FrameType.NEW_TOKEN,
    MaxDataFrame: FrameType.MAX_DATA,
    MaxStreamDataFrame: FrameType.MAX_STREAM_DATA,
    DataBlockedFrame: FrameType.DATA_BLOCKED,
    StreamDataBlockedFrame: FrameType.STREAM_DATA_BLOCKED,
    NewConnectionIdFrame: FrameType.NEW_CONNECTION_ID,
    RetireConnectionIdFrame: FrameType.RETIRE_CONNECTION_ID,
    PathChallengeFrame: FrameType.PATH_CHALLENGE,
    PathResponseFrame: FrameType.PATH_RESPONSE,
    HandshakeDoneFrame: FrameType.HANDSHAKE_DONE,
    DatagramFrame: FrameType.DATAGRAM_LEN,
})


def frame_type_of(frame: Frame) -> FrameType:
    """The frame type ``encode_frame`` writes for ``frame``.

    STREAM always gets the LEN bit, plus OFF when the offset is non-zero and FIN when set;
    DATAGRAM is always the length form 0x31; CONNECTION_CLOSE is 0x1d when ``frame_type`` is
    None, else 0x1c.
    """
    match frame:
        case StreamFrame(offset=offset, fin=fin):
            return FrameType(
                0x08 | STREAM_LEN_BIT | (STREAM_OFF_BIT if offset else 0)
                | (STREAM_FIN_BIT if fin else 0)
            )
        case AckFrame(ecn_counts=ecn):
            return FrameType.ACK if ecn is None else FrameType.ACK_ECN
        case MaxStreamsFrame(bidirectional=bidi):
            return FrameType.MAX_STREAMS_BIDI if bidi else FrameType.MAX_STREAMS_UNI
        case StreamsBlockedFrame(bidirectional=bidi):
            return FrameType.STREAMS_BLOCKED_BIDI if bidi else FrameType.STREAMS_BLOCKED_UNI
        case ConnectionCloseFrame(frame_type=trigger):
            return (
                FrameType.CONNECTION_CLOSE_APPLICATION if trigger is None
                else FrameType.CONNECTION_CLOSE
            )
        case _:
            return _FIXED_TYPES[type(frame)]


# --------------------------------------------------------------------------------------------
# Tables (RFC 9000 §12.4 Table 3, §12.5; RFC 9002 §2; RFC 9221 §4-5)

_EI, _EH, _E0, _E1 = Epoch.INITIAL, Epoch.HANDSHAKE, Epoch.ZERO_RTT, Epoch.ONE_RTT
_PKTS_IH01: Final = frozenset((_EI, _EH, _E0, _E1))
_PKTS_IH_1: Final = frozenset((_EI, _EH, _E1))
_PKTS_01: Final = frozenset((_E0, _E1))
_PKTS_1: Final = frozenset((_E1,))


def _table(rows: dict[int, frozenset[Epoch]]) -> Mapping[FrameType, frozenset[Epoch]]:
    return MappingProxyType({FrameType(t): epochs for t, epochs in rows.items()})


FRAME_PACKET_TYPES: Final[Mapping[FrameType, frozenset[Epoch]]] = _table({
    0x00: _PKTS_IH01,  # PADDING
    0x01: _PKTS_IH01,  # PING
    0x02: _PKTS_IH_1, 0x03: _PKTS_IH_1,  # ACK
    0x04: _PKTS_01,  # RESET_STREAM
    0x05: _PKTS_01,  # STOP_SENDING
    0x06: _PKTS_IH_1,  # CRYPTO
    0x07: _PKTS_1,  # NEW_TOKEN
    **{t: _PKTS_01 for t in range(0x08, 0x10)},  # STREAM
    0x10: _PKTS_01,  # MAX_DATA
    0x11: _PKTS_01,  # MAX_STREAM_DATA
    0x12: _PKTS_01, 0x13: _PKTS_01,  # MAX_STREAMS
    0x14: _PKTS_01,  # DATA_BLOCKED
    0x15: _PKTS_01,  # STREAM_DATA_BLOCKED
    0x16: _PKTS_01, 0x17: _PKTS_01,  # STREAMS_BLOCKED
    0x18: _PKTS_01,  # NEW_CONNECTION_ID
    0x19: _PKTS_01,  # RETIRE_CONNECTION_ID
    0x1A: _PKTS_01,  # PATH_CHALLENGE
    0x1B: _PKTS_1,  # PATH_RESPONSE
    0x1C: _PKTS_IH01,  # CONNECTION_CLOSE, transport ("ih": only 0x1c in Initial/Handshake)
    0x1D: _PKTS_01,  # CONNECTION_CLOSE, application
    0x1E: _PKTS_1,  # HANDSHAKE_DONE
    0x30: _PKTS_01, 0x31: _PKTS_01,  # DATAGRAM: 0-RTT or 1-RTT only (RFC 9221 §4)
})
"""RFC 9000 Table 3 "Pkts" column (plus RFC 9221): packet types each frame type may appear in.

Keys are packet types expressed as :class:`Epoch` (INITIAL, HANDSHAKE, ZERO_RTT, ONE_RTT).
"""

ZERO_RTT_FORBIDDEN_FRAME_TYPES: Final = frozenset({
    FrameType.ACK, FrameType.ACK_ECN, FrameType.CRYPTO, FrameType.HANDSHAKE_DONE,
    FrameType.NEW_TOKEN, FrameType.PATH_RESPONSE, FrameType.RETIRE_CONNECTION_ID,
})
"""Frames that cannot be sent in 0-RTT (RFC 9000 §12.5); a server MAY close with
PROTOCOL_VIOLATION on receipt, and this implementation does.  Table 3 already excludes all
but RETIRE_CONNECTION_ID from 0-RTT."""

ALLOWED_EPOCHS: Final[Mapping[FrameType, frozenset[Epoch]]] = MappingProxyType({
    frame_type: (
        epochs - {_E0} if frame_type in ZERO_RTT_FORBIDDEN_FRAME_TYPES else epochs
    )
    for frame_type, epochs in FRAME_PACKET_TYPES.items()
})
"""What :func:`check_frame_allowed` enforces: Table 3 tightened by the §12.5 0-RTT list."""

ACK_ELICITING_FRAME_TYPES: Final = frozenset(FrameType) - {
    FrameType.PADDING, FrameType.ACK, FrameType.ACK_ECN,
    FrameType.CONNECTION_CLOSE, FrameType.CONNECTION_CLOSE_APPLICATION,
}
"""Frames without the "N" mark in Table 3 (RFC 9000 §13.2; DATAGRAM per RFC 9221 §5.2).

A packet is ack-eliciting if it contains at least one of these."""

PROBING_FRAME_TYPES: Final = frozenset({
    FrameType.PATH_CHALLENGE, FrameType.PATH_RESPONSE, FrameType.NEW_CONNECTION_ID,
    FrameType.PADDING,
})
"""Frames with the "P" mark (RFC 9000 §9.1): a packet holding only these is a probing packet."""

CONGESTION_EXEMPT_FRAME_TYPES: Final = frozenset({FrameType.ACK, FrameType.ACK_ECN})
"""Frames with the "C" mark: a packet holding only these does not count toward bytes in
flight."""

IN_FLIGHT_FRAME_TYPES: Final = ACK_ELICITING_FRAME_TYPES | {FrameType.PADDING}
"""RFC 9002 §2: a sent packet is *in flight* (counts toward congestion control) when it is
ack-eliciting or contains PADDING.  Hence a packet of only ACK and/or CONNECTION_CLOSE frames
is not in flight, consistent with the "C" column, and PADDING-only packets are."""

FLOW_CONTROLLED_FRAME_TYPES: Final = _STREAM_TYPES
"""Frames with the "F" mark: STREAM (0x08-0x0f)."""

_EPOCH_MASK: Final = tuple(
    sum(1 << e for e in ALLOWED_EPOCHS.get(FrameType(t), ()))
    if t in FrameType._value2member_map_ else 0
    for t in range(0x40)
)


def check_frame_allowed(frame_type: int, epoch: Epoch) -> None:
    """Raise unless ``frame_type`` may appear in a packet of ``epoch``.

    Args:
        frame_type: The frame type as read from the wire.
        epoch: The packet's type (its encryption level).

    Raises:
        ProtocolViolation: The frame type is not permitted in that packet type (RFC 9000 §12.4;
            including the §12.5 0-RTT restrictions).
        FrameEncodingError: The frame type is unknown.
    """
    if 0 <= frame_type < 0x40:
        mask = _EPOCH_MASK[frame_type]
        if mask >> epoch & 1:
            return
        if mask:
            raise ProtocolViolation(
                f"frame type 0x{frame_type:02x} not allowed in {epoch.name} packets",
                frame_type=frame_type,
            )
    raise FrameEncodingError(f"unknown frame type 0x{frame_type:x}", frame_type=frame_type)
