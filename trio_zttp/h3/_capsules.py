"""HTTP Datagrams and the Capsule Protocol (RFC 9297).

* Capsules (§3.2) are ``Type (i), Length (i), Value`` records in a request's data stream
  (the payload of its DATA frames).  :class:`CapsuleParser` takes that stream in any chunking.
* HTTP/3 datagrams (§2.1) are QUIC DATAGRAM payloads prefixed with the Quarter Stream ID.
* The ``Capsule-Protocol`` header field (§3.4) is a Structured Field Item (RFC 8941/9651)
  whose value must be a Boolean.

Error handling, as RFC 9297 decides it:

* A capsule-level error "MUST be treated as if it had received a malformed or incomplete HTTP
  message" (§3.3), which in HTTP/3 is a stream error of type H3_MESSAGE_ERROR (RFC 9114 §4.1.2):
  a capsule truncated by the clean end of the stream raises :class:`MessageError`.
* A capsule longer than the parser's bound is *discarded without buffering* by default: §3.5
  says a DATAGRAM capsule "known to be so large as to not be usable" SHOULD be discarded that
  way, and unknown types are dropped anyway (§3.2).  ``discard_oversized=False`` turns it into a
  :class:`MessageError` for callers whose capsule types must all be processed.
* H3_DATAGRAM_ERROR is only for HTTP/3 datagrams: a payload too short for the Quarter Stream ID
  or a Quarter Stream ID above 2**60-1 is a *connection* error (§2.1, :class:`DatagramError`).
* Reserved capsule types ``0x29 * N + 0x17`` (§5.4) are skipped unreported; other unknown types
  are returned to the caller (the extension in use may know them), which drops what it does not
  understand.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from itertools import chain
from typing import Final, final

from .._buffer import BufferReadError, decode_varint, encode_varint
from ._errors import DatagramError, MessageError
from ._frames import BUFFER_VALUE, SKIP_VALUE, FrameList, TlvParser

__all__ = [
    "CAPSULE_PROTOCOL_FIELD",
    "DEFAULT_MAX_CAPSULE_LENGTH",
    "MAX_QUARTER_STREAM_ID",
    "CapsuleParser",
    "CapsuleType",
    "capsule_protocol_field",
    "check_capsule_protocol_message",
    "decode_h3_datagram",
    "encode_capsule",
    "encode_capsule_header",
    "encode_h3_datagram",
    "grease_capsule_type",
    "is_reserved_capsule_type",
    "parse_capsule_protocol",
]


class CapsuleType(enum.IntEnum):
    """Capsule types (RFC 9297 §5.4)."""

    DATAGRAM = 0x00


#: Default bound on a buffered capsule value: a full-size UDP payload fits.
DEFAULT_MAX_CAPSULE_LENGTH: Final = 64 * 1024
#: The largest Quarter Stream ID: the largest stream ID 2**62-1, divided by four (§2.1).
MAX_QUARTER_STREAM_ID: Final = (1 << 60) - 1

_GREASE_STEP: Final = 0x29
_GREASE_BASE: Final = 0x17
_VARINT_MAX: Final = (1 << 62) - 1


def grease_capsule_type(n: int) -> int:
    """The ``n``-th reserved capsule type ``0x29 * n + 0x17`` (RFC 9297 §5.4)."""
    value = _GREASE_STEP * n + _GREASE_BASE
    if n < 0 or value > _VARINT_MAX:
        raise ValueError(f"GREASE index {n} out of range")
    return value


def is_reserved_capsule_type(capsule_type: int) -> bool:
    """Whether ``capsule_type`` has the reserved form ``0x29 * N + 0x17``."""
    return capsule_type >= _GREASE_BASE and (capsule_type - _GREASE_BASE) % _GREASE_STEP == 0


def encode_capsule_header(capsule_type: int, length: int) -> bytes:
    """The Type and Length of a capsule whose ``length``-byte value follows."""
    return encode_varint(capsule_type) + encode_varint(length)


def encode_capsule(capsule_type: int, value: bytes | bytearray | memoryview) -> bytes:
    """A whole capsule: Capsule Type (i), Capsule Length (i), Capsule Value."""
    return encode_varint(capsule_type) + encode_varint(len(value)) + value


@final
class CapsuleParser(TlvParser):
    """Streaming parser for the Capsule Protocol on one request's data stream.

    Feed the DATA payloads in any chunking; :meth:`feed` returns completed capsules as
    ``(capsule_type, value)`` in order.  After a raised error the parser must not be used again.

    Args:
        max_capsule_length: Largest value buffered; longer capsules are discarded as they stream
            past (counted in :attr:`discarded`) or, with ``discard_oversized=False``, rejected.
        discard_oversized: See the module docstring.

    Attributes:
        discarded: How many oversized capsules were dropped.

    :meth:`feed` raises :class:`MessageError` for an oversized capsule when
    ``discard_oversized`` is False.
    """

    __slots__ = ("_max_length", "_discard", "discarded")

    def __init__(
        self,
        *,
        max_capsule_length: int = DEFAULT_MAX_CAPSULE_LENGTH,
        discard_oversized: bool = True,
    ) -> None:
        if max_capsule_length < 0:
            raise ValueError("max_capsule_length must be >= 0")
        super().__init__()
        self._max_length = max_capsule_length
        self._discard = discard_oversized
        self.discarded = 0

    @property
    def in_capsule(self) -> bool:
        """Whether the bytes fed so far end inside a capsule."""
        return self._in_record()

    def _start(self, capsule_type: int, length: int, out: FrameList) -> None:
        if is_reserved_capsule_type(capsule_type):
            if length:
                self._state = SKIP_VALUE
        elif length > self._max_length:
            if not self._discard:
                raise MessageError(
                    f"capsule of {length} bytes exceeds the {self._max_length}-byte limit"
                )
            self.discarded += 1
            self._state = SKIP_VALUE
        else:
            self._state = BUFFER_VALUE

    def end_of_stream(self) -> None:
        """The data stream ended cleanly; raise if that truncated a capsule.

        Raises:
            MessageError: the last capsule was truncated (RFC 9297 §3.3).
        """
        if self.in_capsule:
            raise MessageError("data stream ended inside a capsule")


# --- HTTP/3 datagrams (RFC 9297 §2.1) ------------------------------------------------------------


def encode_h3_datagram(stream_id: int, payload: bytes | bytearray | memoryview) -> bytes:
    """The QUIC DATAGRAM payload carrying ``payload`` for request stream ``stream_id``.

    Raises:
        ValueError: ``stream_id`` is not a client-initiated bidirectional stream.
    """
    if stream_id % 4 != 0 or not 0 <= stream_id <= _VARINT_MAX:
        raise ValueError(f"stream {stream_id} is not a client-initiated bidirectional stream")
    return encode_varint(stream_id >> 2) + payload


def decode_h3_datagram(data: bytes | bytearray | memoryview) -> tuple[int, bytes]:
    """Split a QUIC DATAGRAM payload into ``(request stream ID, HTTP datagram payload)``.

    Raises:
        DatagramError: too short for the Quarter Stream ID, or a Quarter Stream ID above
            2**60-1 (connection errors of type H3_DATAGRAM_ERROR).
    """
    try:
        quarter, pos = decode_varint(data, 0)
    except BufferReadError:
        raise DatagramError("HTTP/3 datagram too short for a Quarter Stream ID") from None
    if quarter > MAX_QUARTER_STREAM_ID:
        raise DatagramError(f"Quarter Stream ID {quarter} above 2**60-1")
    return quarter << 2, bytes(data[pos:])


# --- the Capsule-Protocol header field (RFC 9297 §3.4) ---------------------------------------

#: The field name, lowercase as HTTP/3 sends it.
CAPSULE_PROTOCOL_FIELD: Final = b"capsule-protocol"


def capsule_protocol_field(enabled: bool = True) -> tuple[bytes, bytes]:
    """The ``capsule-protocol`` field line: ``?1`` (or ``?0``, same as absent)."""
    return CAPSULE_PROTOCOL_FIELD, b"?1" if enabled else b"?0"


def parse_capsule_protocol(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether a field section says the Capsule Protocol is in use (``capsule-protocol: ?1``).

    The field lines are combined as one value (several lines make a List, so it is ignored);
    a value that does not parse as an Item, or whose bare item is not a Boolean, counts as
    absent; parameters are ignored (RFC 9297 §3.4).
    """
    if type(headers) is list and CAPSULE_PROTOCOL_FIELD not in chain.from_iterable(headers):
        return False  # the usual case, found without a Python-level loop
    values = [value for name, value in headers if name == CAPSULE_PROTOCOL_FIELD]
    if not values:
        return False
    item = _parse_sf_item(b", ".join(values))
    return item is True


def check_capsule_protocol_message(
    headers: Iterable[tuple[bytes, bytes]], status: int | None = None
) -> None:
    """Check a message that uses the Capsule Protocol (RFC 9297 §3.2).

    Args:
        headers: Its field section.
        status: The response status, for a response.

    Raises:
        MessageError: Content-Length, Content-Type or Transfer-Encoding present, or a 204, 205
            or 206 response.
    """
    for name, _ in headers:
        if name in (b"content-length", b"content-type", b"transfer-encoding"):
            raise MessageError(f"{name.decode()} in a message using the Capsule Protocol")
    if status in (204, 205, 206):
        raise MessageError(f"status {status} on a response using the Capsule Protocol")


# RFC 8941 §4.2 (with RFC 9651's Date and Display String) parsing of one Item; only whether it
# parses and what its bare item is matters here, so parameter values are checked, not kept.

_SF_TOKEN_REST: Final = frozenset(
    b"!#$%&'*+-.^_`|~:/0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)
_SF_KEY_FIRST: Final = frozenset(b"abcdefghijklmnopqrstuvwxyz*")
_SF_KEY_REST: Final = _SF_KEY_FIRST | frozenset(b"0123456789_-.")
_SF_BASE64: Final = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
)
_SF_HEX_LOWER: Final = frozenset(b"0123456789abcdef")
_NOT_BOOLEAN: Final = object()


class _SfError(Exception):
    pass


def _parse_sf_item(data: bytes) -> object:
    """The bare item of an Item (``True``/``False`` for Booleans), or None if it does not parse."""
    try:
        pos = len(data) - len(data.lstrip(b" "))
        item, pos = _sf_bare_item(data, pos)
        pos = _sf_parameters(data, pos)
        if data[pos:].strip(b" "):
            return None
        return item
    except _SfError:
        return None


def _sf_parameters(data: bytes, pos: int) -> int:
    while data[pos : pos + 1] == b";":
        pos += 1
        while data[pos : pos + 1] == b" ":
            pos += 1
        if pos >= len(data) or data[pos] not in _SF_KEY_FIRST:
            raise _SfError
        while pos < len(data) and data[pos] in _SF_KEY_REST:
            pos += 1
        if data[pos : pos + 1] == b"=":
            _, pos = _sf_bare_item(data, pos + 1)
    return pos


def _sf_bare_item(data: bytes, pos: int) -> tuple[object, int]:
    if pos >= len(data):
        raise _SfError
    first = data[pos]
    if first == 0x3F:  # "?" Boolean
        flag = data[pos + 1 : pos + 2]
        if flag not in (b"0", b"1"):
            raise _SfError
        return flag == b"1", pos + 2
    if first == 0x2D or 0x30 <= first <= 0x39:  # Integer or Decimal
        return _NOT_BOOLEAN, _sf_number(data, pos)
    if first == 0x40:  # "@" Date (RFC 9651)
        return _NOT_BOOLEAN, _sf_number(data, pos + 1, integer_only=True)
    if first == 0x22:  # String
        return _NOT_BOOLEAN, _sf_string(data, pos + 1)
    if first == 0x25:  # "%" Display String (RFC 9651)
        return _NOT_BOOLEAN, _sf_display_string(data, pos)
    if first == 0x3A:  # ":" Byte Sequence
        close = data.find(b":", pos + 1)
        if close < 0 or any(c not in _SF_BASE64 for c in data[pos + 1 : close]):
            raise _SfError
        return _NOT_BOOLEAN, close + 1
    if first == 0x2A or (0x41 <= first <= 0x5A) or (0x61 <= first <= 0x7A):  # Token
        pos += 1
        while pos < len(data) and data[pos] in _SF_TOKEN_REST:
            pos += 1
        return _NOT_BOOLEAN, pos
    raise _SfError


def _sf_number(data: bytes, pos: int, *, integer_only: bool = False) -> int:
    if data[pos : pos + 1] == b"-":
        pos += 1
    start = pos
    dot = -1
    while pos < len(data):
        c = data[pos]
        if 0x30 <= c <= 0x39:
            pos += 1
        elif c == 0x2E and dot < 0 and not integer_only:  # "."
            if pos - start > 12:
                raise _SfError
            dot = pos
            pos += 1
        else:
            break
        if dot < 0 and pos - start > 15 or dot >= 0 and pos - start > 16:
            raise _SfError
    if pos == start or not 0x30 <= data[start] <= 0x39:
        raise _SfError
    if dot >= 0 and not 1 <= pos - dot - 1 <= 3:
        raise _SfError
    return pos


def _sf_string(data: bytes, pos: int) -> int:
    while pos < len(data):
        c = data[pos]
        if c == 0x5C:  # backslash
            if data[pos + 1 : pos + 2] not in (b'"', b"\\"):
                raise _SfError
            pos += 2
        elif c == 0x22:
            return pos + 1
        elif not 0x20 <= c <= 0x7E:
            raise _SfError
        else:
            pos += 1
    raise _SfError


def _sf_display_string(data: bytes, pos: int) -> int:
    if data[pos + 1 : pos + 2] != b'"':
        raise _SfError
    pos += 2
    decoded = bytearray()
    while pos < len(data):
        c = data[pos]
        if c == 0x25:  # "%" + two lowercase hex digits
            digits = data[pos + 1 : pos + 3]
            if len(digits) != 2 or any(d not in _SF_HEX_LOWER for d in digits):
                raise _SfError
            decoded.append(int(digits, 16))
            pos += 3
        elif c == 0x22:
            try:
                decoded.decode("utf-8")
            except UnicodeDecodeError:
                raise _SfError from None
            return pos + 1
        elif not 0x20 <= c <= 0x7E:
            raise _SfError
        else:
            decoded.append(c)
            pos += 1
    raise _SfError
