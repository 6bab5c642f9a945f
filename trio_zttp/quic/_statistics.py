"""``Connection.statistics()``: a snapshot of a connection's counters and estimates."""

from __future__ import annotations

from typing import Any, final

import attrs

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
    #: 1-RTT key updates (either side started).
    key_updates: int
    #: Open streams.
    streams: int
    #: The peer's current address.
    peer_address: Any
