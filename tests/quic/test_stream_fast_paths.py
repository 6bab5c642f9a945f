"""The streams' fast paths against their general paths, on many seeded random inputs.

Each fast path (a whole stream in one frame, in-order data without the reassembly buffer, the
manager's inlined window checks) must leave the same observable state as the general path it
shortcuts: data delivered, states, flow-control counters, errors.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any

import pytest

from trio_zttp._buffer import encode_varint
from trio_zttp.quic._errors import TransportError
from trio_zttp.quic._events import Event, StreamDataReceived
from trio_zttp.quic._flow import ReceiveWindow, SendCredit
from trio_zttp.quic._params import TransportParameters
from trio_zttp.quic._recv_stream import NO_RANGES
from trio_zttp.quic._stream_manager import Stream, StreamManager
from trio_zttp.quic._streams import (
    NO_CHUNK_STARTS,
    NO_CHUNKS,
    NO_ROOM,
    RecvStream,
    SendState,
    SendStream,
)


def _recv_snapshot(stream: RecvStream, connection: ReceiveWindow) -> tuple[Any, ...]:
    window = stream.window
    return (stream.state, stream.final_size, stream.read_offset, stream.highest_received,
            stream.readable, window.received, window.consumed, window.limit,
            connection.received, connection.consumed, stream.at_eof, stream.is_finished)


def _random_frames(rng: random.Random, size: int) -> list[tuple[int, bytes, bool]]:
    payload = bytes(rng.randrange(256) for _ in range(size))
    frames: list[tuple[int, bytes, bool]] = []
    offset = 0
    while offset < size:
        n = rng.randint(0, min(40, size - offset))
        frames.append((offset, payload[offset:offset + n], False))
        offset += n
    if frames and rng.random() < 0.8:
        frames[-1] = (frames[-1][0], frames[-1][1], True)
    else:
        frames.append((size, b"", True))
    # reorder, duplicate, and sometimes a frame beyond the window or the final size
    for _ in range(rng.randint(0, 3)):
        i = rng.randrange(len(frames))
        j = rng.randrange(len(frames))
        frames[i], frames[j] = frames[j], frames[i]
    for _ in range(rng.randint(0, 2)):
        frames.insert(rng.randrange(len(frames) + 1), rng.choice(frames))
    if rng.random() < 0.1:
        frames.insert(rng.randrange(len(frames) + 1), (size + rng.randint(0, 90), b"zz", False))
    if rng.random() < 0.1:
        frames.insert(rng.randrange(len(frames) + 1), (0, payload[:3], True))
    return frames


@pytest.mark.parametrize("seed", range(400))
def test_stream_fast_paths_recv_agree_with_general_path(seed: int) -> None:
    rng = random.Random(seed)
    size = rng.randint(0, 150)
    window = rng.choice((60, 100, 200, 1000))
    conn_limit = rng.choice((80, 150, 400, 5000))
    consume = rng.random() < 0.5
    fast_conn, slow_conn = ReceiveWindow(conn_limit), ReceiveWindow(conn_limit)
    fast = RecvStream(0, window, connection=fast_conn)
    slow = RecvStream(0, window, connection=slow_conn)
    fast_data = bytearray()
    slow_data = bytearray()
    for offset, data, fin in _random_frames(rng, size):
        fast_error = slow_error = None
        try:
            chunk = (fast.receive_last(offset, data, consume) if fin
                     else fast.receive_in_order(offset, data, consume))
            if chunk is None:
                fast.on_stream_frame(offset, data, fin)
                chunk = fast.read()
            elif not consume:
                fast.window.on_consumed(len(chunk))
                fast_conn.on_consumed(len(chunk))
            fast_data += chunk
        except TransportError as exc:
            fast_error = (type(exc), exc.error_code)
        try:
            slow.on_stream_frame(offset, data, fin)
            slow_data += slow.read()
        except TransportError as exc:
            slow_error = (type(exc), exc.error_code)
        assert fast_error == slow_error
        if fast_error is not None:
            return  # the connection closes: what the streams hold afterwards does not matter
        assert fast_data == slow_data
        assert _recv_snapshot(fast, fast_conn) == _recv_snapshot(slow, slow_conn)


def _manager(consume_on_delivery: bool, events: deque[Event]) -> StreamManager:
    manager = StreamManager(is_client=False, events=events, max_data=300, max_data_limit=300,
                            max_stream_data=120, max_stream_data_limit=120,
                            max_streams_bidi=8, max_streams_uni=8,
                            consume_on_delivery=consume_on_delivery)
    big = 1 << 20
    params = TransportParameters(
        initial_max_data=big, initial_max_stream_data_bidi_local=big,
        initial_max_stream_data_bidi_remote=big, initial_max_stream_data_uni=big,
        initial_max_streams_bidi=8, initial_max_streams_uni=8)
    manager.apply_peer_parameters(params)
    return manager


@pytest.mark.parametrize("seed", range(200))
def test_stream_fast_paths_manager_matches_a_reference_model(seed: int) -> None:
    """Random STREAM frames through StreamManager.on_stream_frame: the delivered data per
    stream, end of stream, flow-control credit and the due MAX_(STREAM_)DATA updates match a
    model built from RecvStream's general path."""
    rng = random.Random(seed)
    consume_on_delivery = rng.random() < 0.5
    events: deque[Event] = deque()
    manager = _manager(consume_on_delivery, events)
    model_conn = ReceiveWindow(300)
    model: dict[int, RecvStream] = {}
    delivered: dict[int, bytearray] = {}
    model_delivered: dict[int, bytearray] = {}
    ended: set[int] = set()
    model_ended: set[int] = set()
    ever_due = False
    frames = []
    for sid in (0, 4, 8, 2, 6):  # client-initiated bidi and uni streams (we are the server)
        frames += [(sid, *frame) for frame in _random_frames(rng, rng.randint(0, 90))]
    rng.shuffle(frames)
    for sid, offset, data, fin in frames:
        error = model_error = None
        try:
            manager.on_stream_frame(sid, offset, memoryview(data), fin, 0x0F)
        except TransportError as exc:
            error = (type(exc), exc.error_code)
        while events:
            event = events.popleft()
            assert isinstance(event, StreamDataReceived)
            delivered.setdefault(event.stream_id, bytearray()).extend(event.data)
            if event.end_stream:
                ended.add(event.stream_id)
            if not consume_on_delivery and event.data:
                manager.consume(event.stream_id, len(event.data))
        if sid & 2 and sid in model and model[sid].is_finished:
            pass  # a finished uni stream is forgotten: frames for it are ignored
        else:
            recv = model.setdefault(sid, RecvStream(sid, 120, connection=model_conn))
            try:
                recv.on_stream_frame(offset, data, fin)
                chunk = recv.read()
                if chunk or recv.at_eof and sid not in model_ended:
                    model_delivered.setdefault(sid, bytearray()).extend(chunk)
                    if recv.at_eof:
                        model_ended.add(sid)
            except TransportError as exc:
                model_error = (type(exc), exc.error_code)
        assert error == model_error
        if error is not None:
            return
        assert delivered == model_delivered
        assert ended == model_ended
        window = manager.connection_window
        assert (window.received, window.consumed) == (model_conn.received, model_conn.consumed)
        # a due window update is never missed (once due, it stays queued here: nothing writes
        # the frames); a finished unidirectional stream is forgotten, its window no longer
        # matters
        ever_due = ever_due or model_conn.update_due() or any(
            r.window.update_due() for s, r in model.items() if not s & 2)
        if ever_due:
            assert manager.has_control()
        if model_conn.update_due():
            assert window.update_due()


@pytest.mark.parametrize("seed", range(150))
def test_stream_fast_paths_send_queue_never_drops_a_stream_with_data(seed: int) -> None:
    """StreamManager.write_stream_frames with random packet sizes, loss and acknowledgements
    on several streams: a stream with something to send is always queued (the manager skips
    has_data_to_send after a FIN), and every byte and FIN arrives."""
    rng = random.Random(seed)
    events: deque[Event] = deque()
    manager = _manager(True, events)
    payloads = {sid: rng.randbytes(rng.choice((0, 1, 8, 109, 700, 3000))) for sid in (1, 5, 3)}
    for sid, payload in payloads.items():
        cut = rng.randint(0, len(payload))
        manager.send(sid, payload[:cut], False)
        manager.send(sid, payload[cut:], True)
    received = {sid: bytearray(len(p)) for sid, p in payloads.items()}
    fins: set[int] = set()
    in_flight: list[tuple[Any, ...]] = []
    for _ in range(2000):
        for sid in payloads:
            stream = manager.get(sid)
            if stream is not None and stream.send is not None and \
                    stream.send.has_data_to_send():
                assert manager.has_data()
        if not manager.has_data() and not in_flight:
            break
        buf = bytearray()
        records: list[Any] = []
        manager.write_stream_frames(buf, rng.choice((8, 30, 200, 1200)), records)
        in_flight += records
        rng.shuffle(in_flight)
        keep = rng.randrange(len(in_flight) + 1)
        settle, in_flight = in_flight[keep:], in_flight[:keep]
        for record in settle:
            if rng.random() < 0.3:
                manager.on_frame_lost(record)
                continue
            _, stream, offset, length, fin = record
            data = payloads[stream.stream_id][offset:offset + length]
            received[stream.stream_id][offset:offset + length] = data
            if fin:
                fins.add(stream.stream_id)
            manager.on_frame_acked(record)
    assert {sid: bytes(r) for sid, r in received.items()} == payloads
    assert fins == set(payloads)
    for sid in payloads:  # every sending part finished (a finished uni stream is forgotten)
        stream = manager.get(sid)
        assert stream is None or (stream.send is not None and stream.send.is_finished)
    assert manager.get(3) is None
    # the shared empty RangeSet and chunk lists stayed empty
    assert not NO_RANGES and len(NO_RANGES) == 0
    assert NO_CHUNKS == [] and NO_CHUNK_STARTS == []



def _send_view(stream: SendStream) -> tuple[Any, ...]:
    credit = stream.credit
    return (stream.state, stream.write_offset, stream.sent_offset, stream.acked_offset,
            stream.final_size, stream.has_data_to_send(), stream.buffered, stream.is_finished,
            credit.used, credit.limit, credit.is_blocked, credit.blocked_due)


@pytest.mark.parametrize("seed", range(300))
def test_stream_fast_paths_write_frame_agrees_with_general_path(seed: int) -> None:
    """write_frame (with its small-frame shortcut) and the general path it shortcuts, on twin
    streams with small writes, small and boundary rooms, tight credits, loss and acks: the
    same bytes, the same result, the same stream and credit state after every step."""
    rng = random.Random(seed)
    stream_credit = rng.choice((5, 40, 100, 1000, 1 << 20))
    conn_credit = rng.choice((None, 30, 150, 1 << 20))
    fast_conn = None if conn_credit is None else SendCredit(conn_credit)
    slow_conn = None if conn_credit is None else SendCredit(conn_credit)
    fast = SendStream(4, stream_credit, connection=fast_conn)
    slow = SendStream(4, stream_credit, connection=slow_conn)
    id_bytes = rng.choice((b"\x04", b"\x40\x84", b"\x80\x00\x01\x04"))
    in_flight: list[tuple[int, int, bool]] = []
    written_size = 0
    for _ in range(150):
        if fast.final_size is None and rng.random() < 0.4:
            data = rng.randbytes(rng.choice((0, 1, 2, 10, 62, 63, 64, 65, 200)))
            fin = rng.random() < 0.05
            fast.write(data, fin)
            slow.write(data, fin)
            written_size += len(data)
            if written_size > 0x4200 and fast.final_size is None:
                fast.write(b"", True)
                slow.write(b"", True)
        room = rng.choice((rng.randint(0, 80), 1200, 0x4000 + rng.randint(-3, 3)))
        fast_buf, slow_buf = bytearray(b"\xff"), bytearray(b"\xff")
        result = fast.write_frame(fast_buf, room, id_bytes)
        assert result == slow._write_frame_general(slow_buf, room, id_bytes)
        assert fast_buf == slow_buf
        assert _send_view(fast) == _send_view(slow)
        if fast_conn is not None and slow_conn is not None:
            assert (fast_conn.used, fast_conn.is_blocked) == (slow_conn.used, slow_conn.is_blocked)
            if rng.random() < 0.1:
                raised = fast_conn.limit + rng.randint(1, 100)
                fast_conn.on_max(raised)
                slow_conn.on_max(raised)
        if result is not None and result is not NO_ROOM:
            in_flight.append(result[:3])
        if rng.random() < 0.1:
            raised = fast.credit.limit + rng.randint(1, 100)
            fast.on_max_stream_data(raised)
            slow.on_max_stream_data(raised)
        if rng.random() < 0.3:
            rng.shuffle(in_flight)
            for offset, length, fin in in_flight:
                if rng.random() < 0.3:
                    fast.on_data_lost(offset, length, fin)
                    slow.on_data_lost(offset, length, fin)
                else:
                    assert fast.on_data_acked(offset, length, fin) == slow.on_data_acked(
                        offset, length, fin)
            in_flight = []
            assert _send_view(fast) == _send_view(slow)
    assert NO_CHUNKS == [] and NO_CHUNK_STARTS == [] and not NO_RANGES


def test_stream_fast_paths_fin_written_after_lost_data_rides_the_retransmission() -> None:
    """Data sent and lost, then FIN written: the retransmission carries the FIN and sends it
    (DATA_SENT; no lone FIN after it), and its acknowledgement finishes the stream (it used to
    raise StreamStateError, closing the connection with INTERNAL_ERROR)."""
    stream = SendStream(0, 1000)
    stream.write(b"0123456789")
    assert stream.get_frame(100) is not None
    stream.on_data_lost(0, 10, False)
    stream.write(b"", fin=True)
    offset, data, fin = stream.get_frame(100) or (None, b"", False)
    assert (offset, bytes(data), fin) == (0, b"0123456789", True)
    assert stream.state is SendState.DATA_SENT
    assert stream.get_frame(100) is None and not stream.has_data_to_send()
    assert stream.on_data_acked(0, 10, True)
    assert stream.state is SendState.DATA_RECVD


def test_stream_fast_paths_write_frame_every_small_size_and_room() -> None:
    """Unsent sizes around the shortcut's limits (1-byte and 2-byte Length fields, up to its
    4 KiB) at offsets of every varint width it handles, in rooms around every capacity edge:
    the same frame and result as the general path."""
    sizes = [*range(1, 70), *range(4090, 4100)]
    for sent in (0, 5, 100):
        for size in sizes:
            rooms = range(0, 81) if size < 70 else range(size - 3, size + 10)
            for room in {*rooms, 0x4000, 0x4003, 0x4006}:
                fast, slow = SendStream(4, 1 << 20), SendStream(4, 1 << 20)
                for stream in (fast, slow):
                    if sent:
                        stream.write(b"s" * sent)
                        assert stream.get_frame(sent) is not None
                    stream.write(bytes(i % 251 for i in range(size)), fin=size % 2 == 0)
                fast_buf, slow_buf = bytearray(), bytearray()
                assert fast.write_frame(fast_buf, room, b"\x04") == \
                    slow._write_frame_general(slow_buf, room, b"\x04")
                assert fast_buf == slow_buf
                assert _send_view(fast) == _send_view(slow)


def test_stream_fast_paths_stream_id_bytes_are_the_varint() -> None:
    ids = [*range(0, 0x4100), 0x3FFF_FFFF, 0x4000_0000, (1 << 62) - 1]
    for stream_id in ids:
        assert Stream(stream_id, None, None, True).id_bytes == encode_varint(stream_id)
