"""The QPACK decoder (RFC 9204 §2.2, §3.2, §4.3-§4.5): sans-IO, shaped like pylsqpack's.

Bytes from the peer's encoder stream go to :meth:`Decoder.feed_encoder`; each encoded field
section (the payload of an HTTP/3 HEADERS frame) goes to :meth:`Decoder.feed_header`.  Every
method returns the bytes to write on our decoder stream.  A section that needs dynamic table
entries which have not arrived yet raises :class:`StreamBlocked`; the decoder keeps it, and
:meth:`Decoder.feed_encoder` names the stream once the entries are in, after which
:meth:`Decoder.resume_header` decodes it.

Limits the peer cannot push past: the table capacity we advertised, the number of blocked
streams we advertised, ``max_field_section_size`` for a decoded section (checked field by
field, so a section referencing one huge entry many times stops early), string literals on
the encoder stream no longer than the table could hold, integers of at most 62 bits, and a
partial encoder-stream instruction buffered only up to the size of the largest valid one.
"""

from __future__ import annotations

from typing import Final, final

from .._buffer import BufferReadError
from ._errors import (
    DecompressionFailed,
    EncoderStreamError,
    EncodingError,
    FieldSectionTooLargeError,
    StreamBlocked,
)
from ._huffman import huffman_decode
from ._instructions import (
    ENTRY_OVERHEAD,
    Duplicate,
    InsertWithLiteralName,
    InsertWithNameReference,
    SetDynamicTableCapacity,
    StreamCancellation,
    decode_integer,
    decode_required_insert_count,
    parse_encoder_instruction,
    write_decoder_instruction,
    write_integer,
)
from ._static_table import PRIVATE_NAMES, STATIC_TABLE

__all__ = ["Decoder", "Headers"]

Headers = list[tuple[bytes, bytes]]

_STATIC_COUNT: Final = len(STATIC_TABLE)
# decoded Huffman strings are remembered per decoder (a cookie too big for the table arrives
# as the same literal on every request); emptied when it would hold more than this many bytes
_STRING_CACHE_BUDGET: Final = 256 * 1024
_STRING_CACHE_ENTRIES: Final = 2048
# decoded field sections, by (Required Insert Count, encoded bytes): at most this many, of at
# most this many encoded or decoded bytes each
_SECTION_CACHE_ENTRIES: Final = 512
_SECTION_CACHE_SECTION: Final = 4096
#: Sections with Required Insert Count 0 (static lines and literals only: their bytes alone
#: fix their meaning), shared by every decoder, so a new connection's first request or
#: response is not decoded line by line again: section -> (field lines, size as counted
#: against max_field_section_size).  At most _SECTION_CACHE_ENTRIES (then emptied).
_static_sections: dict[bytes, tuple[tuple[tuple[bytes, bytes], ...], int]] = {}


@final
class Decoder:
    """Decode field sections for one HTTP/3 connection.

    Args:
        max_table_capacity: the SETTINGS_QPACK_MAX_TABLE_CAPACITY we advertise.
        blocked_streams: the SETTINGS_QPACK_BLOCKED_STREAMS we advertise.
        max_field_section_size: the largest decoded section we accept, counted as
            name + value + 32 bytes per field line (RFC 9114 §4.2.2); larger sections raise
            :class:`FieldSectionTooLargeError`.
    """

    __slots__ = (
        "_blocked",
        "_blocked_limit",
        "_capacity",
        "_dropped",
        "_encoder_buffer",
        "_entries",
        "_insert_count",
        "_known_received",
        "_max_capacity",
        "_max_entries",
        "_max_field_section_size",
        "_never_indexed_seen",
        "_size",
        "_section_cache",
        "_string_cache",
        "_string_cache_bytes",
    )

    def __init__(
        self,
        max_table_capacity: int,
        blocked_streams: int,
        *,
        max_field_section_size: int = 65536,
    ) -> None:
        if max_table_capacity < 0 or blocked_streams < 0 or max_field_section_size < 0:
            raise ValueError("QPACK decoder limits must not be negative")
        self._max_capacity = max_table_capacity
        self._max_entries = max_table_capacity // 32
        self._blocked_limit = blocked_streams
        self._max_field_section_size = max_field_section_size
        self._never_indexed_seen = False  # the last section decoded had an N bit
        self._capacity = 0
        # absolute index -> (name, value); entries [_dropped, _insert_count) are present
        self._entries: dict[int, tuple[bytes, bytes]] = {}
        self._dropped = 0
        self._insert_count = 0
        self._size = 0
        # the Known Received Count as the peer's encoder sees it after our instructions
        self._known_received = 0
        # stream id -> (Required Insert Count, section bytes), in arrival order
        self._blocked: dict[int, tuple[int, bytes]] = {}
        self._encoder_buffer = bytearray()
        self._string_cache: dict[bytes, bytes] = {}
        self._string_cache_bytes = 0
        # section -> (field lines, Required Insert Count, insert count and _dropped when
        # decoded): a section's meaning is fixed by its bytes and the absolute indices they
        # name, so a repeat is the same field lines as long as its Required Insert Count is
        # the same and no entry was evicted since (none it used can be gone); with the insert
        # count unchanged too, the Required Insert Count is (it depends on nothing else)
        self._section_cache: dict[
            bytes, tuple[tuple[tuple[bytes, bytes], ...], int, int, int]
        ] = {}

    # --- the encoder stream ----------------------------------------------------------

    def feed_encoder(self, data: bytes) -> list[int]:
        """Process bytes from the peer's encoder stream.

        A partial instruction at the end is kept until the rest arrives.  Insert Count
        Increments for the new entries are returned by the next :meth:`data_to_send` (or
        with the next ``feed_header`` / ``resume_header`` / ``cancel_stream`` result).

        Returns:
            The blocked streams that can now be decoded with :meth:`resume_header`, in the
            order they blocked.

        Raises:
            EncoderStreamError: an instruction is invalid.
        """
        buf = self._encoder_buffer
        buf += data
        pos = 0
        end = len(buf)
        try:
            while pos < end:
                # a string literal can be no longer than the table could ever hold; Huffman
                # coding shrinks a byte to at least 5 bits, so bound the encoded length by
                # the decoded bound times 30/8, rounded up generously
                bound = 4 * self._capacity + 8
                try:
                    instruction, new_pos = parse_encoder_instruction(buf, pos, bound)
                except BufferReadError:
                    break
                pos = new_pos
                match instruction:
                    case InsertWithNameReference(static=True, index=index, value=value):
                        if index >= _STATIC_COUNT:
                            raise EncoderStreamError(f"static table index {index} out of range")
                        self._insert(STATIC_TABLE[index][0], value)
                    case InsertWithNameReference(index=index, value=value):
                        self._insert(self._encoder_entry(index)[0], value)
                    case InsertWithLiteralName(name=name, value=value):
                        self._insert(name, value)
                    case Duplicate(index=index):
                        self._insert(*self._encoder_entry(index))
                    case SetDynamicTableCapacity(capacity=capacity):
                        self._set_capacity(capacity)
        except EncodingError as exc:
            raise EncoderStreamError(str(exc)) from exc
        finally:
            del buf[:pos]
        if not self._blocked:
            return []
        insert_count = self._insert_count
        return [sid for sid, (ric, _) in self._blocked.items() if ric <= insert_count]

    def _encoder_entry(self, relative_index: int) -> tuple[bytes, bytes]:
        absolute = self._insert_count - 1 - relative_index
        if absolute < self._dropped:
            raise EncoderStreamError(f"relative index {relative_index} refers to no entry")
        return self._entries[absolute]

    def _set_capacity(self, capacity: int) -> None:
        if capacity > self._max_capacity:
            raise EncoderStreamError(
                f"table capacity {capacity} exceeds our maximum {self._max_capacity}"
            )
        self._capacity = capacity
        self._evict_to(capacity)

    def _insert(self, name: bytes, value: bytes) -> None:
        size = len(name) + len(value) + ENTRY_OVERHEAD
        if size > self._capacity:
            raise EncoderStreamError(
                f"entry of {size} bytes exceeds the table capacity {self._capacity}"
            )
        self._evict_to(self._capacity - size)
        self._entries[self._insert_count] = (name, value)
        self._insert_count += 1
        self._size += size

    def _evict_to(self, limit: int) -> None:
        entries = self._entries
        while self._size > limit:
            name, value = entries.pop(self._dropped)
            self._dropped += 1
            self._size -= len(name) + len(value) + ENTRY_OVERHEAD

    # --- field sections --------------------------------------------------------------

    def feed_header(self, stream_id: int, data: bytes) -> tuple[bytes, Headers]:
        """Decode the encoded field section ``data`` received on ``stream_id``.

        Returns:
            ``(decoder_stream_data, headers)``: bytes to send on our decoder stream (Section
            Acknowledgment, Insert Count Increment) and the field lines in order.

        Raises:
            StreamBlocked: the section needs entries not received yet; it is kept.
            DecompressionFailed: the section is invalid, or one more blocked stream would
                exceed the limit we advertised.
            FieldSectionTooLargeError: the decoded section exceeds ``max_field_section_size``.
            ValueError: a section for ``stream_id`` is already blocked.
        """
        if stream_id in self._blocked:
            raise ValueError(f"a field section for stream {stream_id} is already blocked")
        data = bytes(data)
        if data[:1] == b"\x00":  # Required Insert Count 0: the same lines on any decoder
            shared = _static_sections.get(data)
            if shared is not None and shared[1] <= self._max_field_section_size:
                return self._write_pending(), list(shared[0])
        cached = self._section_cache.get(data)
        if (
            cached is not None
            and cached[2] == self._insert_count
            and cached[3] == self._dropped
        ):
            # decoded before with the same table: the same Required Insert Count and lines
            return self._acknowledge(stream_id, cached[1]), list(cached[0])
        try:
            encoded, pos = decode_integer(data, 0, 8)
            required = decode_required_insert_count(
                encoded, self._max_entries, self._insert_count
            )
        except (BufferReadError, EncodingError) as exc:
            raise DecompressionFailed(f"bad field section prefix: {exc}") from exc
        if required > self._insert_count:
            if len(self._blocked) >= self._blocked_limit:
                raise DecompressionFailed(
                    f"stream {stream_id} would exceed {self._blocked_limit} blocked streams"
                )
            self._blocked[stream_id] = (required, data)
            raise StreamBlocked(f"stream {stream_id} needs {required} inserts")
        return self._decode(stream_id, data, pos, required)

    def resume_header(self, stream_id: int) -> tuple[bytes, Headers]:
        """Decode the section of a stream that :meth:`feed_encoder` reported unblocked.

        Raises:
            ValueError: ``stream_id`` has no blocked section.
            StreamBlocked: the section still needs entries (it stays blocked).
            DecompressionFailed, FieldSectionTooLargeError: as :meth:`feed_header`.
        """
        try:
            required, data = self._blocked[stream_id]
        except KeyError:
            raise ValueError(f"stream {stream_id} has no blocked field section") from None
        if required > self._insert_count:
            raise StreamBlocked(f"stream {stream_id} needs {required} inserts")
        del self._blocked[stream_id]
        _, pos = decode_integer(data, 0, 8)  # parsed once already
        return self._decode(stream_id, data, pos, required)

    def cancel_stream(self, stream_id: int) -> bytes:
        """Abandon ``stream_id`` (reset, or reading stopped): drop any blocked section.

        Returns:
            Decoder-stream bytes: a Stream Cancellation (omitted when our maximum table
            capacity is zero, RFC 9204 §4.4.2) and any pending Insert Count Increment.
        """
        self._blocked.pop(stream_id, None)
        buf = bytearray()
        if self._max_capacity:
            write_decoder_instruction(buf, StreamCancellation(stream_id=stream_id))
        self._write_increment(buf)
        return bytes(buf)

    def data_to_send(self) -> bytes:
        """Decoder-stream bytes not yet returned: an Insert Count Increment, if one is due."""
        buf = bytearray()
        self._write_increment(buf)
        return bytes(buf)

    def _write_increment(self, buf: bytearray) -> None:
        increment = self._insert_count - self._known_received
        if increment > 0:
            write_integer(buf, increment, 6, 0x00)  # Insert Count Increment
            self._known_received = self._insert_count

    def _write_pending(self) -> bytes:
        if self._insert_count == self._known_received:
            return b""
        buf = bytearray()
        self._write_increment(buf)
        return bytes(buf)

    def _decode(
        self, stream_id: int, data: bytes, pos: int, required: int
    ) -> tuple[bytes, Headers]:
        cached = self._section_cache.get(data)
        if cached is not None and cached[1] == required and cached[3] == self._dropped:
            return self._acknowledge(stream_id, required), list(cached[0])
        try:
            headers, size = self._decode_lines(data, pos, required)
        except FieldSectionTooLargeError as exc:
            exc.decoder_stream_data = self._acknowledge(stream_id, required)
            raise
        except (BufferReadError, EncodingError) as exc:
            raise DecompressionFailed(f"stream {stream_id}: {exc}") from exc
        if size <= _SECTION_CACHE_SECTION and len(data) <= _SECTION_CACHE_SECTION:
            if not required:
                # shared by every decoder in the process: never credentials (a never-indexed
                # line, or a name that carries them), which outlive their connection there
                if not self._never_indexed_seen and not any(
                    name in PRIVATE_NAMES for name, _ in headers
                ):
                    if len(_static_sections) >= _SECTION_CACHE_ENTRIES:
                        _static_sections.clear()
                    _static_sections[data] = (tuple(headers), size)
            else:
                cache = self._section_cache
                if len(cache) >= _SECTION_CACHE_ENTRIES:
                    cache.clear()
                cache[data] = (tuple(headers), required, self._insert_count, self._dropped)
        return self._acknowledge(stream_id, required), headers

    def _acknowledge(self, stream_id: int, required: int) -> bytes:
        if not required:
            return self._write_pending()
        # Section Acknowledgment: stream ID as a 7-bit prefix integer
        if stream_id < 0x7F:
            buf = bytearray((0x80 | stream_id,))
        else:
            buf = bytearray()
            write_integer(buf, stream_id, 7, 0x80)
        if required > self._known_received:
            self._known_received = required
        if self._insert_count != self._known_received:
            self._write_increment(buf)
        return bytes(buf)

    def _decode_lines(self, data: bytes, pos: int, required: int) -> tuple[Headers, int]:
        """The field lines and their size (names, values, 32 bytes each)."""
        end = len(data)
        if pos >= end:
            raise BufferReadError("field section prefix ends before Delta Base")
        sign = data[pos] & 0x80
        delta, pos = decode_integer(data, pos, 7)
        if sign:
            if required <= delta:
                raise EncodingError("negative Base")
            base = required - delta - 1
        else:
            base = required + delta
        entries = self._entries
        dropped = self._dropped
        limit = self._max_field_section_size
        static = STATIC_TABLE
        read = self._read_string
        total = 0
        headers: Headers = []
        never = False  # a never-indexed literal (N bit): the section stays out of shared caches
        while pos < end:
            first = data[pos]
            if first & 0x80:
                # Indexed Field Line
                index, pos = decode_integer(data, pos, 6)
                if first & 0x40:
                    if index >= _STATIC_COUNT:
                        raise EncodingError(f"static table index {index} out of range")
                    name, value = static[index]
                else:
                    name, value = self._dynamic(entries, dropped, base - 1 - index, required)
            elif first & 0x40:
                # Literal Field Line with Name Reference
                if first & 0x20:
                    never = True
                index, pos = decode_integer(data, pos, 4)
                if first & 0x10:
                    if index >= _STATIC_COUNT:
                        raise EncodingError(f"static table index {index} out of range")
                    name = static[index][0]
                else:
                    name = self._dynamic(entries, dropped, base - 1 - index, required)[0]
                value, pos = read(data, pos, limit - total - len(name) - ENTRY_OVERHEAD)
            elif first & 0x20:
                # Literal Field Line with Literal Name
                if first & 0x10:
                    never = True
                name, pos = read(data, pos, limit - total - ENTRY_OVERHEAD, 4)
                value, pos = read(data, pos, limit - total - len(name) - ENTRY_OVERHEAD)
            elif first & 0x10:
                # Indexed Field Line with Post-Base Index
                index, pos = decode_integer(data, pos, 4)
                name, value = self._dynamic(entries, dropped, base + index, required)
            else:
                # Literal Field Line with Post-Base Name Reference
                index, pos = decode_integer(data, pos, 3)
                name = self._dynamic(entries, dropped, base + index, required)[0]
                value, pos = read(data, pos, limit - total - len(name) - ENTRY_OVERHEAD)
            total += len(name) + len(value) + ENTRY_OVERHEAD
            if total > limit:
                raise FieldSectionTooLargeError(
                    f"field section exceeds {limit} bytes", decoder_stream_data=b"", limit=limit
                )
            headers.append((name, value))
        self._never_indexed_seen = never
        return headers, total

    @staticmethod
    def _dynamic(
        entries: dict[int, tuple[bytes, bytes]], dropped: int, absolute: int, required: int
    ) -> tuple[bytes, bytes]:
        if absolute >= required:
            raise EncodingError(f"reference to entry {absolute} at or above the Required "
                                f"Insert Count {required}")
        if absolute < dropped:
            raise EncodingError(f"reference to evicted or nonexistent entry {absolute}")
        return entries[absolute]

    def _read_string(
        self, data: bytes, pos: int, room: int, prefix_bits: int = 8
    ) -> tuple[bytes, int]:
        """Read a string literal; FieldSectionTooLargeError when it cannot fit in ``room``."""
        huffman = data[pos] & (1 << (prefix_bits - 1)) if pos < len(data) else 0
        length, pos = decode_integer(data, pos, prefix_bits - 1)
        end = pos + length
        if end > len(data):
            raise BufferReadError("string literal past the end of the field section")
        # Huffman needs at least 5 bits per byte and at most 30, so the decoded string is at
        # least (8 * length - 7) // 30 bytes long
        shortest = (8 * length - 7) // 30 if huffman else length
        if shortest > room:
            limit = self._max_field_section_size
            raise FieldSectionTooLargeError(
                f"field section exceeds {limit} bytes", decoder_stream_data=b"", limit=limit
            )
        raw = data[pos:end]
        if not huffman:
            return raw, end
        cache = self._string_cache
        value = cache.get(raw)
        if value is None:
            value = huffman_decode(raw)
            cost = len(raw) + len(value)
            if (
                self._string_cache_bytes + cost > _STRING_CACHE_BUDGET
                or len(cache) >= _STRING_CACHE_ENTRIES
            ):
                cache.clear()
                self._string_cache_bytes = 0
            if cost <= _STRING_CACHE_BUDGET:
                cache[raw] = value
                self._string_cache_bytes += cost
        return value, end
