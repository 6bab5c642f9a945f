"""Send and receive stream state machines, buffers and flow control (RFC 9000 §3, §4)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_zttp.quic._errors import (
    FinalSizeError,
    FlowControlError,
    ProtocolViolation,
    StreamStateError,
    TransportErrorCode,
)
from trio_zttp.quic._flow import ReceiveWindow, SendCredit
from trio_zttp.quic._frame_codec import parse_stream
from trio_zttp.quic._streams import (
    NO_ROOM,
    RECV_TRANSITIONS,
    SEND_TRANSITIONS,
    RecvEvent,
    RecvState,
    RecvStream,
    SendEvent,
    SendState,
    SendStream,
    recv_transition,
    send_transition,
)

BIG = 1 << 40

# -- state tables ----------------------------------------------------------------------------


def test_streams_tables_cover_every_state() -> None:
    assert set(SEND_TRANSITIONS) == set(SendState)
    assert set(RECV_TRANSITIONS) == set(RecvState)
    for moves in SEND_TRANSITIONS.values():
        assert set(moves.values()) <= set(SendState)
    # whatever the peer sends is a defined move in every receive state
    for state in RecvState:
        for event in (RecvEvent.RECV_DATA, RecvEvent.RECV_FIN, RecvEvent.RECV_RESET):
            assert event in RECV_TRANSITIONS[state]


@given(st.sampled_from(list(SendState)), st.sampled_from(list(SendEvent)))
def test_streams_send_table_every_pair(state: SendState, event: SendEvent) -> None:
    expected = SEND_TRANSITIONS[state].get(event)
    if expected is None:
        with pytest.raises(StreamStateError):
            send_transition(state, event)
    else:
        assert send_transition(state, event) is expected


@given(st.sampled_from(list(RecvState)), st.sampled_from(list(RecvEvent)))
def test_streams_recv_table_every_pair(state: RecvState, event: RecvEvent) -> None:
    expected = RECV_TRANSITIONS[state].get(event)
    if expected is None:
        with pytest.raises(StreamStateError):
            recv_transition(state, event)
    else:
        assert recv_transition(state, event) is expected


def test_streams_tables_match_rfc9000_figures() -> None:
    # RFC 9000 Figure 2 and Figure 3 arrows, spelled out independently of the tables
    send_arrows = {
        (SendState.READY, SendEvent.SEND_DATA): SendState.SEND,
        (SendState.SEND, SendEvent.SEND_FIN): SendState.DATA_SENT,
        (SendState.DATA_SENT, SendEvent.ALL_DATA_ACKED): SendState.DATA_RECVD,
        (SendState.READY, SendEvent.SEND_RESET): SendState.RESET_SENT,
        (SendState.SEND, SendEvent.SEND_RESET): SendState.RESET_SENT,
        (SendState.DATA_SENT, SendEvent.SEND_RESET): SendState.RESET_SENT,
        (SendState.RESET_SENT, SendEvent.RESET_ACKED): SendState.RESET_RECVD,
    }
    for (state, event), target in send_arrows.items():
        assert send_transition(state, event) is target
    recv_arrows = {
        (RecvState.RECV, RecvEvent.RECV_FIN): RecvState.SIZE_KNOWN,
        (RecvState.SIZE_KNOWN, RecvEvent.ALL_DATA_RECEIVED): RecvState.DATA_RECVD,
        (RecvState.DATA_RECVD, RecvEvent.APP_READ_ALL): RecvState.DATA_READ,
        (RecvState.RECV, RecvEvent.RECV_RESET): RecvState.RESET_RECVD,
        (RecvState.SIZE_KNOWN, RecvEvent.RECV_RESET): RecvState.RESET_RECVD,
        (RecvState.RESET_RECVD, RecvEvent.APP_READ_RESET): RecvState.RESET_READ,
    }
    for (rstate, revent), rtarget in recv_arrows.items():
        assert recv_transition(rstate, revent) is rtarget
    for terminal in (SendState.DATA_RECVD, SendState.RESET_RECVD):
        assert SEND_TRANSITIONS[terminal] == {}


# -- send stream -----------------------------------------------------------------------------


def drain(stream: SendStream, size: int) -> list[tuple[int, bytes, bool]]:
    frames = []
    while (frame := stream.get_frame(size)) is not None:
        offset, data, fin = frame
        frames.append((offset, bytes(data), fin))
    return frames


def test_streams_send_frames_fin_and_states() -> None:
    stream = SendStream(0, BIG)
    assert stream.state is SendState.READY and stream.get_frame(100) is None
    stream.write(b"hello ")
    assert stream.get_frame(4) is not None
    assert stream.state is SendState.SEND
    stream.write(b"world", fin=True)
    assert drain(stream, 4) == [(4, b"o wo", False), (8, b"rld", True)]
    assert stream.state is SendState.DATA_SENT and stream.final_size == 11
    with pytest.raises(StreamStateError):
        stream.write(b"more")
    stream.on_data_acked(0, 4, False)
    stream.on_data_acked(8, 3, True)
    assert stream.state is SendState.DATA_SENT
    stream.on_data_acked(4, 4, False)
    assert stream.state is SendState.DATA_RECVD and stream.is_finished
    assert stream.buffered == 0 and stream.get_frame(100) is None


def test_streams_send_fin_alone_and_empty_stream() -> None:
    stream = SendStream(0, BIG)
    stream.write(b"", fin=True)
    assert drain(stream, 100) == [(0, b"", True)]
    assert stream.state is SendState.DATA_SENT
    stream.on_data_lost(0, 0, True)
    assert stream.has_data_to_send()
    assert drain(stream, 100) == [(0, b"", True)]
    stream.on_data_acked(0, 0, True)
    assert stream.state is SendState.DATA_RECVD

    stream = SendStream(4, BIG)
    stream.write(b"abc")
    assert drain(stream, 100) == [(0, b"abc", False)]
    stream.write(b"", fin=True)
    assert drain(stream, 100) == [(3, b"", True)]


def test_streams_send_retransmissions_first_then_new_data() -> None:
    stream = SendStream(0, BIG)
    stream.write(bytes(range(100)))
    first = drain(stream, 30)
    assert [f[0] for f in first] == [0, 30, 60, 90]
    stream.write(b"new")
    stream.on_data_lost(30, 30, False)
    stream.on_data_lost(0, 30, False)
    stream.on_data_acked(10, 5, False)  # part of a lost range came through after all
    assert drain(stream, 25) == [
        (0, bytes(range(10)), False),
        (15, bytes(range(15, 40)), False),
        (40, bytes(range(40, 60)), False),
        (100, b"new", False),
    ]


def test_streams_send_lost_fin_rides_with_last_data() -> None:
    stream = SendStream(0, BIG)
    stream.write(b"abcdef", fin=True)
    assert drain(stream, 100) == [(0, b"abcdef", True)]
    stream.on_data_lost(0, 6, True)
    assert drain(stream, 4) == [(0, b"abcd", False), (4, b"ef", True)]
    assert not stream.has_data_to_send()


def test_streams_send_loss_of_acked_data_is_ignored() -> None:
    stream = SendStream(0, BIG)
    stream.write(b"x" * 50, fin=True)
    drain(stream, 50)
    drain_again = stream.get_frame(50)
    assert drain_again is None
    stream.on_data_acked(0, 50, False)
    stream.on_data_lost(0, 50, True)  # an earlier copy of the same data, probed by PTO
    assert drain(stream, 100) == [(50, b"", True)]


def test_streams_send_memory_released_as_acked() -> None:
    stream = SendStream(0, BIG)
    payload = bytes(200_000)
    stream.write(payload)
    assert stream.buffered == 200_000
    frames = drain(stream, 1200)
    for offset, data, _ in frames[:100]:
        stream.on_data_acked(offset, len(data), False)
    assert stream.acked_offset == 120_000
    assert stream.buffered == 80_000
    # retransmitting from the middle still works after earlier chunks were dropped
    stream.on_data_lost(150_000, 1200, False)
    assert stream.get_frame(1200) == (150_000, memoryview(payload)[150_000:151_200], False)


def test_streams_send_flow_control_and_blocked() -> None:
    connection = SendCredit(150)
    stream = SendStream(0, 100, connection=connection)
    other = SendStream(4, 1000, connection=connection)
    stream.write(b"a" * 300)
    other.write(b"b" * 300)
    assert drain(stream, 60) == [(0, b"a" * 60, False), (60, b"a" * 40, False)]
    assert stream.get_data_blocked() == 100 and stream.get_data_blocked() is None
    assert drain(other, 100) == [(0, b"b" * 50, False)]
    assert connection.get_blocked() == 150
    assert other.get_data_blocked() is None
    assert not stream.has_data_to_send()
    assert stream.on_max_stream_data(200)
    assert stream.get_frame(100) is None  # the connection is still the limit
    connection.on_max(1000)
    assert drain(stream, 1000) == [(100, b"a" * 100, False)]
    # retransmissions do not need credit
    stream.on_data_lost(0, 60, False)
    assert drain(stream, 1000) == [(0, b"a" * 60, False)]


def test_streams_send_blocked_noticed_without_get_frame() -> None:
    connection = SendCredit(10)
    first = SendStream(0, 100, connection=connection)
    first.write(b"a" * 10)
    assert drain(first, 100) == [(0, b"a" * 10, False)]
    assert connection.get_blocked() is None  # nobody was waiting yet
    second = SendStream(4, 100, connection=connection)
    second.write(b"b")
    assert not second.has_data_to_send()
    assert connection.get_blocked() == 10
    third = SendStream(8, 0, connection=SendCredit(100))
    third.write(b"c")
    assert not third.has_data_to_send() and third.get_data_blocked() == 0


def test_streams_send_reset() -> None:
    stream = SendStream(0, BIG)
    stream.write(b"abcdef")
    stream.get_frame(4)
    assert stream.reset(7)
    assert stream.state is SendState.RESET_SENT and stream.buffered == 0
    assert stream.get_reset() == (7, 4)  # the final size is what was sent
    assert stream.get_reset() is None
    assert stream.get_frame(100) is None
    stream.on_data_lost(0, 4, False)
    assert stream.get_frame(100) is None
    with pytest.raises(StreamStateError):
        stream.write(b"x")
    assert not stream.reset(8)
    stream.on_reset_lost()
    assert stream.get_reset() == (7, 4)
    stream.on_reset_acked()
    assert stream.state is SendState.RESET_RECVD and stream.is_finished
    stream.on_reset_lost()
    assert stream.get_reset() is None


def test_streams_send_reset_after_all_acked_does_nothing() -> None:
    stream = SendStream(0, BIG)
    stream.write(b"ab", fin=True)
    stream.get_frame(10)
    stream.on_data_acked(0, 2, True)
    assert not stream.reset(1)
    assert stream.state is SendState.DATA_RECVD and stream.get_reset() is None
    ready = SendStream(4, BIG)
    assert ready.reset(3) and ready.get_reset() == (3, 0)


def test_streams_send_write_accepts_buffers() -> None:
    stream = SendStream(0, BIG)
    stream.write(bytearray(b"ab"))
    stream.write(memoryview(b"cd"))
    stream.write(memoryview(bytes(8)).cast("I"))  # multi-byte items count as bytes
    big = bytearray(b"z" * 70_000)
    stream.write(big)
    big[:] = b"y" * 70_000  # the stream copied it
    data = b"".join(d for _, d, _ in drain(stream, 1200))
    assert data == b"abcd" + bytes(8) + b"z" * 70_000


@given(
    writes=st.lists(st.integers(1, 12_000), min_size=1, max_size=6),
    frame_size=st.integers(200, 3000),
    seed=st.integers(0, 2**32 - 1),
    loss=st.floats(0.0, 0.5),
)
def test_streams_send_random_loss_delivers_every_byte(
    writes: list[int], frame_size: int, seed: int, loss: float
) -> None:
    rng = random.Random(seed)
    payload = rng.randbytes(sum(writes))
    stream = SendStream(0, BIG)
    position = 0
    for i, size in enumerate(writes):
        stream.write(payload[position : position + size], fin=i == len(writes) - 1)
        position += size
    received = bytearray(len(payload))
    delivered = 0
    fin_seen = False
    in_flight: list[tuple[int, bytes, bool]] = []
    rounds = 0
    while not stream.is_finished:
        rounds += 1
        assert rounds < 10_000
        while (frame := stream.get_frame(frame_size)) is not None:
            offset, data, fin = frame
            assert len(data) <= frame_size
            assert bytes(data) == payload[offset : offset + len(data)]
            in_flight.append((offset, bytes(data), fin))
            if rng.random() < 0.3:
                break
        rng.shuffle(in_flight)
        keep = rng.randrange(len(in_flight) + 1)
        settle, in_flight = in_flight[keep:], in_flight[:keep]
        for offset, data, fin in settle:
            if rng.random() < loss:
                stream.on_data_lost(offset, len(data), fin)
            else:
                received[offset : offset + len(data)] = data
                delivered += len(data)
                fin_seen = fin_seen or fin
                stream.on_data_acked(offset, len(data), fin)
        if not in_flight and not stream.has_data_to_send():
            assert stream.is_finished
    assert bytes(received) == payload and fin_seen
    assert stream.state is SendState.DATA_RECVD and stream.buffered == 0


@given(
    writes=st.lists(st.integers(1, 70_000), min_size=1, max_size=4),
    credit=st.integers(1, 300_000),
    seed=st.integers(0, 2**32 - 1),
    loss=st.floats(0.0, 0.5),
)
def test_streams_write_frame_encodes_what_get_frame_would_send(
    writes: list[int], credit: int, seed: int, loss: float
) -> None:
    """write_frame (the sender's fused path) writes STREAM frames that parse back to the
    stream's bytes, never past the room it is given, and delivers every byte and the FIN."""
    rng = random.Random(seed)
    payload = rng.randbytes(sum(writes))
    stream = SendStream(4, credit)
    id_bytes = b"\x04"
    position = 0
    for i, size in enumerate(writes):
        stream.write(payload[position : position + size], fin=i == len(writes) - 1)
        position += size
    received = bytearray(len(payload))
    fin_seen = False
    in_flight: list[tuple[int, int, bool]] = []
    for _ in range(20_000):
        if stream.is_finished:
            break
        room = rng.choice([3, 10, 70, 1200, 1500, 20_000])
        buf = bytearray(b"\xff")  # something before the frame, as in a packet
        written = stream.write_frame(buf, room, id_bytes)
        if written is NO_ROOM:
            assert buf == b"\xff"
        elif written is not None:
            offset, length, fin, _ = written
            assert len(buf) - 1 <= room
            assert buf[1] & 0xF8 == 0x08 and buf[1] & 0x02  # STREAM with a Length field
            sid, parsed_offset, data, parsed_fin, end = parse_stream(
                memoryview(buf), 2, buf[1])
            assert (sid, parsed_offset, len(data), parsed_fin, end) == (
                4, offset, length, fin, len(buf))
            assert bytes(data) == payload[offset : offset + length]
            in_flight.append((offset, length, fin))
        if written is None or rng.random() < 0.3:
            rng.shuffle(in_flight)
            for offset, length, fin in in_flight:
                if rng.random() < loss:
                    stream.on_data_lost(offset, length, fin)
                else:
                    received[offset : offset + length] = payload[offset : offset + length]
                    fin_seen = fin_seen or fin
                    stream.on_data_acked(offset, length, fin)
            in_flight = []
            if written is None and not stream.has_data_to_send():
                stream.on_max_stream_data(stream.credit.limit + 50_000)
    assert stream.is_finished and fin_seen and bytes(received) == payload


def test_streams_write_frame_without_room_writes_nothing() -> None:
    stream = SendStream(4, BIG)
    stream.write(b"x" * 100)
    buf = bytearray()
    assert stream.write_frame(buf, 3, b"\x04") is NO_ROOM and not buf
    assert stream.write_frame(buf, 4, b"\x04") == (0, 1, False, True)
    assert bytes(buf) == b"\x0a\x04\x01x"
    empty = SendStream(8, BIG)
    assert empty.write_frame(buf, 1000, b"\x08") is None


# -- receive stream --------------------------------------------------------------------------


def test_streams_recv_in_order_data_skips_the_buffer() -> None:
    connection = ReceiveWindow(100)
    stream = RecvStream(1, 50, connection=connection)
    assert stream.receive_in_order(0, b"abc", True) == b"abc"
    assert stream.read_offset == 3 and stream.readable == 0
    assert stream.window.consumed == 3 and connection.consumed == 3
    assert stream.receive_in_order(3, memoryview(b"de"), False) == b"de"
    assert stream.window.consumed == 3  # not consumed: the application reports reads later
    # anything else goes the general way, and receive_in_order changes nothing
    assert stream.receive_in_order(9, b"late", True) is None
    assert stream.on_stream_frame(9, b"late") is False
    assert stream.receive_in_order(5, b"fill", True) is None  # data is buffered beyond
    assert stream.on_stream_frame(5, b"fill")
    assert stream.read() == b"filllate"
    assert stream.receive_in_order(13, b"", True) is None
    with pytest.raises(FlowControlError):
        stream.receive_in_order(13, b"x" * 40, True)
    stream.on_stream_frame(13, b"end", fin=True)
    assert stream.receive_in_order(16, b"more", True) is None  # the final size is known


def test_streams_recv_in_order_and_whole_stream_frames_keep_the_highest_offset() -> None:
    # an empty frame at offset 10 came first: the data below it goes the general way, so
    # the highest offset (the final size's lower bound) never moves back
    connection = ReceiveWindow(100)
    stream = RecvStream(1, 50, connection=connection)
    assert stream.on_stream_frame(10, b"") is False
    assert stream.receive_in_order(0, b"abcde", True) is None
    assert stream.receive_last(0, b"abcde", True) is None
    assert stream.highest_received == 10 and connection.received == 10
    with pytest.raises(FinalSizeError):
        stream.on_stream_frame(0, b"abcdefg", fin=True)
    # a whole stream in one frame is read at once and ends the stream
    whole = RecvStream(5, 50, connection=connection)
    assert whole.receive_last(0, b"request", True) == b"request"
    assert whole.at_eof and whole.is_finished and whole.final_size == 7
    assert whole.window.consumed == 7 and connection.received == 17
    assert whole.receive_last(7, b"", True) is None  # the final size is known


def test_streams_recv_in_order_and_out_of_order() -> None:
    stream = RecvStream(1, 1000)
    assert stream.on_stream_frame(0, b"hel")
    assert stream.readable == 3
    assert not stream.on_stream_frame(6, b"world")
    assert stream.readable == 3
    assert stream.read(2) == b"he"
    assert stream.on_stream_frame(3, b"lo ")
    assert stream.read() == b"llo world"
    assert stream.read() == b""
    assert stream.state is RecvState.RECV


def test_streams_recv_duplicates_and_overlaps() -> None:
    stream = RecvStream(1, 1000)
    stream.on_stream_frame(4, b"4567")
    stream.on_stream_frame(2, b"234567")
    stream.on_stream_frame(0, b"01")
    assert not stream.on_stream_frame(0, b"0123")  # nothing new
    assert stream.read() == b"01234567"
    assert not stream.on_stream_frame(3, b"34567")
    assert stream.on_stream_frame(6, b"6789")
    assert stream.read() == b"89"


def test_streams_recv_fin_states_and_eof() -> None:
    stream = RecvStream(1, 1000)
    stream.on_stream_frame(3, b"def", fin=True)
    assert stream.state is RecvState.SIZE_KNOWN and stream.final_size == 6
    assert stream.on_stream_frame(0, b"abc")
    assert stream.state is RecvState.DATA_RECVD
    assert stream.read(4) == b"abcd" and not stream.at_eof
    assert stream.read() == b"ef"
    assert stream.state is RecvState.DATA_READ and stream.at_eof and stream.is_finished
    assert not stream.on_stream_frame(0, b"abcdef", fin=True)  # late duplicate
    empty = RecvStream(1, 1000)
    assert empty.on_stream_frame(0, b"", fin=True)
    assert empty.state is RecvState.DATA_RECVD
    assert empty.read() == b"" and empty.at_eof


def test_streams_recv_final_size_errors() -> None:
    stream = RecvStream(1, 1000)
    stream.on_stream_frame(0, b"abcdef")
    with pytest.raises(FinalSizeError):
        stream.on_stream_frame(0, b"abc", fin=True)  # below data already received
    stream.on_stream_frame(6, b"gh", fin=True)
    with pytest.raises(FinalSizeError) as info:
        stream.on_stream_frame(8, b"i")  # beyond the final size
    assert info.value.error_code == TransportErrorCode.FINAL_SIZE_ERROR
    with pytest.raises(FinalSizeError):
        stream.on_stream_frame(0, b"abcdefghi", fin=True)  # changed final size
    with pytest.raises(FinalSizeError):
        stream.on_reset(0, 9)
    assert stream.read() == b"abcdefgh"
    with pytest.raises(FinalSizeError):  # still checked once the stream is done
        stream.on_stream_frame(0, b"abcdefghij")


def test_streams_recv_flow_control() -> None:
    connection = ReceiveWindow(1500)
    stream = RecvStream(1, 1000, connection=connection)
    other = RecvStream(5, 1000, connection=connection)
    stream.on_stream_frame(990, b"x" * 10)
    with pytest.raises(FlowControlError):
        stream.on_stream_frame(995, b"x" * 6)
    other.on_stream_frame(0, b"y" * 500)
    assert connection.received == 1500
    with pytest.raises(FlowControlError):
        other.on_stream_frame(500, b"y")
    with pytest.raises(FlowControlError):
        RecvStream(9, 10).on_reset(0, 11)


def test_streams_recv_unread_data_holds_back_max_stream_data() -> None:
    stream = RecvStream(1, 1000)
    stream.on_stream_frame(0, b"x" * 1000)
    assert stream.get_max_stream_data(0.0, 0.1) is None  # received but not read
    stream.read(400)
    assert stream.get_max_stream_data(0.0, 0.1) is None
    stream.read(100)
    assert stream.get_max_stream_data(0.0, 0.1) == 1500
    stream.on_stream_frame(1000, b"x" * 500)
    with pytest.raises(FlowControlError):
        stream.on_stream_frame(1500, b"x")


def test_streams_recv_window_autotunes_and_grows_connection_window() -> None:
    connection = ReceiveWindow(1000, max_window=100_000)
    stream = RecvStream(1, 1000, max_window=4000, connection=connection)
    now, offset = 0.0, 0
    updates = []
    for _ in range(12):
        stream.on_stream_frame(offset, b"z" * 500)
        offset += 500
        stream.read()
        now += 0.01  # a fast reader: 500 bytes every 10 ms with a 100 ms RTT
        update = stream.get_max_stream_data(now, 0.1)
        if update is not None:
            updates.append(update)
        connection.get_update(now, 0.1)
    assert stream.window.window == 4000
    assert connection.window >= 6000
    assert updates == sorted(updates) and updates[-1] == offset + 4000


def test_streams_recv_no_max_stream_data_once_size_known() -> None:
    stream = RecvStream(1, 1000)
    stream.on_stream_frame(0, b"x" * 600, fin=True)
    stream.read()
    assert stream.get_max_stream_data(0.0, 0.1) is None


def test_streams_recv_reset() -> None:
    connection = ReceiveWindow(10_000)
    stream = RecvStream(1, 1000, connection=connection)
    stream.on_stream_frame(0, b"abcd")
    stream.on_stream_frame(10, b"klm")
    stream.read(2)
    with pytest.raises(FinalSizeError):
        stream.on_reset(5, 12)  # below data received
    assert stream.on_reset(5, 20)
    assert stream.state is RecvState.RESET_RECVD and stream.reset_error_code == 5
    # all 20 bytes were charged to the connection and none will ever be read
    assert connection.received == 20 and connection.consumed == 20
    assert not stream.on_reset(5, 20)  # repeated
    with pytest.raises(FinalSizeError):
        stream.on_reset(5, 21)
    assert not stream.on_stream_frame(4, b"efgh")  # late data is dropped
    assert stream.read() == b""
    assert stream.state is RecvState.RESET_READ and stream.is_finished
    assert stream.read() == b""


def test_streams_recv_reset_after_all_data_received_is_ignored() -> None:
    stream = RecvStream(1, 1000)
    stream.on_stream_frame(0, b"abc", fin=True)
    assert not stream.on_reset(9, 3)
    assert stream.state is RecvState.DATA_RECVD and stream.reset_error_code is None
    assert stream.read() == b"abc" and stream.at_eof


def test_streams_recv_stop_sending_discards_and_credits() -> None:
    connection = ReceiveWindow(10_000)
    stream = RecvStream(1, 1000, connection=connection)
    stream.on_stream_frame(0, b"a" * 100)
    stream.read(10)
    stream.stop_sending()
    assert stream.readable == 0 and connection.consumed == 100
    assert not stream.on_stream_frame(100, b"b" * 50)
    assert connection.consumed == 150
    assert stream.read() == b""
    assert stream.get_max_stream_data(0.0, 0.1) is None
    assert stream.on_reset(1, 200)
    assert connection.consumed == connection.received == 200


def test_streams_recv_too_many_gaps() -> None:
    stream = RecvStream(1, 10_000, max_gaps=4)
    for offset in (10, 20, 30, 40):
        stream.on_stream_frame(offset, b"x")
    with pytest.raises(ProtocolViolation):
        stream.on_stream_frame(50, b"x")
    filled = RecvStream(1, 10_000, max_gaps=4)
    for offset in (10, 20, 30, 40):
        filled.on_stream_frame(offset, b"x")
    filled.on_stream_frame(0, b"y" * 10)  # closing a gap makes room
    filled.on_stream_frame(50, b"x")


@given(
    payload=st.binary(min_size=0, max_size=3000),
    cuts=st.lists(st.integers(0, 3000), max_size=30),
    seed=st.integers(0, 2**32 - 1),
    duplicates=st.integers(0, 10),
    read_sizes=st.lists(st.integers(1, 500), min_size=1, max_size=5),
)
def test_streams_recv_reassembly_matches_payload(
    payload: bytes, cuts: list[int], seed: int, duplicates: int, read_sizes: list[int]
) -> None:
    rng = random.Random(seed)
    points = sorted({0, len(payload), *(c for c in cuts if c < len(payload))})
    frames = [
        (start, payload[start:stop], stop == len(payload))
        for start, stop in zip(points, points[1:], strict=False)
    ] or [(0, b"", True)]
    for _ in range(duplicates):  # duplicates and overlapping re-chunked copies
        a = rng.randrange(len(payload) + 1)
        b = rng.randrange(a, len(payload) + 1)
        frames.append((a, payload[a:b], b == len(payload)))
    rng.shuffle(frames)
    connection = ReceiveWindow(len(payload))
    stream = RecvStream(3, len(payload), connection=connection)
    out = bytearray()
    for i, (offset, data, fin) in enumerate(frames):
        stream.on_stream_frame(offset, memoryview(data) if i % 2 else data, fin)
        out += stream.read(read_sizes[i % len(read_sizes)])
        assert payload.startswith(bytes(out))
    out += stream.read()
    assert bytes(out) == payload
    assert stream.at_eof
    assert connection.received == len(payload) == connection.consumed


def _send_view(stream: SendStream) -> tuple[object, ...]:
    return (stream.state, stream.acked_offset, stream.buffered, stream.is_finished,
            stream.has_data_to_send(), stream.write_offset, stream.sent_offset)


@pytest.mark.parametrize("seed", range(40))
def test_streams_send_fin_ack_fast_path_agrees_with_general_path(seed: int) -> None:
    """An acknowledged frame carrying the FIN takes on_data_acked's whole-stream shortcut when
    the prefix reaches it; a twin stream sees the same frame as its data and then a lone FIN
    (the general way). Both must agree after every step, retransmissions included."""
    rng = random.Random(seed)
    fast, slow = SendStream(0, BIG), SendStream(0, BIG)
    sizes = [rng.choice((0, 1, 30, 500, 3000, 9000)) for _ in range(rng.randrange(1, 5))]
    payload = rng.randbytes(sum(sizes))
    position = 0
    for i, size in enumerate(sizes):
        for stream in (fast, slow):
            stream.write(payload[position:position + size], fin=i == len(sizes) - 1)
        position += size
    in_flight: list[tuple[int, int, bool]] = []
    for _ in range(2000):
        if fast.is_finished:
            break
        room = rng.choice((40, 300, 1200, 20_000))
        frames = [stream.get_frame(room) for stream in (fast, slow)]
        assert (None if frames[0] is None else (frames[0][0], bytes(frames[0][1]), frames[0][2])
                ) == (None if frames[1] is None else
                      (frames[1][0], bytes(frames[1][1]), frames[1][2]))
        if frames[0] is not None:
            offset, data, fin = frames[0]
            in_flight.append((offset, len(data), fin))
        if frames[0] is None or rng.random() < 0.4:
            rng.shuffle(in_flight)
            late: list[tuple[int, int, bool]] = []
            for offset, length, fin in in_flight:
                if rng.random() < 0.3:
                    fast.on_data_lost(offset, length, fin)
                    slow.on_data_lost(offset, length, fin)
                    if rng.random() < 0.5:
                        late.append((offset, length, fin))  # a spurious loss: acked later
                else:
                    finished = fast.on_data_acked(offset, length, fin)
                    if fin and length:
                        # the lone FIN first: above the prefix, so the general way
                        slow.on_data_acked(offset + length, 0, True)
                        fin = False
                    assert finished == slow.on_data_acked(offset, length, fin)
                assert _send_view(fast) == _send_view(slow)
            in_flight = late
    assert fast.is_finished and slow.is_finished


@pytest.mark.parametrize("seed", range(40))
def test_streams_write_frame_from_the_tail_interleaved_with_writes(seed: int) -> None:
    """Small writes stay in the stream's tail and write_frame sends them from there; writes
    after a frame, retransmissions and acknowledgments still see every byte in place."""
    rng = random.Random(seed)
    stream = SendStream(4, BIG)
    payload = bytearray()
    received: dict[int, int] = {}
    in_flight: list[tuple[int, int, bool]] = []
    for step in range(300):
        if not stream.is_finished and stream.final_size is None and rng.random() < 0.5:
            data = rng.randbytes(rng.choice((1, 7, 100, 1000, 5000, 20_000)))
            end = step > 200 or rng.random() < 0.02
            stream.write(data, fin=end)
            payload += data
        buf = bytearray(b"\xff")
        written = stream.write_frame(buf, rng.choice((20, 200, 1200)), b"\x04")
        if written is not None and written is not NO_ROOM:
            offset, length, fin, _ = written
            _, parsed_offset, data, parsed_fin, _ = parse_stream(memoryview(buf), 2, buf[1])
            assert (parsed_offset, parsed_fin) == (offset, fin)
            assert bytes(data) == bytes(payload[offset:offset + length])
            in_flight.append((offset, length, fin))
        if rng.random() < 0.3:
            for offset, length, fin in in_flight:
                if rng.random() < 0.3:
                    stream.on_data_lost(offset, length, fin)
                else:
                    stream.on_data_acked(offset, length, fin)
                    for i in range(offset, offset + length):
                        received[i] = payload[i]
            in_flight = []
    assert all(payload[i] == byte for i, byte in received.items())
    assert stream.buffered == (0 if stream.is_finished else stream.write_offset
                               - stream.acked_offset)
