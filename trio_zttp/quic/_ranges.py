"""A set of integers stored as sorted, disjoint, half-open ranges.

Used for received packet numbers (the ACK frame's ranges, RFC 9000 §19.3), for acknowledged and
lost stream offsets, and for stream reassembly.

Convention: every range is **half-open**, ``[start, stop)``, as with Python's ``range``.
:meth:`RangeSet.to_ack_ranges` is the one place that converts to the ACK frame's inclusive
``(smallest, largest)`` pairs.

Storage is one flat sorted list of boundaries ``[start0, stop0, start1, stop1, ...]``: a value
``v`` is in the set when ``bisect_right(bounds, v)`` is odd. Adding or removing a range is two
bisections and one slice assignment (a C-level ``memmove``), so the common cases (appending
above the highest range, extending the lowest range) cost O(log n), and the worst case is
O(n) pointer moves, bounded by ``max_ranges``. Touching ranges are merged: ``[0, 5)`` plus
``[5, 9)`` is ``[0, 9)``.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from typing import Final, final

__all__ = ["RangeSet"]

_MINUS_ONE: Final = -1


@final
class RangeSet:
    """Sorted, disjoint, half-open integer ranges with an optional cap on their number.

    Args:
        ranges: initial ``(start, stop)`` pairs, in any order, overlapping or not.
        max_ranges: keep at most this many ranges; when an :meth:`add` creates more, the
            lowest ranges are dropped (a peer that sends sparse packet numbers cannot make us
            remember an unbounded number of gaps). ``None`` means no cap.
    """

    __slots__ = ("_bounds", "_max_ranges")

    def __init__(
        self, ranges: Iterable[tuple[int, int]] = (), *, max_ranges: int | None = None
    ) -> None:
        if max_ranges is not None and max_ranges < 1:
            raise ValueError("max_ranges must be at least 1")
        self._bounds: list[int] = []
        self._max_ranges = max_ranges
        for start, stop in ranges:
            self.add(start, stop)

    # -- mutation ---------------------------------------------------------------------------

    def add(self, start: int, stop: int | None = None) -> None:
        """Add ``[start, stop)`` (``stop`` defaults to ``start + 1``, a single value)."""
        if stop is None:
            stop = start + 1
        elif stop <= start:
            if stop == start:
                return
            raise ValueError(f"empty or reversed range [{start}, {stop})")
        bounds = self._bounds
        # fast paths: extending the highest range, or strictly above everything (the usual
        # cases for packet numbers)
        if bounds and start == bounds[-1]:
            bounds[-1] = stop
            return
        if not bounds or start > bounds[-1]:
            bounds.append(start)
            bounds.append(stop)
        else:
            i = bisect_left(bounds, start)
            j = bisect_right(bounds, stop)
            # an odd index means the boundary falls inside (or touches) an existing range,
            # whose own boundary is kept; an even index means ours becomes a boundary
            if i & 1:
                bounds[i:j] = [stop] if not j & 1 else []
            else:
                bounds[i:j] = [start, stop] if not j & 1 else [start]
        if self._max_ranges is not None and len(bounds) > 2 * self._max_ranges:
            del bounds[: len(bounds) - 2 * self._max_ranges]

    def subtract(self, start: int, stop: int) -> None:
        """Remove every value in ``[start, stop)``."""
        if stop <= start:
            if stop == start:
                return
            raise ValueError(f"empty or reversed range [{start}, {stop})")
        bounds = self._bounds
        if not bounds or stop <= bounds[0] or start >= bounds[-1]:
            return
        i = bisect_left(bounds, start)
        j = bisect_right(bounds, stop)
        replacement: list[int] = []
        if i & 1:
            replacement.append(start)
        if j & 1:
            replacement.append(stop)
        bounds[i:j] = replacement

    def discard_below(self, value: int) -> None:
        """Remove every value lower than ``value``."""
        bounds = self._bounds
        if bounds and value > bounds[0]:
            self.subtract(bounds[0], value)

    def shift(self) -> tuple[int, int]:
        """Remove and return the lowest range. Raises ``IndexError`` when empty."""
        bounds = self._bounds
        if not bounds:
            raise IndexError("shift from an empty RangeSet")
        start, stop = bounds[0], bounds[1]
        del bounds[:2]
        return start, stop

    def clear(self) -> None:
        """Remove everything."""
        self._bounds.clear()

    # -- queries ----------------------------------------------------------------------------

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, int):
            return False
        return bool(bisect_right(self._bounds, value) & 1)

    def covers(self, start: int, stop: int) -> bool:
        """Whether every value of ``[start, stop)`` is in the set (True for an empty range)."""
        if stop <= start:
            return True
        i = bisect_right(self._bounds, start)
        return bool(i & 1) and self._bounds[i] >= stop

    def intersection(self, start: int, stop: int) -> list[tuple[int, int]]:
        """The parts of ``[start, stop)`` that are in the set, in ascending order."""
        bounds = self._bounds
        if stop <= start or not bounds or stop <= bounds[0] or start >= bounds[-1]:
            return []
        i = bisect_right(bounds, start) & ~1  # the range containing start, or the next one
        out: list[tuple[int, int]] = []
        n = len(bounds)
        while i < n and bounds[i] < stop:
            lo = bounds[i] if bounds[i] > start else start
            hi = bounds[i + 1] if bounds[i + 1] < stop else stop
            if lo < hi:
                out.append((lo, hi))
            i += 2
        return out

    def bounds(self) -> tuple[int, int]:
        """``(lowest value, highest value + 1)``. Raises ``IndexError`` when empty."""
        if not self._bounds:
            raise IndexError("bounds of an empty RangeSet")
        return self._bounds[0], self._bounds[-1]

    def __getitem__(self, index: int) -> tuple[int, int]:
        """The ``index``-th range in ascending order (negative indexes count from the top)."""
        n = len(self._bounds) >> 1
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("RangeSet index out of range")
        return self._bounds[2 * index], self._bounds[2 * index + 1]

    def __len__(self) -> int:
        """The number of ranges (not of values)."""
        return len(self._bounds) >> 1

    def __bool__(self) -> bool:
        return bool(self._bounds)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        """The ``(start, stop)`` ranges in ascending order."""
        bounds = self._bounds
        return iter(list(zip(bounds[::2], bounds[1::2], strict=True)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RangeSet):
            return self._bounds == other._bounds
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RangeSet({list(self)!r})"

    def value_count(self) -> int:
        """How many integers the set holds."""
        bounds = self._bounds
        return sum(bounds[1::2]) - sum(bounds[::2])

    def to_ack_ranges(self, limit: int | None = None) -> tuple[tuple[int, int], ...]:
        """Inclusive ``(smallest, largest)`` pairs, highest first: the ACK frame's shape.

        Args:
            limit: return only the ``limit`` highest ranges (an ACK frame's size budget).
        """
        bounds = self._bounds
        if len(bounds) == 2:
            return ((bounds[0], bounds[1] - 1),)  # the usual case: no gap
        if limit is not None and 2 * limit < len(bounds):
            bounds = bounds[len(bounds) - 2 * limit :] if limit > 0 else []
        return tuple(zip(bounds[-2::-2], map(_MINUS_ONE.__add__, bounds[-1::-2]), strict=True))
