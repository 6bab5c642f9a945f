"""``Connection.statistics()``: a snapshot of a connection's counters and estimates."""

from __future__ import annotations

from typing import Any, final

import attrs

from ._ecn import EcnState

__all__ = ["ConnectionStatistics"]


@final
@attrs.frozen(kw_only=True)
class ConnectionStatistics:
    """Counters and estimates of one connection, at the moment it was taken.

    Times are in seconds, sizes in bytes (UDP payloads).
    """

    #: Smoothed RTT (RFC 9002 §5.3); the initial RTT before the first sample.
    smoothed_rtt: float
    #: Smallest RTT sample.
    min_rtt: float
    #: Most recent RTT sample.
    latest_rtt: float
    #: RTT variation.
    rttvar: float
    #: Congestion window.
    congestion_window: int
    #: Bytes sent and neither acknowledged nor declared lost.
    bytes_in_flight: int
    #: Packets sent.
    packets_sent: int
    #: Packets received and processed.
    packets_received: int
    #: Packets declared lost.
    packets_lost: int
    #: Bytes sent (packets).
    bytes_sent: int
    #: Bytes received (whole datagrams, on every path).
    bytes_received: int
    #: Datagrams received.
    datagrams_received: int
    #: DATAGRAM frames dropped before sending (queue full or too large for the path).
    datagrams_dropped: int
    #: Consecutive probe timeouts.
    pto_count: int
    #: 0-RTT packets a server dropped for want of keys: early data it refused, or packets
    #: that came after it discarded the 0-RTT keys (3 PTO after the first 1-RTT packet,
    #: RFC 9001 §4.9.3).
    zero_rtt_dropped: int
    #: 1-RTT key updates (either side started).
    key_updates: int
    #: Open streams.
    streams: int
    #: The peer's current address.
    peer_address: Any
    #: ECN validation of what we send (RFC 9000 §13.4.2): ``testing``, ``unknown``,
    #: ``capable``, ``failed`` or ``disabled`` (a :class:`~trio_zttp.quic.EcnState`, a str).
    ecn_state: EcnState = EcnState.DISABLED
    #: Why ECN validation failed, or None.
    ecn_failure: str | None = None
    #: Packets received (decrypted, not duplicates) with the ECT(0), ECT(1) and CE codepoints,
    #: every packet-number space together (the counts our ACK_ECN frames report).
    ecn_ect0_received: int = 0
    ecn_ect1_received: int = 0
    ecn_ce_received: int = 0
    #: Packets sent with ECT(0).
    ecn_ect0_sent: int = 0
    #: How much the peer's (validated) CE counts grew: our packets the network marked CE.
    ecn_ce_reported: int = 0
