"""DATA_BLOCKED and STREAM_DATA_BLOCKED on the wire (RFC 9000 §4.1, §19.12, §19.13).

RFC 9000 §4.1: "A sender SHOULD send a STREAM_DATA_BLOCKED or DATA_BLOCKED frame to indicate
to the receiver that it has data to write but is blocked by flow control limits."  §19.12:
DATA_BLOCKED carries "the connection-level limit at which blocking occurred".  A sender that
stays blocked at one limit has nothing new to say, so each limit value is reported once (a
lost frame is repeated by loss recovery).  The server grants a small window, the client writes
more; the client's packets, decrypted from the key log, must carry the BLOCKED frames.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from tests.quic.conn_helpers import (
    KeyLog,
    client_config,
    handshake,
    ours_client,
    ours_server,
    server_config,
    transfer,
)
from tests.quic.ecn_helpers import SUITE, Wire
from trio_zttp.quic._frames import (
    DataBlockedFrame,
    MaxDataFrame,
    MaxStreamDataFrame,
    StreamDataBlockedFrame,
)
from trio_zttp.testing import LinkConditions, Pair

WINDOW = 4000
CLEAN = LinkConditions(delay=0.01)


def _pair(**server: Any) -> tuple[Pair, Wire]:
    keylog = KeyLog()
    wire = Wire(keylog)
    pair = Pair(ours_client(client_config(secrets_log_file=keylog, cipher_suites=[SUITE])),
                ours_server(server_config(secrets_log_file=keylog, cipher_suites=[SUITE],
                                              **server)),
                client_to_server=CLEAN, server_to_client=CLEAN, tap=wire)
    return pair, wire


def _frames(wire: Wire, side: str, kind: type) -> list[Any]:
    return [frame for _, _, frames in wire.packets[side] for frame in frames
            if isinstance(frame, kind)]


def test_data_blocked_sent_once_per_connection_limit() -> None:
    pair, wire = _pair(max_data=WINDOW, max_data_limit=WINDOW)
    handshake(pair)
    transfer(pair, 5 * WINDOW, timeout=30.0)  # completes: MAX_DATA resumes the sender
    blocked = [frame.maximum_data for frame in _frames(wire, "client", DataBlockedFrame)]
    granted = {WINDOW} | {frame.maximum_data for frame in _frames(wire, "server", MaxDataFrame)}
    assert WINDOW in blocked  # blocked by the initial limit before any MAX_DATA arrived
    assert set(blocked) <= granted
    assert max(Counter(blocked).values()) == 1  # once per limit value, not every packet


def test_data_blocked_goes_out_before_the_peer_raises_the_limit() -> None:
    pair, wire = _pair(max_data=WINDOW, max_data_limit=WINDOW)
    handshake(pair)
    stream_id = pair.client.get_next_available_stream_id()  # type: ignore[attr-defined]
    pair.client.send_stream_data(stream_id, bytes(3 * WINDOW))  # type: ignore[attr-defined]
    before = len(wire.packets["client"])
    pair.run_for(0.005)  # less than one-way delay: nothing from the server yet
    sent = wire.packets["client"][before:]
    blocked = [frame.maximum_data for _, _, frames in sent for frame in frames
               if isinstance(frame, DataBlockedFrame)]
    assert blocked == [WINDOW]


def test_stream_data_blocked_sent_once_per_stream_limit() -> None:
    pair, wire = _pair(max_stream_data=WINDOW, max_stream_data_limit=WINDOW)
    handshake(pair)
    transfer(pair, 5 * WINDOW, timeout=30.0)
    blocked = [(f.stream_id, f.maximum_stream_data)
               for f in _frames(wire, "client", StreamDataBlockedFrame)]
    granted = {WINDOW} | {f.maximum_stream_data
                          for f in _frames(wire, "server", MaxStreamDataFrame)}
    assert (0, WINDOW) in blocked
    assert {limit for _, limit in blocked} <= granted
    assert max(Counter(blocked).values()) == 1
    assert not _frames(wire, "client", DataBlockedFrame)  # the connection never blocked
