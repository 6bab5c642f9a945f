"""The QPACK encoder (RFC 9204 §2.1, §3.2, §4.3-§4.5): sans-IO, shaped like pylsqpack's.

:meth:`Encoder.apply_settings` takes the peer's SETTINGS_QPACK_MAX_TABLE_CAPACITY and
SETTINGS_QPACK_BLOCKED_STREAMS and returns the encoder-stream bytes that set our table
capacity.  :meth:`Encoder.encode` returns ``(encoder_stream_data, field_section)``; the
encoder-stream bytes must be sent before (or with) the field section's stream data for the
peer not to block.  :meth:`Encoder.feed_decoder` takes the peer's decoder-stream bytes.

Policy, in the order a field line is tried:

1. an exact static-table match is an indexed static line;
2. ``authorization``, ``proxy-authorization`` (or the names given as
   ``never_indexed_names``) and cookies shorter than 20 bytes (guessable, RFC 9204 §7.1.3)
   are never-indexed literals (N bit) and never enter the dynamic table;
3. an exact dynamic-table match is referenced if acknowledged, or if this stream may risk
   blocking (it already does, or fewer than the peer's ``blocked_streams`` streams do);
   entries in the oldest quarter of the table (the *draining* zone, RFC 9204 §2.1.1.1) are
   first copied with Duplicate so the old copy can be evicted;
4. otherwise the field is inserted when the entry is at most 3/4 of the table capacity and,
   for names whose values rarely repeat (``:path``, ``content-length``, ``date``, ``etag``
   ...), when this exact field was seen before; the insertion is referenced when blocking is
   allowed, else it is speculative (used by later sections once acknowledged);
5. otherwise a literal with a static name reference, a dynamic name reference (acknowledged
   or allowed to block), or a literal name.

Eviction only takes entries that are acknowledged and referenced by no unacknowledged field
section; when room cannot be made the field is sent as a literal.  Base is set to the
Required Insert Count, so dynamic references are all relative and the prefix's Delta Base
is 0.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from itertools import chain
from typing import Final, cast, final

from .._buffer import BufferReadError
from ._errors import DecoderStreamError, EncodingError
from ._instructions import (
    ENTRY_OVERHEAD,
    Duplicate,
    InsertWithLiteralName,
    InsertWithNameReference,
    SetDynamicTableCapacity,
    decode_integer,
    write_encoder_instruction,
    write_indexed_dynamic,
    write_indexed_static,
    write_literal_dynamic_name,
    write_literal_literal_name,
    write_literal_static_name,
    write_section_prefix,
)
from ._static_table import PRIVATE_NAMES as _PRIVATE_NAMES
from ._static_table import STATIC_FIELD_INDEX, STATIC_NAME_INDEX, STATIC_TABLE

__all__ = ["NEVER_INDEXED_NAMES", "VOLATILE_NAMES", "Encoder"]

NEVER_INDEXED_NAMES: Final = frozenset({b"authorization", b"proxy-authorization"})
SHORT_COOKIE: Final = 20
# values of these fields seldom repeat: insert one only on its second sighting
VOLATILE_NAMES: Final = frozenset({
    b":path", b"age", b"content-length", b"content-md5", b"content-range", b"date",
    b"digest", b"etag", b"expires", b"if-modified-since", b"if-none-match", b"if-range",
    b"last-modified", b"location", b"range", b"request-id", b"set-cookie", b"traceparent",
    b"tracestate", b"x-amzn-trace-id", b"x-request-id",
})
_HISTORY_ENTRIES: Final = 512
# encoded literal lines are remembered per encoder (cookies too big for the table repeat on
# every request); the cache is emptied when it would hold more than this many bytes
_CACHE_BUDGET: Final = 256 * 1024
_CACHE_ENTRIES: Final = 2048
# whole encoded sections whose every line is stable (see Encoder.encode), at most this many
# (then emptied), of at most this many bytes of names and values each
_SECTION_CACHE_ENTRIES: Final = 256
_SECTION_CACHE_SECTION: Final = 4096
#: Small sections (see ``literal_section_size``) as encoders with the default never-indexed
#: names encode them, by Huffman use and field lines: static lines and literals only, so
#: the same bytes on every connection (a new connection's first request is not encoded line
#: by line).  At most _SECTION_CACHE_ENTRIES (then emptied).
_small_sections: dict[tuple[bool, int, tuple[tuple[bytes, bytes], ...]], bytes] = {}


def _static_line(index: int) -> bytes:
    buf = bytearray()
    write_indexed_static(buf, index)
    return bytes(buf)


_STATIC_LINES: Final = tuple(_static_line(index) for index in range(len(STATIC_TABLE)))

# a planned field line: pre-encoded bytes, an absolute index (indexed dynamic line), or
# (absolute index of the name, value) for a literal with a dynamic name reference
_Part = bytes | int | tuple[int, bytes]


@final
class Encoder:
    """Encode field sections for one HTTP/3 connection.

    Args:
        capacity_limit: the most dynamic-table memory this encoder uses, whatever the peer
            allows (RFC 9204 §3.2.3 lets the encoder choose less).
        huffman: Huffman-code string literals when that makes them shorter.
        never_indexed_names: field names always sent as never-indexed literals (N bit) and
            kept out of the dynamic table; cookies shorter than 20 bytes are treated so too.
        literal_section_size: a field section whose lines outside the static table hold at
            most this many bytes of names and values is sent as static lines and literals
            only: it neither inserts nor references dynamic entries, so the peer sends no
            Section Acknowledgment for it (RFC 9204 §4.4.1), which would cost more than the
            few bytes the table saves; 0 (the default) leaves every section to the policy.
    """

    __slots__ = (
        "_blocked_limit",
        "_blocking",
        "_capacity",
        "_capacity_limit",
        "_decoder_buffer",
        "_drain_limit",
        "_draining",
        "_dropped",
        "_entries",
        "_field_index",
        "_history",
        "_huffman",
        "_insert_count",
        "_known_received",
        "_literal_cache",
        "_literal_cache_bytes",
        "_literal_section_size",
        "_live",
        "_max_entries",
        "_name_index",
        "_never_indexed",
        "_refs",
        "_section_cache",
        "_sections",
        "_settings_applied",
        "_size",
    )

    def __init__(
        self,
        *,
        capacity_limit: int = 65536,
        huffman: bool = True,
        never_indexed_names: Iterable[bytes] = NEVER_INDEXED_NAMES,
        literal_section_size: int = 0,
    ) -> None:
        if capacity_limit < 0:
            raise ValueError("capacity_limit must not be negative")
        if literal_section_size < 0:
            raise ValueError("literal_section_size must not be negative")
        self._literal_section_size = literal_section_size
        self._capacity_limit = capacity_limit
        self._huffman = huffman
        self._never_indexed = (
            NEVER_INDEXED_NAMES
            if never_indexed_names is NEVER_INDEXED_NAMES
            else frozenset(never_indexed_names)
        )
        self._settings_applied = False
        self._max_entries = 0
        self._capacity = 0
        self._drain_limit = 0
        self._blocked_limit = 0
        # absolute index -> (name, value, size); entries [_dropped, _insert_count) are present
        self._entries: dict[int, tuple[bytes, bytes, int]] = {}
        self._field_index: dict[tuple[bytes, bytes], int] = {}  # newest entry per field
        self._name_index: dict[bytes, int] = {}  # newest entry per name
        self._insert_count = 0
        self._dropped = 0
        self._size = 0
        self._draining = 0  # entries below this index get no new references
        self._live = 0  # size of the entries from _draining up
        self._known_received = 0
        self._refs: dict[int, int] = {}  # absolute index -> unacknowledged references
        # stream id -> its unacknowledged sections with dynamic references: (RIC, refs)
        self._sections: dict[int, deque[tuple[int, tuple[int, ...]]]] = {}
        # stream id -> highest Required Insert Count above the Known Received Count
        self._blocking: dict[int, int] = {}
        self._history: dict[int, None] = {}
        self._literal_cache: dict[tuple[bytes, bytes], bytes] = {}
        self._literal_cache_bytes = 0
        self._decoder_buffer = bytearray()
        # field lines -> (insert count, field section, dynamic references, Required Insert
        # Count): sections made of static lines and acknowledged, undrained dynamic references
        # only.  Such a section encodes to the same bytes and references again as long as no
        # entry was inserted since (inserting is the only way the table, the newest entry per
        # field or the draining zone change; the Known Received Count only grows).
        self._section_cache: dict[
            tuple[tuple[bytes, bytes], ...], tuple[int, bytes, tuple[int, ...], int]
        ] = {}

    def apply_settings(self, max_table_capacity: int, blocked_streams: int) -> bytes:
        """Adopt the peer decoder's QPACK settings; call once, when its SETTINGS arrive.

        Args:
            max_table_capacity: the peer's SETTINGS_QPACK_MAX_TABLE_CAPACITY.
            blocked_streams: the peer's SETTINGS_QPACK_BLOCKED_STREAMS.

        Returns:
            Encoder-stream bytes (Set Dynamic Table Capacity), empty when the table stays
            unused.
        """
        if self._settings_applied:
            raise ValueError("QPACK encoder settings were already applied")
        if max_table_capacity < 0 or blocked_streams < 0:
            raise ValueError("QPACK settings must not be negative")
        self._settings_applied = True
        self._section_cache.clear()
        self._max_entries = max_table_capacity // 32
        self._blocked_limit = blocked_streams
        capacity = min(max_table_capacity, self._capacity_limit)
        if capacity < ENTRY_OVERHEAD:
            return b""  # not even an empty field fits: leave the table unused
        self._capacity = capacity
        self._drain_limit = capacity * 3 // 4
        buf = bytearray()
        write_encoder_instruction(buf, SetDynamicTableCapacity(capacity=capacity))
        return bytes(buf)

    # --- encoding --------------------------------------------------------------------

    def encode(
        self, stream_id: int, headers: Sequence[tuple[bytes, bytes]]
    ) -> tuple[bytes, bytes]:
        """Encode one field section for ``stream_id``.

        Returns:
            ``(encoder_stream_data, field_section)``.
        """
        if stream_id < 0:
            raise ValueError("stream_id must not be negative")
        try:
            key: tuple[tuple[bytes, bytes], ...] | None = tuple(headers)
            cached = self._section_cache.get(key)  # type: ignore[arg-type]
        except (TypeError, ValueError):  # unhashable parts: encoded, not remembered
            key = cached = None
        if cached is not None and cached[0] == self._insert_count:
            _, remembered, cached_refs, required = cached
            if cached_refs:
                counts = self._refs
                for absolute in cached_refs:
                    counts[absolute] = counts.get(absolute, 0) + 1
                sections = self._sections.get(stream_id)
                if sections is None:
                    self._sections[stream_id] = deque(((required, cached_refs),))
                else:
                    sections.append((required, cached_refs))
            return b"", remembered
        dynamic = self._capacity > 0
        if dynamic and key is not None and self._literal_section_size:
            small = self._encode_small(key)
            if small is not None:
                return b"", small
        encoder_stream = bytearray()
        parts: list[_Part] = []
        refs: list[int] = []
        never_indexed = self._never_indexed
        can_block = stream_id in self._blocking or len(self._blocking) < self._blocked_limit
        # whether every line is static or an acknowledged, undrained dynamic reference (or,
        # with the table unused, a literal that may be kept): then the section is remembered
        stable = key is not None
        for name, value in headers:
            static_index = STATIC_FIELD_INDEX.get((name, value))
            if static_index is not None:
                parts.append(_STATIC_LINES[static_index])
                continue
            never = name in never_indexed or (
                name == b"cookie" and len(value) < SHORT_COOKIE
            )
            if dynamic and not never:
                part = self._plan_dynamic(name, value, can_block, encoder_stream, refs)
                if part is not None:
                    parts.append(part)
                    if stable and (
                        type(part) is not int
                        or part >= self._known_received
                        or part < self._draining
                    ):
                        stable = False
                    continue
                stable = False
            elif never:
                stable = False  # credentials are not kept around
            parts.append(self._literal(name, value, never))
        if stable and encoder_stream:
            stable = False
        if not refs:
            # no dynamic references: every part is pre-encoded bytes
            static_section = b"\x00\x00" + b"".join(cast(list[bytes], parts))
            if stable:
                self._remember_section(key, static_section, (), 0)
            return bytes(encoder_stream), static_section
        required = max(refs) + 1
        section = bytearray()
        write_section_prefix(section, required, required, self._max_entries)
        base_minus_one = required - 1
        for part in parts:
            if isinstance(part, bytes):
                section += part
            elif isinstance(part, int):
                write_indexed_dynamic(section, base_minus_one - part)
            else:
                absolute, value = part
                write_literal_dynamic_name(
                    section, base_minus_one - absolute, value, huffman=self._huffman
                )
        section_refs = tuple(refs)
        self._sections.setdefault(stream_id, deque()).append((required, section_refs))
        if required > self._known_received and required > self._blocking.get(stream_id, 0):
            self._blocking[stream_id] = required
        encoded = bytes(section)
        if stable:
            self._remember_section(key, encoded, section_refs, required)
        return bytes(encoder_stream), encoded

    def _encode_small(self, key: tuple[tuple[bytes, bytes], ...]) -> bytes | None:
        """The section as static lines and literals if it is small (see
        ``literal_section_size``), else None."""
        # (the budget is part of the key: a hit never sends what this encoder's own budget
        # would have put in the dynamic table)
        shared_key = (self._huffman, self._literal_section_size, key)
        if self._never_indexed is NEVER_INDEXED_NAMES:
            shared = _small_sections.get(shared_key)
            if shared is not None:
                return shared
        budget = self._literal_section_size
        never_indexed = self._never_indexed
        lines: list[bytes] = []
        remember = True
        for name, value in key:
            static_index = STATIC_FIELD_INDEX.get((name, value))
            if static_index is not None:
                lines.append(_STATIC_LINES[static_index])
                continue
            budget -= len(name) + len(value)
            if budget < 0:
                return None
            never = name in never_indexed or (name == b"cookie" and len(value) < SHORT_COOKIE)
            if never or name in _PRIVATE_NAMES:
                remember = False  # credentials and cookies are not kept around
            lines.append(self._literal(name, value, never))
        section = b"\x00\x00" + b"".join(lines)
        if remember:
            self._remember_section(key, section, (), 0)
            if (
                never_indexed is NEVER_INDEXED_NAMES
                and len(section) <= _SECTION_CACHE_SECTION
                # static lines count 1-2 bytes in the section: bound the key's size too
                and sum(map(len, chain.from_iterable(key))) <= _SECTION_CACHE_SECTION
            ):
                if len(_small_sections) >= _SECTION_CACHE_ENTRIES:
                    _small_sections.clear()
                _small_sections[shared_key] = section
        return section

    def _remember_section(
        self,
        key: tuple[tuple[bytes, bytes], ...] | None,
        section: bytes,
        refs: tuple[int, ...],
        required: int,
    ) -> None:
        assert key is not None
        if sum(map(len, chain.from_iterable(key))) > _SECTION_CACHE_SECTION:
            return
        cache = self._section_cache
        if len(cache) >= _SECTION_CACHE_ENTRIES:
            cache.clear()
        cache[key] = (self._insert_count, section, refs, required)

    def _plan_dynamic(
        self,
        name: bytes,
        value: bytes,
        can_block: bool,
        encoder_stream: bytearray,
        refs: list[int],
    ) -> _Part | None:
        """Choose a dynamic-table representation, or None for a static/literal one."""
        key = (name, value)
        known = self._known_received
        absolute = self._field_index.get(key)
        if absolute is not None:
            if absolute < self._draining:
                # the copy is inserted whether or not this section may use it yet; the
                # original is protected from the eviction the copy causes
                copy = self._insert(name, value, encoder_stream, duplicate_of=absolute)
                if copy is not None and can_block:
                    return self._reference(copy, refs)
            if absolute < known or can_block:
                return self._reference(absolute, refs)
        elif self._worth_inserting(name, key):
            inserted = self._insert(name, value, encoder_stream)
            if inserted is not None and can_block:
                return self._reference(inserted, refs)
        if name in STATIC_NAME_INDEX:
            return None
        name_entry = self._name_index.get(name)
        if (
            name_entry is not None
            and name_entry >= self._draining
            and (name_entry < known or can_block)
        ):
            self._reference(name_entry, refs)
            return (name_entry, value)
        return None

    def _reference(self, absolute: int, refs: list[int]) -> int:
        refs.append(absolute)
        self._refs[absolute] = self._refs.get(absolute, 0) + 1
        return absolute

    def _worth_inserting(self, name: bytes, key: tuple[bytes, bytes]) -> bool:
        if len(name) + len(key[1]) + ENTRY_OVERHEAD > self._drain_limit:
            return False
        if name not in VOLATILE_NAMES:
            return True
        history = self._history
        fingerprint = hash(key)
        if fingerprint in history:
            return True
        history[fingerprint] = None
        if len(history) > _HISTORY_ENTRIES:
            del history[next(iter(history))]
        return False

    def _literal(self, name: bytes, value: bytes, never: bool) -> bytes:
        if not never:  # never-indexed values (credentials) are not kept around
            cached = self._literal_cache.get((name, value))
            if cached is not None:
                return cached
        buf = bytearray()
        static_name = STATIC_NAME_INDEX.get(name)
        if static_name is not None:
            write_literal_static_name(buf, static_name, value, never, self._huffman)
        else:
            write_literal_literal_name(buf, name, value, never, self._huffman)
        line = bytes(buf)
        if not never:
            cost = len(name) + len(value) + len(line)
            if (
                self._literal_cache_bytes + cost > _CACHE_BUDGET
                or len(self._literal_cache) >= _CACHE_ENTRIES
            ):
                self._literal_cache.clear()
                self._literal_cache_bytes = 0
            if cost <= _CACHE_BUDGET:
                self._literal_cache[(name, value)] = line
                self._literal_cache_bytes += cost
        return line

    # --- the dynamic table -----------------------------------------------------------

    def _insert(
        self, name: bytes, value: bytes, encoder_stream: bytearray, duplicate_of: int = -1
    ) -> int | None:
        """Insert (or duplicate) an entry if room can be made; return its absolute index."""
        size = len(name) + len(value) + ENTRY_OVERHEAD
        if duplicate_of >= 0:
            # never evict the entry being duplicated (some decoders would lose it)
            if not self._make_room(size, protect=duplicate_of):
                return None
            relative = self._insert_count - 1 - duplicate_of
            write_encoder_instruction(encoder_stream, Duplicate(index=relative))
        else:
            if not self._make_room(size):
                return None
            static_name = STATIC_NAME_INDEX.get(name)
            # looked up after eviction, so the name's source entry is still in the table
            dynamic_name = self._name_index.get(name)
            instruction: InsertWithNameReference | InsertWithLiteralName
            if static_name is not None:
                instruction = InsertWithNameReference(static=True, index=static_name, value=value)
            elif dynamic_name is not None:
                relative = self._insert_count - 1 - dynamic_name
                instruction = InsertWithNameReference(static=False, index=relative, value=value)
            else:
                instruction = InsertWithLiteralName(name=name, value=value)
            write_encoder_instruction(encoder_stream, instruction, self._huffman)
        absolute = self._insert_count
        self._entries[absolute] = (name, value, size)
        self._field_index[(name, value)] = absolute
        self._name_index[name] = absolute
        self._insert_count = absolute + 1
        self._size += size
        self._live += size
        entries = self._entries
        while self._live > self._drain_limit and self._draining < absolute:
            self._live -= entries[self._draining][2]
            self._draining += 1
        return absolute

    def _make_room(self, size: int, protect: int = -1) -> bool:
        if size > self._capacity:
            return False
        excess = self._size + size - self._capacity
        if excess <= 0:
            return True
        entries, refs, known = self._entries, self._refs, self._known_received
        index, freed = self._dropped, 0
        while freed < excess:
            # evictable: acknowledged and not referenced by an unacknowledged section
            if index >= known or index == protect or index in refs:
                return False
            freed += entries[index][2]
            index += 1
        while self._dropped < index:
            self._evict_oldest()
        return True

    def _evict_oldest(self) -> None:
        absolute = self._dropped
        name, value, size = self._entries.pop(absolute)
        if self._field_index.get((name, value)) == absolute:
            del self._field_index[(name, value)]
        if self._name_index.get(name) == absolute:
            del self._name_index[name]
        self._size -= size
        self._dropped = absolute + 1
        if absolute >= self._draining:
            self._live -= size
            self._draining = absolute + 1

    # --- the decoder stream ----------------------------------------------------------

    def feed_decoder(self, data: bytes) -> None:
        """Process bytes from the peer's decoder stream (a partial instruction is kept).

        Raises:
            DecoderStreamError: an instruction is invalid.
        """
        buf = self._decoder_buffer
        if buf:
            buf += data
            source: bytes | bytearray = buf
        else:
            source = data  # parsed in place; only a partial instruction is kept
        pos = 0
        try:
            end = len(source)
            while pos < end:
                first = source[pos]
                try:
                    if first & 0x80:
                        if first != 0xFF:  # a Section Acknowledgment for a stream below 127
                            pos += 1
                            self._section_acknowledged(first & 0x7F)
                            continue
                        stream_id, pos = decode_integer(source, pos, 7)
                        self._section_acknowledged(stream_id)
                        continue
                    value, pos = decode_integer(source, pos, 6)
                except BufferReadError:
                    break
                if first & 0x40:
                    self._stream_cancelled(value)
                else:
                    self._insert_count_increment(value)
        except EncodingError as exc:
            raise DecoderStreamError(str(exc)) from exc
        finally:
            if source is buf:
                del buf[:pos]
            elif pos < len(source):
                buf += source[pos:]

    def _section_acknowledged(self, stream_id: int) -> None:
        sections = self._sections.get(stream_id)
        if not sections:
            raise DecoderStreamError(f"Section Acknowledgment for stream {stream_id}, which "
                                     "has no unacknowledged field section")
        required, refs = sections.popleft()
        if not sections:
            del self._sections[stream_id]
        counts = self._refs
        for absolute in refs:
            remaining = counts[absolute] - 1
            if remaining:
                counts[absolute] = remaining
            else:
                del counts[absolute]
        if required > self._known_received:
            self._known_received = required
            self._prune_blocking()
        if stream_id in self._blocking:
            highest = max((ric for ric, _ in sections), default=0)
            if highest > self._known_received:
                self._blocking[stream_id] = highest
            else:
                del self._blocking[stream_id]

    def _stream_cancelled(self, stream_id: int) -> None:
        for _, refs in self._sections.pop(stream_id, ()):
            self._release(refs)
        self._blocking.pop(stream_id, None)

    def _insert_count_increment(self, increment: int) -> None:
        if increment == 0:
            raise DecoderStreamError("Insert Count Increment of 0")
        if self._known_received + increment > self._insert_count:
            raise DecoderStreamError(
                f"Insert Count Increment to {self._known_received + increment}, beyond the "
                f"{self._insert_count} entries inserted"
            )
        self._known_received += increment
        self._prune_blocking()

    def _release(self, refs: tuple[int, ...]) -> None:
        counts = self._refs
        for absolute in refs:
            remaining = counts[absolute] - 1
            if remaining:
                counts[absolute] = remaining
            else:
                del counts[absolute]

    def _prune_blocking(self) -> None:
        known = self._known_received
        for stream_id in [s for s, ric in self._blocking.items() if ric <= known]:
            del self._blocking[stream_id]
