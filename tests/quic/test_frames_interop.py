"""Frame codec against aioquic (an implementation nobody here wrote).

* ACK frames: aioquic's ``push_ack_frame`` output decodes to the same ranges with our parser,
  and our ``write_ack_frame`` output is accepted by aioquic's ``pull_ack_frame``.
* Live session: an aioquic client and server run a handshake, streams, datagrams, resets,
  connection-ID changes and a close in memory.  Every packet payload aioquic encrypts is
  captured before encryption and decoded by ``decode_frames``; the result must match the
  frames aioquic says it sent (its qlog).
* The other way round: payloads we encode replace the plaintext of packets an aioquic peer
  sends, and the receiving aioquic peer must parse every frame to the same values (its qlog)
  and act on them (its events).
"""

from __future__ import annotations

import datetime
import ssl
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from trio_zttp._buffer import Writer
from trio_zttp.quic._frame_codec import (
    decode_frames,
    encode_frame,
    parse_ack,
    write_ack_frame,
    write_datagram_frame,
    write_stream_frame,
)
from trio_zttp.quic._frames import (
    AckFrame,
    ConnectionCloseFrame,
    CryptoFrame,
    DataBlockedFrame,
    DatagramFrame,
    Frame,
    HandshakeDoneFrame,
    MaxDataFrame,
    MaxStreamDataFrame,
    MaxStreamsFrame,
    NewConnectionIdFrame,
    NewTokenFrame,
    PaddingFrame,
    PathChallengeFrame,
    PathResponseFrame,
    PingFrame,
    ResetStreamFrame,
    RetireConnectionIdFrame,
    StopSendingFrame,
    StreamDataBlockedFrame,
    StreamFrame,
    StreamsBlockedFrame,
)

aioquic_buffer = pytest.importorskip("aioquic.buffer")
from aioquic.quic import crypto as aioquic_crypto  # noqa: E402
from aioquic.quic import events as aioquic_events  # noqa: E402
from aioquic.quic.configuration import QuicConfiguration  # noqa: E402
from aioquic.quic.connection import QuicConnection  # noqa: E402
from aioquic.quic.logger import QuicLogger  # noqa: E402
from aioquic.quic.packet import QuicProtocolVersion, pull_ack_frame, push_ack_frame  # noqa: E402
from aioquic.quic.rangeset import RangeSet  # noqa: E402

CLIENT_ADDR = ("192.0.2.1", 4433)
SERVER_ADDR = ("192.0.2.2", 4433)


# --------------------------------------------------------------------------------------------
# ACK frames through aioquic's own ACK codec


@st.composite
def range_sets(draw: st.DrawFn) -> list[tuple[int, int]]:
    """Ascending inclusive ranges with gaps, as aioquic's RangeSet holds them."""
    ranges = []
    low = draw(st.integers(0, 2**40))
    for _ in range(draw(st.integers(1, 30))):
        high = low + draw(st.integers(0, 2**16))
        ranges.append((low, high))
        low = high + 2 + draw(st.integers(0, 2**16))
    return ranges


@given(ranges=range_sets(), delay=st.integers(0, 2**30))
def test_interop_aioquic_ack_decodes(ranges: list[tuple[int, int]], delay: int) -> None:
    rangeset = RangeSet()
    for low, high in ranges:
        rangeset.add(low, high + 1)
    buf = aioquic_buffer.Buffer(capacity=4096)
    buf.push_uint_var(0x02)
    written = push_ack_frame(buf, rangeset, delay, 4000)
    assert written == len(ranges)
    assert decode_frames(buf.data) == [
        AckFrame(ranges=tuple(reversed(ranges)), ack_delay=delay)]
    assert parse_ack(buf.data, 1, 0x02)[3] == len(buf.data)


@given(ranges=range_sets(), delay=st.integers(0, 2**30),
       ecn_counts=st.none() | st.tuples(*[st.integers(0, 2**40)] * 3))
def test_interop_our_ack_accepted_by_aioquic(
    ranges: list[tuple[int, int]], delay: int, ecn_counts: tuple[int, int, int] | None
) -> None:
    out = bytearray()
    assert write_ack_frame(out, tuple(reversed(ranges)), delay, ecn_counts) == len(ranges)
    buf = aioquic_buffer.Buffer(data=bytes(out))
    assert buf.pull_uint_var() == (0x02 if ecn_counts is None else 0x03)
    rangeset, pulled_delay = pull_ack_frame(buf)
    assert [(r.start, r.stop - 1) for r in rangeset] == ranges
    assert pulled_delay == delay
    if ecn_counts is not None:
        assert tuple(buf.pull_uint_var() for _ in range(3)) == ecn_counts
    assert buf.eof()


# --------------------------------------------------------------------------------------------
# live aioquic sessions


def to_qlog(frame: Frame) -> dict[str, Any]:
    """Our frame in the shape aioquic's QuicLogger gives it (ack_delay left out)."""
    match frame:
        case PaddingFrame():
            return {"frame_type": "padding"}
        case PingFrame():
            return {"frame_type": "ping"}
        case AckFrame(ranges=ranges):
            return {"frame_type": "ack", "acked_ranges": [list(r) for r in reversed(ranges)]}
        case CryptoFrame(offset=offset, data=data):
            return {"frame_type": "crypto", "length": len(data), "offset": offset}
        case StreamFrame(stream_id=stream_id, offset=offset, data=data, fin=fin):
            return {"fin": fin, "frame_type": "stream", "length": len(data), "offset": offset,
                    "stream_id": stream_id}
        case DatagramFrame(data=data):
            return {"frame_type": "datagram", "length": len(data)}
        case MaxDataFrame(maximum_data=maximum):
            return {"frame_type": "max_data", "maximum": maximum}
        case MaxStreamDataFrame(stream_id=stream_id, maximum_stream_data=maximum):
            return {"frame_type": "max_stream_data", "maximum": maximum, "stream_id": stream_id}
        case MaxStreamsFrame(bidirectional=bidi, maximum_streams=maximum):
            return {"frame_type": "max_streams", "maximum": maximum,
                    "stream_type": "bidirectional" if bidi else "unidirectional"}
        case DataBlockedFrame(maximum_data=limit):
            return {"frame_type": "data_blocked", "limit": limit}
        case StreamDataBlockedFrame(stream_id=stream_id, maximum_stream_data=limit):
            return {"frame_type": "stream_data_blocked", "limit": limit, "stream_id": stream_id}
        case StreamsBlockedFrame(bidirectional=bidi, maximum_streams=limit):
            return {"frame_type": "streams_blocked", "limit": limit,
                    "stream_type": "bidirectional" if bidi else "unidirectional"}
        case NewConnectionIdFrame():
            return {"connection_id": frame.connection_id.hex(), "frame_type": "new_connection_id",
                    "length": len(frame.connection_id),
                    "reset_token": frame.stateless_reset_token.hex(),
                    "retire_prior_to": frame.retire_prior_to,
                    "sequence_number": frame.sequence_number}
        case RetireConnectionIdFrame(sequence_number=sequence_number):
            return {"frame_type": "retire_connection_id", "sequence_number": sequence_number}
        case ResetStreamFrame(stream_id=stream_id, error_code=code, final_size=size):
            return {"error_code": code, "final_size": size, "frame_type": "reset_stream",
                    "stream_id": stream_id}
        case StopSendingFrame(stream_id=stream_id, error_code=code):
            return {"error_code": code, "frame_type": "stop_sending", "stream_id": stream_id}
        case NewTokenFrame(token=token):
            return {"frame_type": "new_token", "length": len(token), "token": token.hex()}
        case HandshakeDoneFrame():
            return {"frame_type": "handshake_done"}
        case PathChallengeFrame(data=data):
            return {"data": data.hex(), "frame_type": "path_challenge"}
        case PathResponseFrame(data=data):
            return {"data": data.hex(), "frame_type": "path_response"}
        case ConnectionCloseFrame(error_code=code, frame_type=trigger, reason_phrase=reason):
            out = {"error_code": code, "frame_type": "connection_close", "raw_error_code": code,
                   "error_space": "application" if trigger is None else "transport",
                   "reason": reason.decode()}
            if trigger is not None:
                out["trigger_frame_type"] = trigger
            return out
    raise AssertionError(frame)


def strip_ack_delay(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in f.items() if k != "ack_delay"} for f in frames]


def self_signed() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC))
        .not_valid_after(datetime.datetime(2100, 1, 1, tzinfo=datetime.UTC))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


PACKET_TYPES = {0: "initial", 1: "0RTT", 2: "handshake"}  # QUIC v1 long-header types


class Session:
    """An aioquic client/server pair in memory; records every plaintext payload sent."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, **config: Any) -> None:
        # (sender, packet type, packet number, plaintext payload)
        self.sent: list[tuple[str, str, int, bytes]] = []
        self.substitutes: dict[str, list[bytes]] = {"client": [], "server": []}
        self._sender = ""
        original = aioquic_crypto.CryptoPair.encrypt_packet
        session = self

        def encrypt_packet(
            pair: Any, plain_header: bytes, plain_payload: bytes, packet_number: int
        ) -> bytes:
            first = plain_header[0]
            kind = PACKET_TYPES[(first >> 4) & 3] if first & 0x80 else "1RTT"
            queue = session.substitutes[session._sender]
            if kind == "1RTT" and queue:
                plain_payload = queue.pop(0)
            session.sent.append((session._sender, kind, packet_number, bytes(plain_payload)))
            return original(pair, plain_header, plain_payload, packet_number)

        monkeypatch.setattr(aioquic_crypto.CryptoPair, "encrypt_packet", encrypt_packet)
        cert, key = self_signed()
        common: dict[str, Any] = {
            "alpn_protocols": ["zttp-test"], "max_datagram_frame_size": 65536,
            "supported_versions": [QuicProtocolVersion.VERSION_1], **config,
        }
        self.client_log, self.server_log = QuicLogger(), QuicLogger()
        self.client = QuicConnection(configuration=QuicConfiguration(
            is_client=True, verify_mode=ssl.CERT_NONE, server_name="localhost",
            quic_logger=self.client_log, **common))
        self.server = QuicConnection(
            configuration=QuicConfiguration(
                is_client=False, certificate=cert, private_key=key, quic_logger=self.server_log,
                **common),
            original_destination_connection_id=self.client.original_destination_connection_id,
        )
        self.now = 1.0
        self.events: dict[str, list[aioquic_events.QuicEvent]] = {"client": [], "server": []}
        self.client.connect(SERVER_ADDR, now=self.now)
        self.pump()

    def pump(self, rounds: int = 30) -> None:
        """Exchange datagrams (no loss) until both sides go quiet."""
        peers = (("client", self.client, self.server, CLIENT_ADDR),
                 ("server", self.server, self.client, SERVER_ADDR))
        for _ in range(rounds):
            moved = False
            for name, sender, receiver, addr in peers:
                self._sender = name
                for data, _ in sender.datagrams_to_send(now=self.now):
                    moved = True
                    receiver.receive_datagram(data, addr, now=self.now)
            self.now += 0.005
            for name, conn in (("client", self.client), ("server", self.server)):
                while (event := conn.next_event()) is not None:
                    self.events[name].append(event)
            if not moved:
                return

    def inject(self, sender: str, payload: bytes) -> None:
        """Send ``payload`` as the plaintext of ``sender``'s next 1-RTT packet."""
        self.substitutes[sender].append(payload)
        (self.client if sender == "client" else self.server).send_ping(12345)
        self.pump()
        assert not self.substitutes[sender]

    def expire(self) -> None:
        """Run both sides' timers far ahead (ends draining, emits ConnectionTerminated)."""
        self.now += 60.0
        for name, conn in (("client", self.client), ("server", self.server)):
            conn.handle_timer(now=self.now)
            while (event := conn.next_event()) is not None:
                self.events[name].append(event)

    def qlog(self, side: str, name: str) -> list[dict[str, Any]]:
        log = self.client_log if side == "client" else self.server_log
        (trace,) = log.to_dict()["traces"]
        return [e["data"] for e in trace["events"] if e["name"] == f"transport:{name}"]


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> Iterator[Session]:
    # small flow-control windows so that aioquic sends MAX_DATA / MAX_STREAM_DATA
    yield Session(monkeypatch, max_data=16384, max_stream_data=8192)


def run_scenario(session: Session) -> tuple[bytes, list[bytes]]:
    """Streams, datagrams, resets, CID changes, a ping and a close, driven through aioquic."""
    client, server = session.client, session.server
    assert any(isinstance(e, aioquic_events.HandshakeCompleted)
               for e in session.events["client"])
    upload = bytes(range(256)) * 200
    client.send_stream_data(0, upload[:20000])
    session.pump()
    client.send_stream_data(0, upload[20000:], end_stream=True)
    client.send_datagram_frame(b"datagram-1")
    session.pump()
    server.send_stream_data(0, b"reply", end_stream=True)
    server.send_datagram_frame(b"datagram-2")
    client.send_stream_data(4, b"to be reset")
    session.pump()
    client.reset_stream(4, 7)
    server.stop_stream(4, 9)
    client.send_ping(1)
    client.change_connection_id()
    session.pump()
    client.close(error_code=0x100, reason_phrase="done here")
    session.pump()
    return upload, [b"datagram-1", b"datagram-2"]


def test_interop_aioquic_payloads_decode_as_aioquic_logged_them(session: Session) -> None:
    upload, datagrams = run_scenario(session)
    seen: set[str] = set()
    received = bytearray()
    got_datagrams = []
    for side in ("client", "server"):
        logged = {(e["header"]["packet_type"], e["header"]["packet_number"]): e["frames"]
                  for e in session.qlog(side, "packet_sent")}
        for sender, kind, number, payload in session.sent:
            if sender != side:
                continue
            frames = decode_frames(payload)
            assert strip_ack_delay(logged[kind, number]) == [to_qlog(f) for f in frames]
            for frame in frames:
                seen.add(type(frame).__name__)
                if isinstance(frame, StreamFrame) and side == "client" and frame.stream_id == 0:
                    assert frame.offset <= len(received)
                    received[frame.offset: frame.offset + len(frame.data)] = frame.data
                if isinstance(frame, DatagramFrame):
                    got_datagrams.append(frame.data)
    assert bytes(received) == upload
    assert got_datagrams == datagrams
    assert seen >= {
        "PaddingFrame", "PingFrame", "AckFrame", "CryptoFrame", "StreamFrame", "DatagramFrame",
        "MaxDataFrame", "MaxStreamDataFrame", "NewConnectionIdFrame", "RetireConnectionIdFrame",
        "ResetStreamFrame", "StopSendingFrame", "HandshakeDoneFrame", "ConnectionCloseFrame",
    }, seen
    closes = [f for _, _, _, p in session.sent for f in decode_frames(p)
              if isinstance(f, ConnectionCloseFrame)]
    assert closes[0] == ConnectionCloseFrame(error_code=0x100, frame_type=None,
                                             reason_phrase=b"done here")


def encode_all(*frames: Frame, tail: Callable[[bytearray], None] | None = None) -> bytes:
    writer = Writer()
    for frame in frames:
        encode_frame(writer, frame)
    if tail is not None:
        tail(writer.buffer)
    return writer.getvalue()


def received_frames(session: Session, side: str) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = session.qlog(side, "packet_received")[-1]["frames"]
    return strip_ack_delay(frames)


def test_interop_our_frames_parsed_by_aioquic_server(session: Session) -> None:
    largest = max(n for s, k, n, _ in session.sent if s == "server" and k == "1RTT")
    frames: list[Frame] = [
        PaddingFrame(length=3),
        AckFrame(ranges=((largest, largest),), ack_delay=10, ecn_counts=(3, 0, 1)),
        StreamFrame(stream_id=0, offset=0, data=b"abc"),
        StreamFrame(stream_id=0, offset=3, data=b"def", fin=True),
        DatagramFrame(data=b"dg-1"),
        MaxDataFrame(maximum_data=10**7),
        MaxStreamDataFrame(stream_id=0, maximum_stream_data=10**6),
        MaxStreamsFrame(bidirectional=True, maximum_streams=200),
        MaxStreamsFrame(bidirectional=False, maximum_streams=300),
        DataBlockedFrame(maximum_data=5000),
        StreamDataBlockedFrame(stream_id=0, maximum_stream_data=100),
        StreamsBlockedFrame(bidirectional=True, maximum_streams=8),
        StreamsBlockedFrame(bidirectional=False, maximum_streams=9),
        NewConnectionIdFrame(sequence_number=20, retire_prior_to=20, connection_id=b"\x11" * 8,
                             stateless_reset_token=b"\x22" * 16),
        RetireConnectionIdFrame(sequence_number=1),
        PathChallengeFrame(data=b"chalenge"),
        ResetStreamFrame(stream_id=4, error_code=7, final_size=0),
        StopSendingFrame(stream_id=8, error_code=9),
        PingFrame(),
    ]
    payload = encode_all(*frames, tail=lambda buf: write_stream_frame(
        buf, 12, 0, b"to the end", True, with_length=False))
    session.inject("client", payload)
    expected = [to_qlog(f) for f in frames]
    expected.append(to_qlog(StreamFrame(stream_id=12, data=b"to the end", fin=True)))
    assert received_frames(session, "server") == expected
    events = session.events["server"]
    assert not any(isinstance(e, aioquic_events.ConnectionTerminated) for e in events)
    stream_data = [(e.stream_id, e.data, e.end_stream) for e in events
                   if isinstance(e, aioquic_events.StreamDataReceived)]
    assert (0, b"abc", False) in stream_data and (0, b"def", True) in stream_data
    assert (12, b"to the end", True) in stream_data
    assert aioquic_events.DatagramFrameReceived(data=b"dg-1") in events
    assert aioquic_events.StreamReset(stream_id=4, error_code=7) in events
    # the server answered our PATH_CHALLENGE, and we decode its PATH_RESPONSE
    responses = [f for s, _, _, p in session.sent if s == "server" for f in decode_frames(p)
                 if isinstance(f, PathResponseFrame)]
    assert responses == [PathResponseFrame(data=b"chalenge")]


def test_interop_our_frames_parsed_by_aioquic_client(session: Session) -> None:
    frames: list[Frame] = [
        NewTokenFrame(token=b"address-validation-token"),
        HandshakeDoneFrame(),
        PingFrame(),
        PaddingFrame(length=40),
    ]
    payload = encode_all(*frames, tail=lambda buf: write_datagram_frame(
        buf, b"datagram to the end", with_length=False))
    session.inject("server", payload)
    expected = [to_qlog(f) for f in frames] + [to_qlog(DatagramFrame(data=b"x" * 19))]
    assert received_frames(session, "client") == expected
    events = session.events["client"]
    assert aioquic_events.DatagramFrameReceived(data=b"datagram to the end") in events
    assert not any(isinstance(e, aioquic_events.ConnectionTerminated) for e in events)


@pytest.mark.parametrize("close", [
    ConnectionCloseFrame(error_code=0x0A, frame_type=0x08, reason_phrase=b"bad stream"),
    ConnectionCloseFrame(error_code=0x1234, frame_type=None, reason_phrase=b"app says bye"),
    ConnectionCloseFrame(error_code=0, frame_type=0, reason_phrase=b""),
])
def test_interop_our_connection_close_parsed_by_aioquic(
    session: Session, close: ConnectionCloseFrame
) -> None:
    session.inject("client", encode_all(close))
    assert received_frames(session, "server") == [to_qlog(close)]
    session.expire()
    (terminated,) = [e for e in session.events["server"]
                     if isinstance(e, aioquic_events.ConnectionTerminated)]
    assert terminated.error_code == close.error_code
    assert terminated.frame_type == close.frame_type
    assert terminated.reason_phrase == close.reason_phrase.decode()
