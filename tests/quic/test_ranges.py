"""RangeSet: half-open integer ranges, checked against a plain ``set`` model."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_zttp.quic._ranges import RangeSet


def values(rs: RangeSet) -> set[int]:
    return {v for start, stop in rs for v in range(start, stop)}


def test_ranges_add_merges_touching_and_overlapping() -> None:
    rs = RangeSet()
    rs.add(0, 5)
    rs.add(5, 9)
    assert list(rs) == [(0, 9)]
    rs.add(20, 30)
    rs.add(12, 14)
    assert list(rs) == [(0, 9), (12, 14), (20, 30)]
    rs.add(8, 21)
    assert list(rs) == [(0, 30)]


def test_ranges_add_single_values() -> None:
    rs = RangeSet()
    for pn in (3, 1, 2, 7):
        rs.add(pn)
    assert list(rs) == [(1, 4), (7, 8)]
    assert 2 in rs and 4 not in rs and 7 in rs and 0 not in rs
    assert "x" not in rs


def test_ranges_add_inside_existing_is_noop() -> None:
    rs = RangeSet([(0, 10)])
    rs.add(3, 5)
    assert list(rs) == [(0, 10)]


def test_ranges_reversed_range_rejected_and_empty_ignored() -> None:
    rs = RangeSet()
    rs.add(5, 5)
    rs.subtract(5, 5)
    assert not rs
    with pytest.raises(ValueError):
        rs.add(5, 4)
    with pytest.raises(ValueError):
        rs.subtract(5, 4)


def test_ranges_subtract_splits_and_trims() -> None:
    rs = RangeSet([(0, 10), (20, 30)])
    rs.subtract(3, 5)
    assert list(rs) == [(0, 3), (5, 10), (20, 30)]
    rs.subtract(8, 25)
    assert list(rs) == [(0, 3), (5, 8), (25, 30)]
    rs.subtract(0, 3)
    assert list(rs) == [(5, 8), (25, 30)]
    rs.subtract(100, 200)
    assert list(rs) == [(5, 8), (25, 30)]


def test_ranges_to_ack_ranges_is_inclusive_descending() -> None:
    rs = RangeSet([(0, 3), (5, 6), (10, 20)])
    assert rs.to_ack_ranges() == ((10, 19), (5, 5), (0, 2))
    assert RangeSet().to_ack_ranges() == ()


def test_ranges_bounds_shift_index() -> None:
    rs = RangeSet([(4, 6), (10, 12)])
    assert rs.bounds() == (4, 12)
    assert rs[0] == (4, 6) and rs[-1] == (10, 12) and len(rs) == 2
    with pytest.raises(IndexError):
        rs[2]
    assert rs.shift() == (4, 6)
    assert list(rs) == [(10, 12)]
    rs.clear()
    with pytest.raises(IndexError):
        rs.shift()
    with pytest.raises(IndexError):
        rs.bounds()


def test_ranges_cap_drops_lowest() -> None:
    rs = RangeSet(max_ranges=3)
    for pn in range(0, 20, 2):  # ten separate single-value ranges
        rs.add(pn)
    assert list(rs) == [(14, 15), (16, 17), (18, 19)]
    rs.add(15)  # merging does not drop anything
    assert list(rs) == [(14, 17), (18, 19)]
    with pytest.raises(ValueError):
        RangeSet(max_ranges=0)


def test_ranges_discard_below_and_covers_and_intersection() -> None:
    rs = RangeSet([(0, 10), (20, 30)])
    assert rs.covers(2, 8) and not rs.covers(8, 21) and rs.covers(5, 5)
    assert rs.intersection(5, 25) == [(5, 10), (20, 25)]
    assert rs.intersection(10, 20) == []
    rs.discard_below(25)
    assert list(rs) == [(25, 30)]
    assert rs.value_count() == 5


def test_ranges_equality_and_repr() -> None:
    assert RangeSet([(0, 2)]) == RangeSet([(1, 2), (0, 1)])
    assert RangeSet([(0, 2)]) != RangeSet([(0, 3)])
    assert RangeSet().__eq__(5) is NotImplemented
    assert "RangeSet" in repr(RangeSet([(1, 2)]))


operations = st.lists(
    st.tuples(
        st.sampled_from(["add", "subtract", "discard_below", "shift"]),
        st.integers(min_value=0, max_value=60),
        st.integers(min_value=0, max_value=12),
    ),
    max_size=40,
)


@given(operations)
def test_ranges_match_set_model(ops: list[tuple[str, int, int]]) -> None:
    rs = RangeSet()
    model: set[int] = set()
    for op, start, length in ops:
        if op == "add":
            rs.add(start, start + length)
            model |= set(range(start, start + length))
        elif op == "subtract":
            rs.subtract(start, start + length)
            model -= set(range(start, start + length))
        elif op == "discard_below":
            rs.discard_below(start)
            model = {v for v in model if v >= start}
        elif rs:
            lo, hi = rs.shift()
            assert set(range(lo, hi)) <= model
            assert lo == min(model) and hi not in model
            model -= set(range(lo, hi))
        # invariants: sorted, disjoint, non-touching, non-empty
        flat = [b for pair in rs for b in pair]
        assert flat == sorted(flat)
        assert all(a < b for a, b in zip(flat, flat[1:], strict=False))
        assert values(rs) == model
        assert rs.value_count() == len(model)
        for probe in range(-1, 75):
            assert (probe in rs) == (probe in model)
        assert [v for lo, hi in rs.to_ack_ranges() for v in range(hi, lo - 1, -1)] == sorted(
            model, reverse=True
        )


@given(
    st.lists(st.integers(min_value=0, max_value=200), max_size=80),
    st.integers(min_value=1, max_value=6),
)
def test_ranges_cap_keeps_the_highest_ranges(pns: list[int], cap: int) -> None:
    capped = RangeSet(max_ranges=cap)
    full = RangeSet()
    for pn in pns:
        capped.add(pn)
        full.add(pn)
        assert len(capped) <= cap
        # whatever is kept is a suffix of the uncapped set's ranges, with values intact
        kept = list(capped)
        if kept:
            assert values(capped) <= values(full)
            assert kept[-1] == list(full)[-1]


@given(
    st.lists(st.tuples(st.integers(0, 100), st.integers(1, 10)), max_size=20),
    st.integers(0, 110),
    st.integers(0, 20),
)
def test_ranges_intersection_and_covers_match_model(
    adds: list[tuple[int, int]], start: int, length: int
) -> None:
    rs = RangeSet((a, a + n) for a, n in adds)
    model = values(rs)
    window = set(range(start, start + length))
    got = rs.intersection(start, start + length)
    assert {v for lo, hi in got for v in range(lo, hi)} == model & window
    assert rs.covers(start, start + length) == (window <= model)


def test_ranges_to_ack_ranges_limit_keeps_highest() -> None:
    rs = RangeSet([(0, 3), (5, 6), (10, 20)])
    assert rs.to_ack_ranges(2) == ((10, 19), (5, 5))
    assert rs.to_ack_ranges(3) == rs.to_ack_ranges(10) == rs.to_ack_ranges()
    assert rs.to_ack_ranges(0) == ()
