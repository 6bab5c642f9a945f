"""Explicit Congestion Notification: what we mark, and whether the path carries it.

The two ECN bits of the IP header (RFC 3168 §5) are, as the I/O layer hands them to
:meth:`~trio_zttp.quic.Connection.receive_datagram` and reads them from
:attr:`~trio_zttp.quic.Connection.ecn_codepoint`: 0 Not-ECT, 1 ECT(1), 2 ECT(0), 3 CE.

**Receiving** (RFC 9000 §13.4.1): every packet that decrypts and is not a duplicate counts
its datagram's codepoint in its packet-number space; once a space has seen one marked packet,
its ACK frames are ACK_ECN frames carrying the three counts.  That part lives in the
connection and :class:`~._spaces.PacketSpace`; it runs whatever the configuration says,
because a receiver that sees marks must report them.

**Sending** (RFC 9000 §13.4.2, Appendix A.4): :class:`EcnValidator` decides, once per batch
of datagrams, whether the batch carries ECT(0), and checks what the peer's ACK frames report
about the marked packets.  Its states (:class:`EcnState`):

* ``testing``: every packet is marked, for the first :data:`TESTING_PACKETS` marked packets
  or :data:`TESTING_PTOS` probe timeouts, whichever ends first;
* ``unknown``: the testing period ended before any ACK frame validated a marked packet;
  nothing is marked until one does (then ``capable``) or every marked packet is lost (then
  ``failed``);
* ``capable``: the counts matched; every packet is marked; validation goes on;
* ``failed``: validation failed; nothing is marked on this path (a new one is tested again);
* ``disabled``: ``Configuration(ecn=False)``; nothing is ever marked.

Validation (RFC 9000 §13.4.2.1) fails when an ACK frame that newly acknowledges a marked
packet has no ECN counts, when a count decreases, when the ECT(0) and CE counts grew less
than the number of newly acknowledged ECT(0) packets (the marks were bleached), or when a
count exceeds the packets sent with that codepoint (any ECT(1) count: we never send it).
Counts are taken only from ACK frames that newly acknowledge their own largest packet
number, so a reordered older ACK frame cannot look like a decrease.  A validated increase
of the CE count is a congestion event (RFC 9002 §7.1, Appendix B.7), which the congestion
controller takes at most once per recovery period.

The batch granularity means the testing period can mark a few more than
:data:`TESTING_PACKETS` packets: one batch is marked or not as a whole, because the I/O
layer sends it with one codepoint.

The states and their moves, as the table :data:`TRANSITIONS` has them (STYLE.md)::

    TESTING                    --testing over-->     UNKNOWN
    TESTING, UNKNOWN, CAPABLE  --marks validated-->  CAPABLE
    TESTING, UNKNOWN, CAPABLE  --invalid counts-->   FAILED
    UNKNOWN                    --every mark lost-->  FAILED
    TESTING, UNKNOWN, CAPABLE, FAILED  --new path-->  TESTING
    DISABLED                   (no moves)

A new path (a client moving to a server's preferred address, an active migration, a server
following its client to a new address or through its own preferred address) starts
validation over (RFC 9000 §13.4.2): :meth:`EcnValidator.restart`.  The peer's counts are per
packet-number space for the whole connection, so they keep counting on.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Final, Protocol, final

__all__ = [
    "CE",
    "ECT_0",
    "ECT_1",
    "NOT_ECT",
    "TESTING_PACKETS",
    "TESTING_PTOS",
    "TRANSITIONS",
    "EcnEvent",
    "EcnState",
    "EcnValidator",
    "ecn_transition",
]

NOT_ECT: Final = 0
ECT_1: Final = 1
ECT_0: Final = 2
CE: Final = 3

#: Marked packets in the testing period (RFC 9000 §13.4.2 suggests ten).
TESTING_PACKETS: Final = 10
#: Longest testing period, in probe timeouts from the first marked packet (RFC 9000 §13.4.2).
TESTING_PTOS: Final = 3


class EcnState(enum.StrEnum):
    """Where ECN validation stands for the packets a connection sends (RFC 9000 §13.4.2)."""

    #: Marking ECT(0) while the first packets test the path.
    TESTING = "testing"
    #: The testing period is over and nothing has validated it yet: not marking.
    UNKNOWN = "unknown"
    #: The peer's counts matched our marks: marking ECT(0).
    CAPABLE = "capable"
    #: Validation failed: not marking for the rest of the connection.
    FAILED = "failed"
    #: ``Configuration(ecn=False)``: never marking.
    DISABLED = "disabled"


class EcnEvent(enum.Enum):
    """What moves an :class:`EcnValidator` from one state to another."""

    #: Ten packets were marked, or three PTOs passed.
    TESTING_OVER = "testing period over"
    #: An ACK frame's counts confirmed newly acknowledged marked packets.
    VALIDATED = "marks validated"
    #: An ACK frame's counts broke a rule of RFC 9000 §13.4.2.1.
    INVALID = "invalid counts"
    #: Every packet marked during the testing period was declared lost.
    ALL_LOST = "every mark lost"
    #: The connection moved to a new path (RFC 9000 §13.4.2).
    NEW_PATH = "new path"


TRANSITIONS: Final[dict[EcnState, dict[EcnEvent, EcnState]]] = {
    EcnState.TESTING: {
        EcnEvent.NEW_PATH: EcnState.TESTING,
        EcnEvent.TESTING_OVER: EcnState.UNKNOWN,
        EcnEvent.VALIDATED: EcnState.CAPABLE,
        EcnEvent.INVALID: EcnState.FAILED,
    },
    EcnState.UNKNOWN: {
        EcnEvent.NEW_PATH: EcnState.TESTING,
        EcnEvent.VALIDATED: EcnState.CAPABLE,
        EcnEvent.INVALID: EcnState.FAILED,
        EcnEvent.ALL_LOST: EcnState.FAILED,
    },
    EcnState.CAPABLE: {
        EcnEvent.NEW_PATH: EcnState.TESTING,
        EcnEvent.VALIDATED: EcnState.CAPABLE,
        EcnEvent.INVALID: EcnState.FAILED,
    },
    EcnState.FAILED: {
        EcnEvent.NEW_PATH: EcnState.TESTING,
    },
    EcnState.DISABLED: {},
}
"""``{state: {event: next state}}``: every move ECN validation makes; others are bugs."""


def ecn_transition(state: EcnState, event: EcnEvent) -> EcnState:
    """The state after ``event``.

    Raises:
        ValueError: the table has no such move (a bug in the caller).
    """
    try:
        return TRANSITIONS[state][event]
    except KeyError:
        raise ValueError(f"ECN: no move from {state.value} on {event.value}") from None


_TESTING: Final = EcnState.TESTING
_UNKNOWN: Final = EcnState.UNKNOWN
_CAPABLE: Final = EcnState.CAPABLE
_FAILED: Final = EcnState.FAILED
_DISABLED: Final = EcnState.DISABLED


class MarkedPacket(Protocol):
    """What validation reads from a sent packet (``SentPacket`` satisfies it)."""

    @property
    def ecn(self) -> bool: ...


@final
class EcnValidator:
    """ECN marking and validation for the packets one connection sends.

    Args:
        enabled: False starts (and stays) ``disabled``.

    Attributes:
        state: the :class:`EcnState`.
        codepoint: the codepoint of the batch being built or last built (2 or 0).
        failure: why validation failed, or None.
        ce_reported: how much the peer's validated CE counts grew, over every space.
        sent: ECT(0)-marked packets sent, per packet-number space (Initial, Handshake,
            application).
    """

    __slots__ = (
        "_acked_marked",
        "_counts",
        "_testing_lost",
        "_testing_sent",
        "_testing_start",
        "ce_reported",
        "codepoint",
        "failure",
        "sent",
        "state",
    )

    def __init__(self, enabled: bool = True) -> None:
        self.state = _TESTING if enabled else _DISABLED
        self.codepoint = ECT_0 if enabled else NOT_ECT
        self.failure: str | None = None
        self.ce_reported = 0
        self.sent = [0, 0, 0]
        # the counts of the last ACK frame used, per space: (ECT(0), ECT(1), CE)
        self._counts: list[tuple[int, int, int]] = [(0, 0, 0), (0, 0, 0), (0, 0, 0)]
        self._testing_sent = 0
        self._testing_lost = 0
        self._testing_start: float | None = None
        self._acked_marked = False

    @property
    def active(self) -> bool:
        """Whether ACK frames and losses still matter (testing, unknown or capable)."""
        state = self.state
        return state is not _FAILED and state is not _DISABLED

    # -- sending -----------------------------------------------------------------------------

    def start_batch(self, now: float, pto: float) -> int:
        """The codepoint for the batch of datagrams about to be built (ends testing by time)."""
        state = self.state
        if state is _TESTING:
            start = self._testing_start
            if start is None:
                self._testing_start = now
            elif now - start >= TESTING_PTOS * pto:
                self._end_testing()
                state = self.state
        codepoint = ECT_0 if state is _TESTING or state is _CAPABLE else NOT_ECT
        self.codepoint = codepoint
        return codepoint

    def on_batch_sent(self, initial: int, handshake: int, application: int) -> None:
        """The batch just built was marked: it held this many packets per space."""
        sent = self.sent
        sent[0] += initial
        sent[1] += handshake
        sent[2] += application
        if self.state is _TESTING:
            self._testing_sent += initial + handshake + application
            if self._testing_sent >= TESTING_PACKETS:
                self._end_testing()

    def _end_testing(self) -> None:
        self.state = ecn_transition(self.state, EcnEvent.TESTING_OVER)
        self._check_all_lost()

    # -- the peer's answer -------------------------------------------------------------------

    def on_ack(self, space: int, acked: Iterable[MarkedPacket],
               counts: tuple[int, int, int] | None) -> bool:
        """Validate one ACK frame of ``space`` (0, 1, 2) that newly acknowledged ``acked``
        (its largest packet among them); True when its CE count grew (a congestion event).

        Call only while :attr:`active`.
        """
        marked = 0
        for packet in acked:
            if packet.ecn:
                marked += 1
        if counts is None:
            if marked:
                self.fail("an ACK frame acknowledged ECT(0) packets without ECN counts")
            return False
        ect0, ect1, ce = counts
        last_ect0, last_ect1, last_ce = self._counts[space]
        if ect0 < last_ect0 or ect1 < last_ect1 or ce < last_ce:
            self.fail("the ECN counts decreased")
            return False
        if ect1:
            self.fail("an ECT(1) count, but we never send ECT(1)")
            return False
        if ect0 > self.sent[space]:
            self.fail("the ECT(0) count exceeds the ECT(0) packets sent")
            return False
        if (ect0 - last_ect0) + (ce - last_ce) < marked:
            self.fail("the ECT(0) and CE counts grew less than the ECT(0) packets acknowledged")
            return False
        self._counts[space] = counts
        if marked:
            self._acked_marked = True
            if self.state is not _CAPABLE:
                self.state = ecn_transition(self.state, EcnEvent.VALIDATED)
        if ce > last_ce:
            self.ce_reported += ce - last_ce
            return True
        return False

    def on_lost(self, lost: Iterable[MarkedPacket]) -> None:
        """Packets were declared lost (only the testing period's losses matter)."""
        state = self.state
        if state is not _TESTING and state is not _UNKNOWN:
            return
        for packet in lost:
            if packet.ecn:
                self._testing_lost += 1
        self._check_all_lost()

    def _check_all_lost(self) -> None:
        if self.state is _UNKNOWN and not self._acked_marked and self._testing_sent and \
                self._testing_lost >= self._testing_sent:
            self._fail(EcnEvent.ALL_LOST,
                       "every packet marked during the testing period was lost")

    def restart(self) -> None:
        """The connection moved to a new path: test it from the start (unless disabled)."""
        if self.state is _DISABLED:
            return
        self.state = ecn_transition(self.state, EcnEvent.NEW_PATH)
        self.codepoint = ECT_0
        self.failure = None
        self._testing_sent = 0
        self._testing_lost = 0
        self._testing_start = None
        self._acked_marked = False

    def fail(self, reason: str) -> None:
        """Validation failed (invalid counts): stop marking for good."""
        self._fail(EcnEvent.INVALID, reason)

    def _fail(self, event: EcnEvent, reason: str) -> None:
        if self.active:
            self.state = ecn_transition(self.state, event)
            self.failure = reason
            self.codepoint = NOT_ECT
