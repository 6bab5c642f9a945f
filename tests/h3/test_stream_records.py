"""``RetiredStreams`` (finished peer streams in little memory) answers as a plain set would,
on seeded orders of finishing: in order (its fast path), shuffled, and with repeats."""

from __future__ import annotations

import random

import pytest

from trio_zttp.h3._stream import RetiredStreams


@pytest.mark.parametrize("seed", range(40))
def test_retired_streams_match_a_set(seed: int) -> None:
    rng = random.Random(seed)
    first = rng.choice([0, 2, 3])
    ids = [first + 4 * n for n in range(rng.randrange(1, 60))]
    if rng.random() < 0.5:
        # mostly in order, a few swapped: the floor moves by the fast path and the slow one
        for _ in range(rng.randrange(4)):
            a, b = rng.randrange(len(ids)), rng.randrange(len(ids))
            ids[a], ids[b] = ids[b], ids[a]
    else:
        rng.shuffle(ids)
    ids = ids[: rng.randrange(1, len(ids) + 1)]
    sample = ids * 3  # rng.sample needs at least 3
    retired = RetiredStreams(first)
    model: set[int] = set()
    for stream_id in ids + ids[: rng.randrange(3)]:  # repeats change nothing
        retired.add(stream_id)
        model.add(stream_id)
        for probe in [max(first, stream_id - 4), stream_id, stream_id + 4, *rng.sample(sample, 3)]:
            assert (probe in retired) == (probe in model), (probe, sorted(model))
        assert len(retired) <= len(model)
    for probe in range(first, first + 4 * 62, 4):
        assert (probe in retired) == (probe in model), (probe, sorted(model))


@pytest.mark.parametrize("seed", range(40))
def test_retired_streams_match_a_set_with_gaps_that_stay(seed: int) -> None:
    """Some streams never finish (a control stream): the runs above the floor still answer
    as the set does, and merge as the gaps between them fill."""
    rng = random.Random(seed)
    first = rng.choice([0, 2, 3])
    ids = [first + 4 * n for n in range(200)]
    never = set(rng.sample(ids, rng.randrange(1, 6)))
    finishing = [i for i in ids if i not in never]
    rng.shuffle(finishing)
    retired = RetiredStreams(first)
    model: set[int] = set()
    for stream_id in finishing:
        retired.add(stream_id)
        model.add(stream_id)
        assert len(retired) <= len(model)
    for probe in range(first, first + 4 * 210, 4):
        assert (probe in retired) == (probe in model), probe
    assert retired.runs <= len(never)  # one run per gap left, not one entry per stream


def test_retired_streams_behind_a_stream_that_never_ends_take_no_memory() -> None:
    retired = RetiredStreams(2)  # the peer's control stream 2 never ends
    for stream_id in range(14, 14 + 4 * 100_000, 4):
        retired.add(stream_id)
    assert retired.runs == 1
    assert 2 not in retired and 6 not in retired and 14 in retired
    assert 14 + 4 * 100_000 not in retired
