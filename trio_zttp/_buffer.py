"""Byte reader and writer with QUIC variable-length integers (RFC 9000 §16).

Every codec in the package (QUIC frames and packets, TLS messages, QPACK, HTTP/3 frames and
capsules) reads through :class:`Reader` and writes through :class:`Writer`.  Reading past the
end of the input always raises :class:`BufferReadError`, never ``IndexError`` or
``struct.error``; each protocol layer maps that one error to its own wire code at its boundary
(FRAME_ENCODING_ERROR in QUIC, decode_error in TLS, H3_FRAME_ERROR in HTTP/3 ...).

The module-level :func:`decode_varint` / :func:`encode_varint` are the allocation-free forms
for hot paths that keep their own position.
"""

from __future__ import annotations

import struct
from typing import Final, final

__all__ = [
    "VARINT_MAX",
    "BufferReadError",
    "Reader",
    "Writer",
    "decode_varint",
    "encode_varint",
    "varint_size",
]

VARINT_MAX: Final = (1 << 62) - 1

_U16: Final = struct.Struct("!H")
_U32: Final = struct.Struct("!L")
_U64: Final = struct.Struct("!Q")


class BufferReadError(ValueError):
    """Input ended before the value being read, or a length field is impossible."""


def varint_size(value: int) -> int:
    """Number of bytes :func:`encode_varint` uses for ``value``."""
    if value < 0x40:
        if value < 0:
            raise ValueError(f"{value} does not fit in a QUIC varint")
        return 1
    if value < 0x4000:
        return 2
    if value < 0x40000000:
        return 4
    if value <= VARINT_MAX:
        return 8
    raise ValueError(f"{value} does not fit in a QUIC varint")


_ONE_BYTE: Final = tuple(bytes((i,)) for i in range(0x40))


def encode_varint(value: int) -> bytes:
    """Encode ``value`` (0 ≤ value < 2**62) in the shortest QUIC varint form."""
    if value < 0x40:
        if value < 0:
            raise ValueError(f"{value} does not fit in a QUIC varint")
        return _ONE_BYTE[value]
    if value < 0x4000:
        return _U16.pack(value | 0x4000)
    if value < 0x40000000:
        return _U32.pack(value | 0x80000000)
    if value <= VARINT_MAX:
        return _U64.pack(value | 0xC000000000000000)
    raise ValueError(f"{value} does not fit in a QUIC varint")


def decode_varint(data: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
    """Decode the varint at ``data[pos:]``; return ``(value, position after it)``."""
    try:
        first = data[pos]
    except IndexError:
        raise BufferReadError("varint past the end of the buffer") from None
    if first < 0x40:
        return first, pos + 1
    if first < 0x80:
        end = pos + 2
        if end > len(data):
            raise BufferReadError("varint past the end of the buffer")
        return ((first & 0x3F) << 8) | data[pos + 1], end
    if first < 0xC0:
        end = pos + 4
        if end > len(data):
            raise BufferReadError("varint past the end of the buffer")
        return _U32.unpack_from(data, pos)[0] & 0x3FFFFFFF, end
    end = pos + 8
    if end > len(data):
        raise BufferReadError("varint past the end of the buffer")
    return _U64.unpack_from(data, pos)[0] & 0x3FFFFFFFFFFFFFFF, end


def _short(n: int, left: int) -> BufferReadError:
    return BufferReadError(f"need {n} bytes, {left} left")


@final
class Reader:
    """Sequential reader over ``bytes``/``bytearray``/``memoryview``.

    ``pull_bytes`` returns ``bytes`` copies; ``pull_view`` returns a zero-copy
    ``memoryview`` slice for hot paths.  Every ``pull_*`` checks its bounds inline (no
    helper call): readers are made and drained by the thousand per handshake.
    """

    __slots__ = ("_data", "_view", "_pos", "_end")

    def __init__(self, data: bytes | bytearray | memoryview, pos: int = 0, end: int | None = None):
        self._data = data
        self._view = memoryview(data)
        self._pos = pos
        if end is None:
            self._end = end = len(data)
            if pos and not 0 <= pos <= end:
                raise ValueError("reader bounds outside the data")
        else:
            self._end = end
            if not 0 <= pos <= end <= len(data):
                raise ValueError("reader bounds outside the data")

    @property
    def position(self) -> int:
        """Offset of the next byte to read."""
        return self._pos

    @property
    def remaining(self) -> int:
        """Bytes left before the end."""
        return self._end - self._pos

    @property
    def data(self) -> bytes | bytearray | memoryview:
        """The underlying buffer."""
        return self._data

    def eof(self) -> bool:
        """True when every byte has been read."""
        return self._pos >= self._end

    def seek(self, pos: int) -> None:
        """Move to absolute offset ``pos``."""
        if not 0 <= pos <= self._end:
            raise BufferReadError("seek outside the buffer")
        self._pos = pos

    def skip(self, n: int) -> None:
        """Skip ``n`` bytes."""
        self._need(n)
        self._pos += n

    def _need(self, n: int) -> None:
        if n < 0 or self._pos + n > self._end:
            raise _short(n, self._end - self._pos)

    def pull_uint8(self) -> int:
        p = self._pos
        if p >= self._end:
            raise BufferReadError("need 1 byte, 0 left")
        self._pos = p + 1
        return self._data[p]

    def pull_uint16(self) -> int:
        p = self._pos
        q = p + 2
        if q > self._end:
            raise _short(2, self._end - p)
        self._pos = q
        d = self._data
        return (d[p] << 8) | d[p + 1]

    def pull_uint24(self) -> int:
        p = self._pos
        q = p + 3
        if q > self._end:
            raise _short(3, self._end - p)
        self._pos = q
        d = self._data
        return (d[p] << 16) | (d[p + 1] << 8) | d[p + 2]

    def pull_uint32(self) -> int:
        p = self._pos
        q = p + 4
        if q > self._end:
            raise _short(4, self._end - p)
        self._pos = q
        value: int = _U32.unpack_from(self._data, p)[0]
        return value

    def pull_uint64(self) -> int:
        p = self._pos
        q = p + 8
        if q > self._end:
            raise _short(8, self._end - p)
        self._pos = q
        value: int = _U64.unpack_from(self._data, p)[0]
        return value

    def pull_uint(self, size: int) -> int:
        """Big-endian unsigned integer of ``size`` bytes (1..8)."""
        self._need(size)
        p = self._pos
        self._pos = p + size
        return int.from_bytes(self._data[p : p + size], "big")

    def pull_varint(self) -> int:
        p = self._pos
        end = self._end
        if p >= end:
            raise BufferReadError("varint past the end of the buffer")
        data = self._data
        first = data[p]
        if first < 0x40:
            self._pos = p + 1
            return first
        if first < 0x80:
            q = p + 2
            if q > end:
                raise BufferReadError("varint past the end of the buffer")
            self._pos = q
            return ((first & 0x3F) << 8) | data[p + 1]
        value, q = decode_varint(data, p)
        if q > end:
            raise BufferReadError("varint past the end of the buffer")
        self._pos = q
        return value

    def pull_bytes(self, n: int) -> bytes:
        p = self._pos
        q = p + n
        if n < 0 or q > self._end:
            raise _short(n, self._end - p)
        self._pos = q
        return bytes(self._view[p:q])

    def pull_view(self, n: int) -> memoryview:
        p = self._pos
        q = p + n
        if n < 0 or q > self._end:
            raise _short(n, self._end - p)
        self._pos = q
        return self._view[p:q]

    def pull_rest(self) -> bytes:
        """Everything up to the end."""
        p = self._pos
        self._pos = self._end
        return bytes(self._view[p : self._end])

    def pull_varint_bytes(self) -> bytes:
        """A varint length followed by that many bytes."""
        return self.pull_bytes(self.pull_varint())

    def pull_uint8_bytes(self) -> bytes:
        """A one-byte length followed by that many bytes (TLS ``<0..255>`` vectors)."""
        p = self._pos
        if p >= self._end:
            raise BufferReadError("need 1 byte, 0 left")
        q = p + 1 + self._data[p]
        if q > self._end:
            raise _short(q - p - 1, self._end - p - 1)
        self._pos = q
        return bytes(self._view[p + 1 : q])

    def pull_uint16_bytes(self) -> bytes:
        """A two-byte length followed by that many bytes (TLS ``<0..2^16-1>`` vectors)."""
        p = self._pos
        end = self._end
        if p + 2 > end:
            raise _short(2, end - p)
        d = self._data
        q = p + 2 + ((d[p] << 8) | d[p + 1])
        if q > end:
            raise _short(q - p - 2, end - p - 2)
        self._pos = q
        return bytes(self._view[p + 2 : q])

    def pull_uint24_bytes(self) -> bytes:
        """A three-byte length followed by that many bytes (TLS ``<0..2^24-1>`` vectors)."""
        return self.pull_bytes(self.pull_uint24())

    def sub_reader(self, n: int) -> Reader:
        """A reader over the next ``n`` bytes; this reader skips past them."""
        p = self._pos
        q = p + n
        if n < 0 or q > self._end:
            raise _short(n, self._end - p)
        self._pos = q
        sub = _new_reader(Reader)
        sub._data = self._data
        sub._view = self._view
        sub._pos = p
        sub._end = q
        return sub


_new_reader: Final = object.__new__


@final
class Writer:
    """Append-only writer over a ``bytearray``."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def __len__(self) -> int:
        return len(self._buf)

    def getvalue(self) -> bytes:
        return bytes(self._buf)

    @property
    def buffer(self) -> bytearray:
        """The underlying ``bytearray`` (for in-place patching of length fields)."""
        return self._buf

    def push_uint8(self, value: int) -> None:
        self._buf.append(value)

    def push_uint16(self, value: int) -> None:
        self._buf += _U16.pack(value)

    def push_uint24(self, value: int) -> None:
        if not 0 <= value < 1 << 24:
            raise ValueError(f"{value} does not fit in 24 bits")
        self._buf += value.to_bytes(3, "big")

    def push_uint32(self, value: int) -> None:
        self._buf += _U32.pack(value)

    def push_uint64(self, value: int) -> None:
        self._buf += _U64.pack(value)

    def push_uint(self, value: int, size: int) -> None:
        self._buf += value.to_bytes(size, "big")

    def push_varint(self, value: int) -> None:
        self._buf += encode_varint(value)

    def push_bytes(self, data: bytes | bytearray | memoryview) -> None:
        self._buf += data

    def push_varint_bytes(self, data: bytes | bytearray | memoryview) -> None:
        self._buf += encode_varint(len(data))
        self._buf += data

    def push_uint8_bytes(self, data: bytes | bytearray | memoryview) -> None:
        if len(data) > 0xFF:
            raise ValueError("vector longer than 255 bytes")
        self._buf.append(len(data))
        self._buf += data

    def push_uint16_bytes(self, data: bytes | bytearray | memoryview) -> None:
        if len(data) > 0xFFFF:
            raise ValueError("vector longer than 65535 bytes")
        self._buf += _U16.pack(len(data))
        self._buf += data

    def push_uint24_bytes(self, data: bytes | bytearray | memoryview) -> None:
        self.push_uint24(len(data))
        self._buf += data
