"""A seeded, lossy datagram link: the impairment model shared by the sans-IO pair driver
(:class:`~trio_zttp.testing.Pair`) and the trio virtual network
(:class:`~trio_zttp.testing.VirtualNetwork`).

A :class:`Link` carries datagrams in one direction. It is given each datagram with the time it
is sent and answers with the deliveries it schedules, ``(deliver_at, datagram)`` pairs: none
(dropped), one, or two (duplicated). Every random decision comes from a :class:`random.Random`
seeded at construction, so the same seed, conditions and input always give the same output. The
link never reads a clock and never sleeps; its owner keeps the schedule.

The order in which a datagram meets the impairments is fixed and documented, so a test can reason
about it:

1. ``mtu``: larger datagrams are dropped (counted as ``dropped_mtu``);
2. ``drop_filter(datagram, index)``: targeted drops (``dropped_filter``);
3. ``loss``: random drops (``dropped_loss``);
4. ``ecn_rewrite(datagram, codepoint, index)``: a middlebox rewriting the ECN codepoint
   (``ecn_rewritten`` when it changes it);
5. ``bandwidth``: the datagram waits for the datagrams ahead of it to be serialised; if the queue
   already holds more than ``queue_limit`` bytes it is dropped (``dropped_queue``); if it holds
   more than ``ce_threshold`` bytes, an ECN-capable datagram is marked CE instead (``ce_marked``);
6. ``ce_mark``: an ECN-capable datagram (ECT(0) or ECT(1)) is marked CE at random (``ce_marked``);
7. ``corrupt``: one random byte is XORed with a random non-zero value;
8. ``delay`` plus a uniform draw from ``[0, jitter]`` (jitter alone can reorder datagrams);
9. ``reorder``: the datagram is held back ``reorder_delay`` seconds longer, so datagrams sent
   shortly after it overtake it;
10. ``duplicate``: a second copy is delivered, with its own jitter draw.

ECN codepoints are the two ECN bits of the IP header (RFC 3168): 0 Not-ECT, 1 ECT(1),
2 ECT(0), 3 CE. :meth:`Link.send_with_ecn` carries one with each datagram; :meth:`Link.send`
sends Not-ECT.

Randomness is drawn only for impairments whose probability is non-zero, so a clean link consumes
none and adding one impairment never changes the decisions made by another that stays at zero.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, TypeAlias, final

import attrs

__all__ = [
    "Address",
    "DropFilter",
    "EcnRewrite",
    "Link",
    "LinkConditions",
    "LinkStatistics",
    "WireDatagram",
]

Address: TypeAlias = tuple[Any, ...]
"""A socket address as Python writes it: ``(host, port)`` or
``(host, port, flowinfo, scope_id)``."""

DropFilter: TypeAlias = Callable[[bytes, int], bool]
"""``drop_filter(datagram, index) -> bool``: return True to drop. ``index`` counts the
datagrams offered to the link, from 0, including ones dropped earlier by ``mtu``."""

EcnRewrite: TypeAlias = Callable[[bytes, int, int], int]
"""``ecn_rewrite(datagram, codepoint, index) -> codepoint``: what a middlebox leaves of a
datagram's ECN codepoint (``lambda d, ecn, i: 0`` bleaches every mark). ``index`` as for
:data:`DropFilter`."""

Seed: TypeAlias = int | str | bytes


def _probability(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be a probability in [0, 1], got {value!r}")


def _non_negative(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must not be negative, got {value!r}")


def _positive_or_none(
    instance: object, attribute: attrs.Attribute[Any], value: float | None
) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{attribute.name} must be positive or None, got {value!r}")


@final
@attrs.frozen(kw_only=True)
class LinkConditions:
    """How a link treats the datagrams it carries (one direction).

    The default is a perfect link: no loss, no delay, unlimited bandwidth.

    Attributes:
        loss: Probability that a datagram is dropped.
        duplicate: Probability that a datagram is delivered twice.
        reorder: Probability that a datagram is held back ``reorder_delay`` seconds, so that
            datagrams sent after it arrive first.
        reorder_delay: Extra seconds a reordered datagram waits.
        corrupt: Probability that one random byte of a datagram is changed.
        delay: One-way propagation delay in seconds.
        jitter: Extra delay drawn uniformly from ``[0, jitter]`` seconds for each datagram.
        bandwidth: Bytes per second, modelled as a serialising queue in front of the delay;
            ``None`` is unlimited.
        queue_limit: Bytes the bandwidth queue holds before it drops new datagrams (drop-tail);
            ``None`` is unlimited. Ignored without ``bandwidth``.
        mtu: Datagrams longer than this many bytes are dropped; ``None`` is unlimited.
        drop_filter: ``drop_filter(datagram, index) -> bool`` for targeted drops, e.g.
            ``lambda d, i: i == 1`` drops the second datagram and ``lambda d, i: d[0] & 0x80``
            drops every datagram starting with a long-header packet.
        ce_mark: Probability that an ECN-capable datagram (ECT(0) or ECT(1)) is marked CE, as
            an ECN-enabled router's active queue management does (RFC 3168).
        ce_threshold: With ``bandwidth``: ECN-capable datagrams that find more than this many
            bytes queued ahead of them are marked CE (a step-marking AQM); ``None`` never.
        ecn_rewrite: ``ecn_rewrite(datagram, codepoint, index) -> codepoint``, a middlebox
            that bleaches or rewrites the ECN field, e.g. ``lambda d, ecn, i: 0``.
    """

    loss: float = attrs.field(default=0.0, validator=_probability)
    duplicate: float = attrs.field(default=0.0, validator=_probability)
    reorder: float = attrs.field(default=0.0, validator=_probability)
    reorder_delay: float = attrs.field(default=0.01, validator=_non_negative)
    corrupt: float = attrs.field(default=0.0, validator=_probability)
    delay: float = attrs.field(default=0.0, validator=_non_negative)
    jitter: float = attrs.field(default=0.0, validator=_non_negative)
    bandwidth: float | None = attrs.field(default=None, validator=_positive_or_none)
    queue_limit: int | None = attrs.field(default=None, validator=_positive_or_none)
    mtu: int | None = attrs.field(default=None, validator=_positive_or_none)
    drop_filter: DropFilter | None = attrs.field(default=None)
    ce_mark: float = attrs.field(default=0.0, validator=_probability)
    ce_threshold: int | None = attrs.field(default=None, validator=_positive_or_none)
    ecn_rewrite: EcnRewrite | None = attrs.field(default=None)


@final
@attrs.frozen(kw_only=True)
class LinkStatistics:
    """Counters of one link, or the sum over several (``a + b``).

    Attributes:
        datagrams_sent: Datagrams offered to the link.
        bytes_sent: Their bytes.
        datagrams_delivered: Deliveries scheduled, duplicates included.
        bytes_delivered: Their bytes.
        dropped: Datagrams dropped for any reason (the sum of the ``dropped_*`` counters).
        dropped_mtu: Dropped for being larger than ``mtu``.
        dropped_filter: Dropped by ``drop_filter``.
        dropped_loss: Dropped at random (``loss``).
        dropped_queue: Dropped because the bandwidth queue was full.
        duplicated: Datagrams delivered a second time.
        corrupted: Datagrams with a changed byte.
        reordered: Datagrams held back by ``reorder``.
        ce_marked: Datagrams marked CE (``ce_mark`` or ``ce_threshold``).
        ecn_rewritten: Datagrams whose codepoint ``ecn_rewrite`` changed.
    """

    datagrams_sent: int = 0
    bytes_sent: int = 0
    datagrams_delivered: int = 0
    bytes_delivered: int = 0
    dropped: int = 0
    dropped_mtu: int = 0
    dropped_filter: int = 0
    dropped_loss: int = 0
    dropped_queue: int = 0
    duplicated: int = 0
    corrupted: int = 0
    reordered: int = 0
    ce_marked: int = 0
    ecn_rewritten: int = 0

    def __add__(self, other: LinkStatistics) -> LinkStatistics:
        return LinkStatistics(
            **{name: getattr(self, name) + getattr(other, name) for name in _STAT_FIELDS}
        )


_STAT_FIELDS = tuple(field.name for field in attrs.fields(LinkStatistics))


@final
@attrs.frozen(kw_only=True)
class WireDatagram:
    """One datagram as a tap sees it when it is sent, before any impairment.

    Attributes:
        time: When it was sent (virtual seconds).
        source: The sender's address.
        destination: The address it is sent to.
        data: Its bytes.
        ecn: Its ECN codepoint as sent (0 Not-ECT, 1 ECT(1), 2 ECT(0), 3 CE).
    """

    time: float
    source: Address
    destination: Address
    data: bytes = attrs.field(repr=lambda data: f"<{len(data)} bytes>")
    ecn: int = 0


@final
class Link:
    """One direction of a seeded, impaired datagram link.

    Args:
        conditions: The impairments; settable later through :attr:`conditions`.
        seed: Seeds the link's own :class:`random.Random`; equal seeds give equal decisions.
    """

    __slots__ = (
        "_busy_until", "_conditions", "_counts", "_index", "_random",
    )

    def __init__(self, conditions: LinkConditions | None = None, *, seed: Seed = 0) -> None:
        self._conditions = conditions if conditions is not None else LinkConditions()
        self._random = random.Random(seed)
        self._busy_until = float("-inf")
        self._index = 0
        # datagrams_sent, bytes_sent, datagrams_delivered, bytes_delivered, dropped_mtu,
        # dropped_filter, dropped_loss, dropped_queue, duplicated, corrupted, reordered,
        # ce_marked, ecn_rewritten
        self._counts = [0] * 13

    @property
    def conditions(self) -> LinkConditions:
        """The current conditions; assigning new ones takes effect for the next datagram."""
        return self._conditions

    @conditions.setter
    def conditions(self, conditions: LinkConditions) -> None:
        self._conditions = conditions

    def send(self, datagram: bytes, now: float) -> list[tuple[float, bytes]]:
        """Offer a datagram to the link at time ``now`` (Not-ECT).

        Returns:
            The scheduled deliveries as ``(deliver_at, datagram)``: an empty list if the datagram
            is dropped, two entries if it is duplicated. ``deliver_at >= now``.
        """
        return [(at, data) for at, data, _ in self.send_with_ecn(datagram, now, 0)]

    def send_with_ecn(
        self, datagram: bytes, now: float, ecn: int
    ) -> list[tuple[float, bytes, int]]:
        """Offer a datagram with the ECN codepoint ``ecn`` (0-3) to the link at time ``now``.

        Returns:
            The scheduled deliveries as ``(deliver_at, datagram, codepoint)``, as :meth:`send`.
        """
        c = self._conditions
        counts = self._counts
        size = len(datagram)
        index = self._index
        self._index = index + 1
        counts[0] += 1
        counts[1] += size
        if c.mtu is not None and size > c.mtu:
            counts[4] += 1
            return []
        if c.drop_filter is not None and c.drop_filter(datagram, index):
            counts[5] += 1
            return []
        rng = self._random
        if c.loss and rng.random() < c.loss:
            counts[6] += 1
            return []
        if c.ecn_rewrite is not None:
            rewritten = c.ecn_rewrite(datagram, ecn, index)
            if rewritten != ecn:
                ecn = rewritten
                counts[12] += 1
        depart = now
        if c.bandwidth is not None:
            start = self._busy_until if self._busy_until > now else now
            queued = (start - now) * c.bandwidth
            if c.queue_limit is not None and queued + size > c.queue_limit:
                counts[7] += 1
                return []
            if c.ce_threshold is not None and queued > c.ce_threshold and ecn in (1, 2):
                ecn = 3
                counts[11] += 1
            depart = self._busy_until = start + size / c.bandwidth
        if c.ce_mark and ecn in (1, 2) and rng.random() < c.ce_mark:
            ecn = 3
            counts[11] += 1
        if c.corrupt and size and rng.random() < c.corrupt:
            mangled = bytearray(datagram)
            mangled[rng.randrange(size)] ^= rng.randrange(1, 256)
            datagram = bytes(mangled)
            counts[9] += 1
        base = depart + c.delay
        deliver_at = base + rng.random() * c.jitter if c.jitter else base
        if c.reorder and rng.random() < c.reorder:
            deliver_at += c.reorder_delay
            counts[10] += 1
        deliveries = [(deliver_at, datagram, ecn)]
        if c.duplicate and rng.random() < c.duplicate:
            deliveries.append(
                (base + rng.random() * c.jitter if c.jitter else base, datagram, ecn))
            counts[8] += 1
        counts[2] += len(deliveries)
        counts[3] += size * len(deliveries)
        return deliveries

    def statistics(self) -> LinkStatistics:
        """A snapshot of the link's counters."""
        (sent, sent_bytes, delivered, delivered_bytes, mtu, filtered, lost, queue, duplicated,
         corrupted, reordered, ce_marked, rewritten) = self._counts
        return LinkStatistics(
            datagrams_sent=sent,
            bytes_sent=sent_bytes,
            datagrams_delivered=delivered,
            bytes_delivered=delivered_bytes,
            dropped=mtu + filtered + lost + queue,
            dropped_mtu=mtu,
            dropped_filter=filtered,
            dropped_loss=lost,
            dropped_queue=queue,
            duplicated=duplicated,
            corrupted=corrupted,
            reordered=reordered,
            ce_marked=ce_marked,
            ecn_rewritten=rewritten,
        )
