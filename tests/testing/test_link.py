"""The seeded link model shared by the pair driver and the virtual network."""

from __future__ import annotations

import pytest

from trio_zttp.testing import Link, LinkConditions, LinkStatistics


def run(link: Link, count: int, *, size: int = 100, gap: float = 0.0) -> list[tuple[float, bytes]]:
    out = []
    for i in range(count):
        out.extend(link.send(i.to_bytes(4, "big") * (size // 4), i * gap))
    return out


def test_link_perfect_by_default() -> None:
    link = Link()
    assert link.send(b"abc", 1.5) == [(1.5, b"abc")]
    stats = link.statistics()
    assert (stats.datagrams_sent, stats.datagrams_delivered, stats.dropped) == (1, 1, 0)
    assert stats.bytes_sent == stats.bytes_delivered == 3


def test_link_same_seed_same_decisions() -> None:
    conditions = LinkConditions(loss=0.2, duplicate=0.1, reorder=0.1, corrupt=0.1, jitter=0.01)
    first = run(Link(conditions, seed=7), 500)
    assert first == run(Link(conditions, seed=7), 500)
    assert first != run(Link(conditions, seed=8), 500)


def test_link_loss_rate_follows_probability() -> None:
    link = Link(LinkConditions(loss=0.3), seed=1)
    delivered = run(link, 2000)
    stats = link.statistics()
    assert stats.dropped == stats.dropped_loss == 2000 - len(delivered)
    assert 500 < stats.dropped_loss < 700


def test_link_duplicates_are_counted_and_identical() -> None:
    link = Link(LinkConditions(duplicate=0.5), seed=2)
    delivered = run(link, 400)
    stats = link.statistics()
    assert len(delivered) == 400 + stats.duplicated == stats.datagrams_delivered
    assert 150 < stats.duplicated < 250
    payloads = [data for _, data in delivered]
    assert len(set(payloads)) == 400


def test_link_reorder_holds_back_past_later_datagrams() -> None:
    link = Link(LinkConditions(reorder=0.2, reorder_delay=0.05), seed=3)
    delivered = run(link, 300, gap=0.001)
    order = [int.from_bytes(data[:4], "big") for _, data in sorted(delivered)]
    assert sorted(order) == list(range(300))
    assert order != list(range(300))
    late = [at for at, data in delivered if at > int.from_bytes(data[:4], "big") * 0.001]
    assert len(late) == link.statistics().reordered > 0


def test_link_corrupt_changes_exactly_one_byte() -> None:
    link = Link(LinkConditions(corrupt=1.0), seed=4)
    original = bytes(range(200))
    for _ in range(50):
        ((_, mangled),) = link.send(original, 0.0)
        assert len(mangled) == len(original)
        assert sum(a != b for a, b in zip(original, mangled, strict=True)) == 1
    assert link.statistics().corrupted == 50


def test_link_delay_and_jitter_bounds() -> None:
    link = Link(LinkConditions(delay=0.03, jitter=0.01), seed=5)
    times = [at for at, _ in run(link, 200)]
    assert all(0.03 <= at <= 0.04 for at in times)
    assert len(set(times)) > 100


def test_link_mtu_drops_larger_datagrams() -> None:
    link = Link(LinkConditions(mtu=1200))
    assert link.send(bytes(1200), 0.0) == [(0.0, bytes(1200))]
    assert link.send(bytes(1201), 0.0) == []
    stats = link.statistics()
    assert (stats.dropped, stats.dropped_mtu) == (1, 1)


def test_link_drop_filter_sees_index_from_zero() -> None:
    seen: list[tuple[bytes, int]] = []

    def second(datagram: bytes, index: int) -> bool:
        seen.append((datagram, index))
        return index == 1

    link = Link(LinkConditions(drop_filter=second))
    results = [link.send(bytes([n]), 0.0) for n in range(4)]
    assert [len(r) for r in results] == [1, 0, 1, 1]
    assert seen == [(bytes([n]), n) for n in range(4)]
    assert link.statistics().dropped_filter == 1


def test_link_bandwidth_serialises() -> None:
    link = Link(LinkConditions(bandwidth=1000.0, delay=0.5))
    times = [link.send(bytes(100), 0.0)[0][0] for _ in range(10)]
    assert times == pytest.approx([0.5 + 0.1 * (n + 1) for n in range(10)])
    # an idle link starts serialising at the send time again
    assert link.send(bytes(100), 5.0)[0][0] == pytest.approx(5.6)


def test_link_queue_limit_drops_tail() -> None:
    link = Link(LinkConditions(bandwidth=1000.0, queue_limit=450))
    delivered = [link.send(bytes(100), 0.0) for _ in range(10)]
    assert [len(d) for d in delivered] == [1] * 4 + [0] * 6
    assert link.statistics().dropped_queue == 6
    # the queue drains with time
    assert len(link.send(bytes(100), 0.2)) == 1


def test_link_conditions_change_at_run_time() -> None:
    link = Link()
    assert len(link.send(b"x", 0.0)) == 1
    link.conditions = LinkConditions(loss=1.0)
    assert link.send(b"x", 0.0) == []
    assert link.conditions.loss == 1.0


@pytest.mark.parametrize(
    "kwargs",
    [{"loss": 1.5}, {"duplicate": -0.1}, {"delay": -1.0}, {"bandwidth": 0}, {"mtu": 0},
     {"jitter": -0.5}, {"queue_limit": -1}],
)
def test_link_conditions_reject_bad_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        LinkConditions(**kwargs)  # type: ignore[arg-type]


def test_link_statistics_add() -> None:
    a = LinkStatistics(datagrams_sent=2, dropped=1, dropped_loss=1)
    b = LinkStatistics(datagrams_sent=3, duplicated=4)
    total = a + b
    assert (total.datagrams_sent, total.dropped, total.dropped_loss, total.duplicated) == (
        5, 1, 1, 4)
