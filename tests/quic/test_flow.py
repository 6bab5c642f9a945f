"""Stream IDs, flow-control credit and windows, stream-count limits (RFC 9000 §2.1, §4)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_zttp.quic._errors import (
    FlowControlError,
    FrameEncodingError,
    StreamLimitError,
    StreamStateViolation,
    TransportErrorCode,
)
from trio_zttp.quic._flow import (
    MAX_STREAMS_LIMIT,
    ReceiveWindow,
    SendCredit,
    StreamLimits,
    StreamType,
    can_receive,
    can_send,
    is_bidirectional,
    is_client_initiated,
    is_local,
    make_stream_id,
    stream_index,
    stream_type,
)

# -- stream IDs ------------------------------------------------------------------------------


def test_flow_stream_id_types_rfc9000_table1() -> None:
    assert [stream_type(i) for i in range(4)] == [
        StreamType.CLIENT_BIDI, StreamType.SERVER_BIDI, StreamType.CLIENT_UNI,
        StreamType.SERVER_UNI,
    ]
    assert is_client_initiated(0) and not is_client_initiated(5)
    assert is_bidirectional(4) and not is_bidirectional(6)
    assert is_local(8, is_client=True) and not is_local(8, is_client=False)
    assert stream_index(14) == 3 and make_stream_id(3, StreamType.CLIENT_UNI) == 14


def test_flow_stream_direction_rules() -> None:
    # (stream id, is_client) -> (can send, can receive)
    cases = {
        (0, True): (True, True), (0, False): (True, True),
        (2, True): (True, False), (2, False): (False, True),
        (3, True): (False, True), (3, False): (True, False),
    }
    for (sid, client), (send, receive) in cases.items():
        assert can_send(sid, client) == send
        assert can_receive(sid, client) == receive


@given(st.integers(0, (1 << 60) - 1), st.sampled_from(list(StreamType)))
def test_flow_stream_id_round_trip(index: int, kind: StreamType) -> None:
    sid = make_stream_id(index, kind)
    assert stream_index(sid) == index and stream_type(sid) == kind


# -- send credit -----------------------------------------------------------------------------


def test_flow_send_credit_blocked_reported_once_per_limit() -> None:
    credit = SendCredit(100)
    credit.consume(60)
    assert credit.available == 40
    credit.mark_blocked()  # not at the limit: nothing to report
    assert credit.get_blocked() is None
    with pytest.raises(ValueError):
        credit.consume(41)
    credit.consume(40)
    credit.mark_blocked()
    assert credit.is_blocked
    assert credit.get_blocked() == 100
    assert credit.get_blocked() is None
    credit.on_blocked_lost(100)
    assert credit.get_blocked() == 100
    assert not credit.on_max(90) and credit.limit == 100
    assert credit.on_max(200) and not credit.is_blocked and credit.get_blocked() is None
    credit.consume(100)
    credit.mark_blocked()
    assert credit.get_blocked() == 200
    credit.on_blocked_lost(100)  # an older frame: already superseded
    assert credit.get_blocked() is None


# -- receive window --------------------------------------------------------------------------


def test_flow_receive_window_enforces_limit() -> None:
    window = ReceiveWindow(1000)
    window.on_received(1000)
    with pytest.raises(FlowControlError) as info:
        window.on_received(1001, frame_type=0x08)
    assert info.value.error_code == TransportErrorCode.FLOW_CONTROL_ERROR
    assert info.value.frame_type == 0x08
    window.on_received(10)  # lower totals (reordering) are fine
    assert window.received == 1000


def test_flow_receive_window_update_after_half_consumed_only() -> None:
    window = ReceiveWindow(1000)
    window.on_received(1000)
    assert window.get_update(0.0, 0.1) is None  # received is not consumed
    window.on_consumed(499)
    assert window.get_update(0.0, 0.1) is None
    window.on_consumed(1)
    assert window.get_update(0.0, 0.1) == 1500
    assert window.limit == 1500
    assert window.get_update(0.0, 0.1) is None


def test_flow_receive_window_autotunes_when_consumed_fast() -> None:
    window = ReceiveWindow(1000, max_window=3000)
    now, rtt = 0.0, 0.1
    window.on_consumed(500)
    assert window.get_update(now, rtt) == 1500  # first epoch starts here
    window.on_consumed(500)
    now += 0.05  # half a window in half an RTT: a whole one would take one RTT < 2 RTT
    assert window.get_update(now, rtt) == 1000 + 2000
    assert window.window == 2000
    window.on_consumed(1000)
    now += 0.05
    assert window.get_update(now, rtt) == 2000 + 3000  # capped at max_window
    assert window.window == 3000


def test_flow_receive_window_does_not_grow_for_slow_reader() -> None:
    window = ReceiveWindow(1000, max_window=8000)
    now, rtt = 0.0, 0.1
    for _ in range(5):
        window.on_consumed(500)
        assert window.get_update(now, rtt) is not None
        now += 1.0  # half a window per second: far slower than 2 RTT per window
    assert window.window == 1000


def test_flow_receive_window_ensure_minimum() -> None:
    window = ReceiveWindow(1000, max_window=5000)
    window.ensure_minimum_window(1500)
    assert window.window == 1500 and window.limit == 1000
    window.ensure_minimum_window(10_000)
    assert window.window == 5000
    window.on_consumed(10)
    assert window.update_due()  # the larger window makes an update due at once
    assert window.get_update(0.0, 0.1) == 5010


# -- stream limits ---------------------------------------------------------------------------


def test_flow_stream_limits_open_local_streams() -> None:
    client = StreamLimits(is_client=True, max_bidi_streams=10, max_uni_streams=10,
                          peer_max_bidi_streams=2, peer_max_uni_streams=1)
    assert [client.open_stream(True), client.open_stream(True)] == [0, 4]
    assert client.open_stream(True) is None and not client.can_open(True)
    assert client.get_streams_blocked(True) == 2
    assert client.get_streams_blocked(True) is None
    assert client.open_stream(False) == 2 and client.open_stream(False) is None
    assert not client.on_max_streams(True, 2)
    assert client.on_max_streams(True, 3) and client.peer_limit(True) == 3
    assert client.open_stream(True) == 8
    server = StreamLimits(is_client=False, max_bidi_streams=1, max_uni_streams=1,
                          peer_max_bidi_streams=1, peer_max_uni_streams=1)
    assert server.open_stream(True) == 1 and server.open_stream(False) == 3


def test_flow_stream_limits_max_streams_above_2_60() -> None:
    limits = StreamLimits(is_client=True, max_bidi_streams=1, max_uni_streams=1)
    with pytest.raises(FrameEncodingError) as info:
        limits.on_max_streams(False, MAX_STREAMS_LIMIT + 1)
    assert info.value.frame_type == 0x13
    assert limits.on_max_streams(False, MAX_STREAMS_LIMIT)
    with pytest.raises(ValueError):
        StreamLimits(is_client=True, max_bidi_streams=MAX_STREAMS_LIMIT + 1, max_uni_streams=0)


def test_flow_stream_limits_peer_streams_open_implicitly() -> None:
    server = StreamLimits(is_client=False, max_bidi_streams=4, max_uni_streams=2)
    assert list(server.on_peer_stream(8)) == [0, 4, 8]
    assert list(server.on_peer_stream(4)) == []
    assert list(server.on_peer_stream(12)) == [12]
    with pytest.raises(StreamLimitError):
        server.on_peer_stream(16)
    assert list(server.on_peer_stream(6)) == [2, 6]
    with pytest.raises(StreamLimitError) as info:
        server.on_peer_stream(10)
    assert info.value.error_code == TransportErrorCode.STREAM_LIMIT_ERROR
    # our own streams: only those we opened
    with pytest.raises(StreamStateViolation):
        server.on_peer_stream(1)
    server.on_max_streams(True, 1)
    assert server.open_stream(True) == 1
    assert list(server.on_peer_stream(1)) == []


def test_flow_stream_limits_max_streams_raised_as_streams_close() -> None:
    server = StreamLimits(is_client=False, max_bidi_streams=4, max_uni_streams=0)
    server.on_peer_stream(12)
    server.on_stream_closed(0)
    assert server.get_max_streams(True) is None  # one of four: not half yet
    server.on_stream_closed(1)  # our own stream: does not count
    server.on_stream_closed(4)
    assert server.get_max_streams(True) == 6
    assert server.local_limit(True) == 6
    assert list(server.on_peer_stream(20)) == [16, 20]
    assert server.get_max_streams(True) is None
    assert server.get_max_streams(False) is None


def test_flow_stream_limits_max_streams_due_predicts_a_raise_without_taking_it() -> None:
    server = StreamLimits(is_client=False, max_bidi_streams=4, max_uni_streams=0)
    server.on_peer_stream(12)
    server.on_stream_closed(0)
    assert not server.max_streams_due(True)  # one of four closed: not half yet
    server.on_stream_closed(4)
    assert server.max_streams_due(True)
    assert server.max_streams_due(True)  # asking twice changes nothing
    assert server.local_limit(True) == 4
    assert server.get_max_streams(True) == 6
    assert not server.max_streams_due(True)
    assert not server.max_streams_due(False)
