"""HTTP/3 frames and unidirectional stream headers (RFC 9114 §6.2, §7): codecs and a parser.

The only place HTTP/3 frame bytes are made or read.  :class:`FrameParser` takes a stream's bytes
in whatever chunks QUIC delivers them and returns complete frames, with three disciplines:

* DATA payloads are *streamed*: each chunk of a DATA frame is returned as soon as it arrives,
  so a 5 MB body is never held at once (``(FrameType.DATA, chunk)`` pieces; a zero-length
  DATA frame gives one ``(FrameType.DATA, b"")``).
* Frames the connection needs whole (HEADERS, PUSH_PROMISE, SETTINGS, GOAWAY, MAX_PUSH_ID,
  CANCEL_PUSH, plus any extension types the caller lists) are buffered up to a per-type bound;
  a longer frame raises :class:`ExcessiveLoadError` when its header arrives, before any payload is
  buffered.  The id-only frames (GOAWAY, MAX_PUSH_ID, CANCEL_PUSH) can never be longer than
  one varint (8 bytes), so a longer or empty one is an H3_FRAME_ERROR at once.
* Unknown and reserved (``0x1f * N + 0x21``) frame types are skipped without buffering; each
  is reported once, as ``(frame_type, b"")``, when its header arrives, so the caller can still
  apply ordering rules (SETTINGS first on the control stream, RFC 9114 §6.2.1).  The HTTP/2
  frame types reserved in HTTP/3 (0x2, 0x6, 0x8, 0x9) raise :class:`FrameUnexpectedError`.

The caller signals the clean end of the stream with :meth:`FrameParser.end_of_stream`, which
raises H3_FRAME_ERROR if the last frame was truncated (RFC 9114 §7.1).  Where a frame may
appear (control/request/push stream, message state) is data in :mod:`._rules`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import Final, final

from .._buffer import BufferReadError, decode_varint, encode_varint
from ._errors import (
    GREASE_MAX_N,
    ExcessiveLoadError,
    FrameError,
    FrameUnexpectedError,
    grease_value,
    is_grease_value,
    random_grease,
)

__all__ = [
    "DEFAULT_MAX_HEADERS_LENGTH",
    "DEFAULT_MAX_SETTINGS_LENGTH",
    "RESERVED_HTTP2_FRAME_TYPES",
    "FrameParser",
    "FrameType",
    "StreamType",
    "decode_id_payload",
    "decode_push_promise",
    "decode_stream_header",
    "encode_frame",
    "encode_frame_header",
    "encode_grease_frame",
    "encode_id_frame",
    "encode_push_promise",
    "encode_stream_header",
    "grease_frame_type",
    "grease_stream_type",
    "is_reserved_frame_type",
    "is_reserved_stream_type",
]


class FrameType(enum.IntEnum):
    """HTTP/3 frame types (RFC 9114 §7.2, §11.2.1)."""

    DATA = 0x0
    HEADERS = 0x1
    CANCEL_PUSH = 0x3
    SETTINGS = 0x4
    PUSH_PROMISE = 0x5
    GOAWAY = 0x7
    MAX_PUSH_ID = 0xD


#: HTTP/2 frame types with no HTTP/3 equivalent (PRIORITY, PING, WINDOW_UPDATE, CONTINUATION):
#: their receipt is a connection error of type H3_FRAME_UNEXPECTED (RFC 9114 §7.2.8).
RESERVED_HTTP2_FRAME_TYPES: Final = frozenset({0x2, 0x6, 0x8, 0x9})


class StreamType(enum.IntEnum):
    """Unidirectional stream types (RFC 9114 §6.2, RFC 9204 §4.2)."""

    CONTROL = 0x0
    PUSH = 0x1
    QPACK_ENCODER = 0x2
    QPACK_DECODER = 0x3


def grease_frame_type(n: int) -> int:
    """The ``n``-th reserved frame type ``0x1f * n + 0x21`` (RFC 9114 §7.2.8)."""
    return grease_value(n)


def is_reserved_frame_type(frame_type: int) -> bool:
    """Whether ``frame_type`` is a reserved (GREASE) frame type, to be ignored on receipt."""
    return is_grease_value(frame_type)


def grease_stream_type(n: int) -> int:
    """The ``n``-th reserved stream type ``0x1f * n + 0x21`` (RFC 9114 §6.2.3)."""
    return grease_value(n)


def is_reserved_stream_type(stream_type: int) -> bool:
    """Whether ``stream_type`` is a reserved (GREASE) stream type."""
    return is_grease_value(stream_type)


# --- encoding ----------------------------------------------------------------------------------


def encode_frame_header(frame_type: int, length: int) -> bytes:
    """The Type and Length fields of a frame whose payload (``length`` bytes) follows.

    Lets a sender put a large DATA payload on the wire without concatenating it.
    """
    return encode_varint(frame_type) + encode_varint(length)


def encode_frame(frame_type: int, payload: bytes | bytearray | memoryview) -> bytes:
    """A whole frame: Type (i), Length (i), Frame Payload (RFC 9114 §7.1)."""
    length = len(payload)
    if 0 <= frame_type < 0x40 and length < 0x4000:  # one-byte type, 1- or 2-byte length
        if length < 0x40:
            return bytes((frame_type, length)) + payload
        return bytes((frame_type, 0x40 | length >> 8, length & 0xFF)) + payload
    return encode_varint(frame_type) + encode_varint(length) + payload


def encode_grease_frame(
    random_bytes: Callable[[int], bytes], *, max_payload: int = 16, max_n: int = GREASE_MAX_N
) -> bytes:
    """A reserved-type frame with a random type and a random payload of 0..``max_payload`` bytes.

    Such frames may be sent on any stream where frames are allowed (RFC 9114 §7.2.8); the
    randomness comes from the injected ``random_bytes``.
    """
    if max_payload < 0:
        raise ValueError("max_payload must be >= 0")
    frame_type = random_grease(random_bytes, max_n=max_n)
    length = random_bytes(1)[0] % (max_payload + 1)
    return encode_frame(frame_type, random_bytes(length) if length else b"")


def encode_id_frame(frame_type: int, value: int) -> bytes:
    """A GOAWAY, MAX_PUSH_ID or CANCEL_PUSH frame, whose payload is one varint."""
    return encode_frame(frame_type, encode_varint(value))


def decode_id_payload(payload: bytes | bytearray | memoryview, frame_type: int = 0) -> int:
    """The varint that must fill a GOAWAY, MAX_PUSH_ID or CANCEL_PUSH payload exactly.

    Raises:
        FrameError: the payload is empty, truncated or has trailing bytes (RFC 9114 §7.1).
    """
    try:
        value, end = decode_varint(payload, 0)
    except BufferReadError:
        raise FrameError("truncated identifier", frame_type=frame_type) from None
    if end != len(payload):
        raise FrameError("trailing bytes after the identifier", frame_type=frame_type)
    return value


def encode_push_promise(push_id: int, field_section: bytes | bytearray | memoryview) -> bytes:
    """A whole PUSH_PROMISE frame: Push ID (i) followed by the encoded field section."""
    return encode_frame(FrameType.PUSH_PROMISE, encode_varint(push_id) + field_section)


def decode_push_promise(payload: bytes | bytearray | memoryview) -> tuple[int, bytes]:
    """Split a PUSH_PROMISE payload into ``(push_id, encoded field section)``.

    Raises:
        FrameError: the Push ID is truncated.
    """
    try:
        push_id, end = decode_varint(payload, 0)
    except BufferReadError:
        raise FrameError("truncated push ID", frame_type=FrameType.PUSH_PROMISE) from None
    return push_id, bytes(payload[end:])


def encode_stream_header(stream_type: int, push_id: int | None = None) -> bytes:
    """The header of a unidirectional stream: Stream Type (i) [, Push ID (i) for push streams]."""
    if (stream_type == StreamType.PUSH) != (push_id is not None):
        raise ValueError("a push ID goes with, and only with, a push stream")
    header = encode_varint(stream_type)
    return header if push_id is None else header + encode_varint(push_id)


def decode_stream_header(
    data: bytes | bytearray | memoryview,
) -> tuple[int, int | None, int] | None:
    """Parse a unidirectional stream header from the stream's first bytes.

    Returns:
        ``(stream_type, push_id, consumed)``, where ``push_id`` is set for push streams only,
        or ``None`` when ``data`` does not hold the whole header yet (feed more bytes).
    """
    try:
        stream_type, pos = decode_varint(data, 0)
        if stream_type != StreamType.PUSH:
            return stream_type, None, pos
        push_id, pos = decode_varint(data, pos)
    except BufferReadError:
        return None
    return stream_type, push_id, pos


# --- parsing -----------------------------------------------------------------------------------

#: Default bound on a buffered HEADERS payload (the encoded field section).
DEFAULT_MAX_HEADERS_LENGTH: Final = 64 * 1024
#: Default bound on a SETTINGS payload; real ones are a few dozen bytes.
DEFAULT_MAX_SETTINGS_LENGTH: Final = 4 * 1024

_KNOWN_TYPES: Final = frozenset(int(t) for t in FrameType)
_ID_ONLY: Final = frozenset({FrameType.GOAWAY, FrameType.MAX_PUSH_ID, FrameType.CANCEL_PUSH})
_MAX_VARINT_LENGTH: Final = 8
_shared_limits: dict[tuple[int, int], dict[int, int]] = {}
_MAX_HEADER_LENGTH: Final = 16  # two 8-byte varints
_HEADERS: Final = 1  # FrameType.HEADERS as a plain int (the fast path compares bytes to it)

# parser states (plain ints: compared per chunk on the stream hot path)
READ_HEADER: Final = 0
STREAM_VALUE: Final = 1
BUFFER_VALUE: Final = 2
SKIP_VALUE: Final = 3

FrameList = list[tuple[int, bytes]]


def read_tlv_header(
    pending: bytearray, view: memoryview, pos: int
) -> tuple[int, int, int] | None:
    """Read a Type (i) + Length (i) header at ``view[pos:]``, after the ``pending`` bytes.

    Shared by the frame and capsule parsers.  Returns ``(type, length, position after the
    header in view)`` and clears ``pending``; or None when the header is incomplete, after
    appending the rest of ``view`` to ``pending``.
    """
    if not pending:
        try:
            kind, p = decode_varint(view, pos)
            length, p = decode_varint(view, p)
        except BufferReadError:
            pending += view[pos:]
            return None
        return kind, length, p
    held = len(pending)
    # a header is at most 16 bytes, so if these do not hold it, ``view`` has no more to give
    header = bytes(pending) + bytes(view[pos : pos + _MAX_HEADER_LENGTH])
    try:
        kind, p = decode_varint(header, 0)
        length, p = decode_varint(header, p)
    except BufferReadError:
        pending += view[pos : pos + _MAX_HEADER_LENGTH]
        return None
    pending.clear()
    return kind, length, pos + p - held


class TlvParser:
    """The streaming loop shared by :class:`FrameParser` and the capsule parser.

    Both read ``Type (i), Length (i), Value`` records in any chunking.  A subclass's
    ``_start`` looks at each header and chooses what happens to the value: buffered and
    returned whole (``BUFFER_VALUE``), returned piece by piece as ``(0, chunk)`` as it arrives
    (``STREAM_VALUE``) or skipped (``SKIP_VALUE``); or it reports the record itself and leaves
    the state at ``READ_HEADER`` for an empty value.  A buffered value that is already all in
    the input is copied once, straight from it.
    """

    __slots__ = ("_header", "_state", "_type", "_remaining", "_payload")

    def __init__(self) -> None:
        self._header = bytearray()
        self._state = READ_HEADER
        self._type = 0
        self._remaining = 0
        self._payload = bytearray()

    def _start(self, record_type: int, length: int, out: FrameList) -> None:
        raise NotImplementedError

    def _in_record(self) -> bool:
        """Whether the bytes fed so far end inside a record (header or value)."""
        return self._state != READ_HEADER or bool(self._header)

    def feed(self, data: bytes | bytearray | memoryview) -> FrameList:
        """Consume ``data``; return the records (and streamed pieces) it completes, in order.

        Raises:
            H3Error: whatever the subclass's header check raises (see the subclass).
        """
        out: FrameList = []
        view = memoryview(data)
        if view.format != "B":
            view = view.cast("B")
        self._feed_from(view, 0, out)
        return out

    def _feed_from(self, view: memoryview, pos: int, out: FrameList) -> None:
        """The streaming loop of :meth:`feed` from ``view[pos]`` on, appending to ``out``."""
        end = len(view)
        while pos < end:
            state = self._state
            if state == READ_HEADER:
                header = read_tlv_header(self._header, view, pos)
                if header is None:
                    return
                record_type, length, pos = header
                self._type = record_type
                self._remaining = length
                self._start(record_type, length, out)
                if self._state == BUFFER_VALUE and not self._payload and end - pos >= length:
                    # the whole value is here: one copy, straight from the input
                    out.append((record_type, bytes(view[pos : pos + length])))
                    pos += length
                    self._state = READ_HEADER
                    self._remaining = 0
                continue
            take = min(self._remaining, end - pos)
            if state == STREAM_VALUE:
                out.append((0, bytes(view[pos : pos + take])))
            elif state == BUFFER_VALUE:
                self._payload += view[pos : pos + take]
            pos += take
            self._remaining -= take
            if self._remaining == 0:
                if state == BUFFER_VALUE:
                    out.append((self._type, bytes(self._payload)))
                    self._payload.clear()
                self._state = READ_HEADER


@final
class FrameParser(TlvParser):
    """Streaming parser for the frames of one HTTP/3 stream.

    Feed bytes in any chunking; :meth:`feed` returns the frames completed by them, in order,
    as ``(frame_type, payload)`` tuples (see the module docstring for DATA and skipped frames).
    After a raised error the parser must not be used again.

    Args:
        max_headers_length: Bound on a HEADERS payload, and on a PUSH_PROMISE payload after its
            Push ID; beyond it, :class:`ExcessiveLoadError` (the connection may instead answer 431).
        max_settings_length: Bound on a SETTINGS payload; beyond it, :class:`ExcessiveLoadError`.
        extra_limits: Extension frame types to buffer whole, with their bounds (for example
            PRIORITY_UPDATE); every other unknown type is skipped.

    :meth:`feed` raises :class:`FrameUnexpectedError` for an HTTP/2-only frame type (0x2, 0x6, 0x8,
    0x9), :class:`FrameError` for a GOAWAY, MAX_PUSH_ID or CANCEL_PUSH frame of impossible
    length and :class:`ExcessiveLoadError` for a buffered frame longer than its bound.
    """

    __slots__ = ("_limits",)

    def __init__(
        self,
        *,
        max_headers_length: int = DEFAULT_MAX_HEADERS_LENGTH,
        max_settings_length: int = DEFAULT_MAX_SETTINGS_LENGTH,
        extra_limits: Mapping[int, int] | None = None,
    ) -> None:
        # TlvParser.__init__, inline (a parser per request stream)
        self._header = bytearray()
        self._state = READ_HEADER
        self._type = 0
        self._remaining = 0
        self._payload = bytearray()
        if not extra_limits:
            # one shared, never-modified table per pair of bounds (a parser per request)
            shared = _shared_limits.get((max_headers_length, max_settings_length))
            if shared is not None:
                self._limits = shared
                return
        limits: dict[int, int] = {}
        if extra_limits:
            for frame_type, limit in extra_limits.items():
                if frame_type in _KNOWN_TYPES or frame_type in RESERVED_HTTP2_FRAME_TYPES:
                    raise ValueError(f"frame type {frame_type:#x} is not an extension type")
                limits[frame_type] = limit
        limits[FrameType.HEADERS] = max_headers_length
        limits[FrameType.PUSH_PROMISE] = max_headers_length + _MAX_VARINT_LENGTH
        limits[FrameType.SETTINGS] = max_settings_length
        for frame_type in _ID_ONLY:
            limits[frame_type] = _MAX_VARINT_LENGTH
        if any(limit < 0 for limit in limits.values()):
            raise ValueError("frame length bounds must be >= 0")
        if not extra_limits and len(_shared_limits) < 16:
            _shared_limits[max_headers_length, max_settings_length] = limits
        self._limits = limits

    @property
    def in_frame(self) -> bool:
        """Whether the bytes fed so far end inside a frame (header or payload)."""
        return self._in_record()

    def feed(self, data: bytes | bytearray | memoryview) -> FrameList:
        """Consume ``data``; return the frames (and DATA pieces) it completes, in order.

        Whole HEADERS and DATA frames (and the start of a DATA frame) with short headers,
        the usual content of a request stream, are cut straight from ``bytes`` input; the
        rest goes through the general streaming loop, with the same results.

        Raises:
            H3Error: see the class docstring.
        """
        if self._state != READ_HEADER or self._header or type(data) is not bytes:
            return TlvParser.feed(self, data)
        out: FrameList = []
        pos = 0
        end = len(data)
        while pos + 1 < end:
            frame_type = data[pos]
            if frame_type > _HEADERS:
                break  # another type, or a longer type varint
            length = data[pos + 1]
            if length < 0x40:
                start = pos + 2
            elif length < 0x80 and pos + 2 < end:
                length = (length & 0x3F) << 8 | data[pos + 2]
                start = pos + 3
            else:
                break
            stop = start + length
            if frame_type:  # HEADERS: only whole, and within its bound
                if stop > end or length > self._limits[_HEADERS]:
                    break
                out.append((_HEADERS, data[start:stop]))
            elif stop > end:  # the start of a DATA frame: streamed
                if start < end:
                    out.append((0, data[start:]))
                self._state = STREAM_VALUE
                self._type = 0
                self._remaining = stop - end
                return out
            else:
                out.append((0, data[start:stop]))
            pos = stop
        if pos < end:
            self._feed_from(memoryview(data), pos, out)
        return out

    def end_of_stream(self) -> None:
        """The stream ended cleanly (FIN); raise if that cut a frame short.

        Raises:
            FrameError: the last frame was truncated (RFC 9114 §7.1).
        """
        if self._state != READ_HEADER or self._header:
            frame_type = self._type if self._state != READ_HEADER else None
            raise FrameError("stream ended inside a frame", frame_type=frame_type)

    def _start(self, frame_type: int, length: int, out: FrameList) -> None:
        if frame_type == FrameType.DATA:
            if length:
                self._state = STREAM_VALUE
            else:
                out.append((0, b""))
            return
        limit = self._limits.get(frame_type)
        if limit is not None:
            if frame_type in _ID_ONLY:
                if length == 0 or length > limit:
                    raise FrameError(
                        f"identifier frame with a {length}-byte payload", frame_type=frame_type
                    )
            elif length > limit:
                raise ExcessiveLoadError(
                    f"frame of {length} bytes exceeds the {limit}-byte limit",
                    frame_type=frame_type,
                )
            if length:
                self._state = BUFFER_VALUE
            else:
                out.append((frame_type, b""))
            return
        if frame_type in RESERVED_HTTP2_FRAME_TYPES:
            raise FrameUnexpectedError(
                "HTTP/2 frame type reserved in HTTP/3", frame_type=frame_type
            )
        out.append((frame_type, b""))  # unknown or reserved: reported, payload skipped
        if length:
            self._state = SKIP_VALUE
