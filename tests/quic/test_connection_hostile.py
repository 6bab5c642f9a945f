"""Hostile input: nothing a peer sends raises out of ``receive_datagram``; every violation ends
in CONNECTION_CLOSE with the RFC's code, seen by the peer too.

Frames are injected into a live connection as valid 1-RTT packets, sealed with the traffic
secrets from the key log (see ``Forger``), so they reach the frame handlers.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.quic.conn_helpers import (
    CLEAN,
    Forger,
    KeyLog,
    client_config,
    events_named,
    handshake,
    ours_client,
    ours_server,
    server_config,
)
from trio_zttp import quic
from trio_zttp._buffer import encode_varint as v
from trio_zttp.testing import Pair

E = quic.TransportErrorCode


def _live_pair(**server_options: object) -> tuple[Pair, Forger]:
    """A connected pair and a forger of client packets to the server."""
    keylog = KeyLog()
    pair = Pair(ours_client(client_config(secrets_log_file=keylog)),  # type: ignore[arg-type]
                ours_server(server_config(**server_options)), link=CLEAN)
    handshake(pair)
    pair.run_for(0.1)
    forger = Forger(keylog, to_client=False,
                    dcid=pair.server.local_connection_id)  # type: ignore[attr-defined]
    return pair, forger


def _inject(pair: Pair, forger: Forger, payload: bytes) -> None:
    pair.inject("server", forger.packet(payload))
    pair.run_for(0.5)


def _server_close(pair: Pair) -> object | None:
    ends = events_named(pair.server_events, "ConnectionTerminated")
    return ends[0] if ends else None


VIOLATIONS = {
    "unknown frame type": (b"\x21", E.FRAME_ENCODING_ERROR, 0x21),
    "frame type not minimal": (b"\x40\x01", E.PROTOCOL_VIOLATION, 0x01),
    "truncated MAX_DATA": (b"\x00\x00\x00\x10", E.FRAME_ENCODING_ERROR, 0x10),
    "truncated STREAM": (b"\x00\x0e\x00\x05", E.FRAME_ENCODING_ERROR, 0x0E),
    "STREAM on our unidirectional stream": (b"\x0b" + v(3) + v(1) + b"x", E.STREAM_STATE_ERROR,
                                            0x0B),
    "STREAM beyond the stream limit": (b"\x0b" + v(4 * 200) + v(1) + b"x", E.STREAM_LIMIT_ERROR,
                                       0x0B),
    "STREAM beyond flow control": (b"\x0f" + v(0) + v(10_000_000) + v(1) + b"x",
                                   E.FLOW_CONTROL_ERROR, 0x0F),
    "STREAM past 2**62": (b"\x0e" + v(0) + v((1 << 62) - 1) + v(2) + b"xy",
                          E.FRAME_ENCODING_ERROR, 0x0E),
    "RESET_STREAM below received data": (
        b"\x0b" + v(0) + v(5) + b"hello" + b"\x04" + v(0) + v(1) + v(2),
        E.FINAL_SIZE_ERROR, 0x04),
    "STREAM changing the final size": (
        b"\x0b" + v(0) + v(5) + b"hello" + b"\x09" + v(0) + b"hello!",
        E.FINAL_SIZE_ERROR, 0x09),
    "STOP_SENDING for an unopened local stream": (b"\x05" + v(1) + v(0),
                                                  E.STREAM_STATE_ERROR, 0x05),
    "MAX_STREAM_DATA for a receive-only stream": (b"\x11" + v(2) + v(100),
                                                  E.STREAM_STATE_ERROR, 0x11),
    "MAX_STREAMS above 2**60": (b"\x12" + v((1 << 60) + 1), E.FRAME_ENCODING_ERROR, 0x12),
    "ACK of a packet never sent": (b"\x02" + v(1_000_000) + v(0) + v(0) + v(0),
                                   E.PROTOCOL_VIOLATION, 0x02),
    "HANDSHAKE_DONE from a client": (b"\x1e", E.PROTOCOL_VIOLATION, 0x1E),
    "NEW_TOKEN from a client": (b"\x07" + v(3) + b"abc", E.PROTOCOL_VIOLATION, 0x07),
    "DATAGRAM not negotiated": (b"\x31" + v(2) + b"hi", E.PROTOCOL_VIOLATION, 0x31),
    "RETIRE_CONNECTION_ID never issued": (b"\x19" + v(100), E.PROTOCOL_VIOLATION, 0x19),
    "NEW_CONNECTION_ID past the limit": (
        b"".join(b"\x18" + v(i) + v(0) + b"\x08" + bytes([i]) * 8 + bytes(16)
                 for i in range(100, 110)),
        E.CONNECTION_ID_LIMIT_ERROR, 0x18),
    "CRYPTO far ahead": (b"\x06" + v(10_000_000) + v(4) + b"junk", E.CRYPTO_BUFFER_EXCEEDED,
                         0x06),
    "CRYPTO garbage at 1-RTT": (b"\x06" + v(0) + v(8) + b"\xff" * 8, 0x100 + 10, None),
}


@pytest.mark.parametrize("name", list(VIOLATIONS))
def test_hostile_frame_closes_with_the_rfc_code(name: str) -> None:
    payload, code, frame_type = VIOLATIONS[name]
    pair, forger = _live_pair()
    _inject(pair, forger, payload)
    end = _server_close(pair)
    assert end is not None, name
    assert end.error_code == code, (name, end)  # type: ignore[attr-defined]
    if frame_type is not None:
        assert end.frame_type == frame_type  # type: ignore[attr-defined]
    assert not end.by_peer  # type: ignore[attr-defined]
    pair.run_until(lambda: events_named(pair.client_events, "ConnectionTerminated"))
    seen = events_named(pair.client_events, "ConnectionTerminated")[0]
    assert seen.error_code == code and seen.by_peer


def test_hostile_datagram_too_large_for_our_limit() -> None:
    pair, forger = _live_pair(max_datagram_frame_size=50)
    _inject(pair, forger, b"\x31" + v(100) + b"x" * 100)
    end = _server_close(pair)
    assert end is not None and end.error_code == E.PROTOCOL_VIOLATION  # type: ignore


def test_hostile_harmless_frames_keep_the_connection() -> None:
    pair, forger = _live_pair()
    # an unsolicited PATH_RESPONSE, PADDING, PING, blocked frames, a duplicate ACK range
    _inject(pair, forger, b"\x1b" + bytes(8) + b"\x00\x00\x01\x14" + v(5) + b"\x16" + v(3))
    assert _server_close(pair) is None


_VARINT = st.integers(min_value=0, max_value=(1 << 62) - 1).map(v)
_SMALL = st.integers(min_value=0, max_value=300).map(v)
_FIELD = st.one_of(_SMALL, _VARINT, st.binary(min_size=0, max_size=24))
_FRAME = st.builds(
    lambda t, fields: bytes([t]) + b"".join(fields),
    st.sampled_from(list(range(0x00, 0x1F)) + [0x30, 0x31]),
    st.lists(_FIELD, max_size=5),
)
_PAYLOAD = st.one_of(st.binary(min_size=1, max_size=200),
                     st.lists(_FRAME, min_size=1, max_size=6).map(b"".join))
_CODES = {int(c) for c in E} | set(range(0x100, 0x200))


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=_PAYLOAD, target=st.sampled_from(["client", "server"]))
def test_hostile_fuzzed_frames_never_raise(payload: bytes, target: str) -> None:
    pair, forger = _live_pair()
    if target == "client":
        forger = Forger(forger.keylog, to_client=True,
                        dcid=pair.client.local_connection_id)  # type: ignore[attr-defined]
    pair.inject(target, forger.packet(payload))  # type: ignore[arg-type]
    pair.run_for(0.3)
    for end in events_named(pair.events(target), "ConnectionTerminated"):  # type: ignore
        if end.by_peer:
            continue  # a forged CONNECTION_CLOSE: any code goes
        code = end.error_code
        assert code in _CODES
        assert code != E.INTERNAL_ERROR, end


@settings(max_examples=100, deadline=None)
@given(data=st.binary(min_size=0, max_size=1500), target=st.sampled_from(["client", "server"]))
def test_hostile_random_datagrams_are_dropped(data: bytes, target: str) -> None:
    pair, _ = _live_pair()
    pair.inject(target, data)  # type: ignore[arg-type]
    pair.run_for(0.3)
    assert not events_named(pair.events(target), "ConnectionTerminated")  # type: ignore


@settings(max_examples=100, deadline=None)
@given(flips=st.lists(st.tuples(st.integers(0, 4000), st.integers(1, 255)), min_size=1,
                      max_size=4))
def test_hostile_mutated_handshake_datagrams(flips: list[tuple[int, int]]) -> None:
    """Corrupt the client's and server's first flights: both ends stay exception-free and
    either complete or close with a proper code."""
    client = _Mangler(ours_client(), flips)
    pair = Pair(client, ours_server(), link=CLEAN)
    pair.connect()
    pair.run_for(5.0)
    for side in ("client", "server"):
        for end in events_named(pair.events(side), "ConnectionTerminated"):  # type: ignore
            assert end.error_code != E.INTERNAL_ERROR


@settings(max_examples=100, deadline=None)
@given(data=st.binary(min_size=0, max_size=1400))
def test_hostile_first_datagram_to_a_server(data: bytes) -> None:
    server = quic.Connection(server_config())
    server.receive_datagram(data, ("192.0.2.1", 1), 0.0)
    server.receive_datagram(b"\xc0\x00\x00\x00\x01" + data, ("192.0.2.1", 1), 0.0)
    server.datagrams_to_send(0.0)
    event = server.next_event()
    assert event is None or getattr(event, "error_code", None) != E.INTERNAL_ERROR


class _Mangler:
    """Wraps a client connection and corrupts its first datagram."""

    def __init__(self, conn: quic.Connection, flips: list[tuple[int, int]]) -> None:
        self._conn = conn
        self._flips = flips
        self._done = False

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, object]]:
        out = self._conn.datagrams_to_send(now)
        if out and not self._done:
            self._done = True
            data, addr = out[0]
            buf = bytearray(data)
            for position, xor in self._flips:
                buf[position % len(buf)] ^= xor
            out[0] = (bytes(buf), addr)
        return out

    def __getattr__(self, name: str) -> object:
        return getattr(self._conn, name)


def _client_initial(payload: bytes, dcid: bytes = bytes(range(8)), pn: int = 0) -> bytes:
    from trio_zttp.quic._crypto import derive_initial_keys
    from trio_zttp.quic._packet import PacketType, encode_long_header

    sealer, _ = derive_initial_keys(quic.QUIC_V1, dcid, True)
    payload = payload + bytes(max(0, 1162 - len(payload)))  # PADDING up to 1200 bytes
    header = encode_long_header(PacketType.INITIAL, quic.QUIC_V1, dcid, b"\x01" * 8, b"",
                                4 + len(payload) + 16, pn, 4, length_size=2)
    return sealer.seal(header, payload, pn)


@settings(deadline=None)
@given(payload=_PAYLOAD)
def test_hostile_initial_packets_to_a_server(payload: bytes) -> None:
    """Valid Initial protection, arbitrary frames: TLS and frame errors close properly."""
    server = quic.Connection(server_config())
    server.receive_datagram(_client_initial(payload), ("192.0.2.1", 1), 0.0)
    server.datagrams_to_send(0.0)
    while (event := server.next_event()) is not None:
        if isinstance(event, quic.ConnectionTerminated) and not event.by_peer:
            assert event.error_code != E.INTERNAL_ERROR, event
            assert event.error_code in _CODES


@pytest.mark.parametrize(("payload", "code"), [
    (b"\x08" + v(0) + b"data", E.PROTOCOL_VIOLATION),  # STREAM in an Initial
    (b"\x06" + v(0) + v(6) + b"\x02\x00\x00\x02\x00\x00", 0x100 + 10),  # not a ClientHello
    (b"\x1e", E.PROTOCOL_VIOLATION),  # HANDSHAKE_DONE in an Initial
])
def test_hostile_initial_violations(payload: bytes, code: int) -> None:
    server = quic.Connection(server_config())
    server.receive_datagram(_client_initial(payload), ("192.0.2.1", 1), 0.0)
    out = server.datagrams_to_send(0.0)
    assert out  # the CONNECTION_CLOSE goes back in an Initial
    end = server.next_event()
    assert isinstance(end, quic.ConnectionTerminated)
    assert end.error_code == code


def _wide(value: int, width: int) -> bytes:
    """A varint on ``width`` bytes (longer than needed is allowed, RFC 9000 §16)."""
    return (value | {1: 0, 2: 1, 4: 2, 8: 3}[width] << (8 * width - 2)).to_bytes(width)


@pytest.mark.parametrize("width", [1, 2, 4, 8])
@pytest.mark.parametrize("size", [0, 1, 63, 64, 1000])
def test_hostile_datagram_length_in_every_varint_width(width: int, size: int) -> None:
    if size >= 64 and width == 1:
        return
    data = bytes(range(256)) * 4
    frame = b"\x31" + _wide(size, width) + data[:size]
    pair, forger = _live_pair(max_datagram_frame_size=65536)
    _inject(pair, forger, frame + b"\x01")  # a PING after it
    assert _server_close(pair) is None
    received = events_named(pair.server_events, "DatagramFrameReceived")
    assert [event.data for event in received] == [data[:size]]  # type: ignore[attr-defined]
    if len(frame) > 4:
        # one byte short: the Length runs past the packet (not padded up to 4 bytes)
        pair, forger = _live_pair(max_datagram_frame_size=65536)
        _inject(pair, forger, frame[:-1])
        end = _server_close(pair)
        assert end is not None and end.error_code == E.FRAME_ENCODING_ERROR  # type: ignore
