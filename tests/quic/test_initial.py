"""decode_client_initial against real client Initials: captured browsers and live peers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.shared_vectors import shared_vectors
from trio_zttp import quic
from trio_zttp.quic._frames import CryptoFrame, PaddingFrame, PingFrame

CAPTURES = json.loads(shared_vectors("quic-initials", "captures.json").read_text())


def frame_notes(frames: tuple[Any, ...]) -> list[list[Any]]:
    notes: list[list[Any]] = []
    for frame in frames:
        if isinstance(frame, CryptoFrame):
            notes.append(["CRYPTO", frame.offset, len(frame.data)])
        elif isinstance(frame, PaddingFrame):
            notes.append(["PADDING", frame.length])
        elif isinstance(frame, PingFrame):
            notes.append(["PING"])
        else:
            notes.append([type(frame).__name__])
    return notes


@pytest.mark.parametrize("capture", CAPTURES, ids=[c["id"] for c in CAPTURES])
def test_initial_decodes_captured_flight(capture: dict[str, Any]) -> None:
    assembler = quic.ClientHelloAssembler()
    hello = None
    for datagram_hex, note in zip(capture["datagrams_hex"], capture["datagram_notes"],
                                  strict=True):
        datagram = bytes.fromhex(datagram_hex)
        if int(note["version"], 16) not in (quic.QUIC_V1, quic.QUIC_V2):
            with pytest.raises(quic.InitialDecodeError):
                quic.decode_client_initial(datagram)
            continue
        initial = quic.decode_client_initial(datagram)
        assert initial.version == int(note["version"], 16)
        assert initial.packet_number == note["packet_number"]
        assert initial.packet_number_length == note["packet_number_length"]
        assert len(initial.dcid) == note["dcid_length"]
        assert len(initial.scid) == note["scid_length"]
        assert len(initial.token) == note["token_length"]
        assert initial.packet_length == note["first_packet_length"]
        assert initial.packet_length + initial.trailing_length == len(datagram)
        assert frame_notes(initial.frames) == note["frames"]
        hello = assembler.add(initial)
    assert hello is not None
    assert hello[0] == 1  # HandshakeType client_hello
    assert len(hello) == 4 + int.from_bytes(hello[1:4], "big")
    sni = capture["observed"].get("sni")
    if sni:
        assert sni.encode() in hello


def test_initial_single_packet_crypto_data_is_the_client_hello() -> None:
    capture = next(c for c in CAPTURES if c["client"].startswith("aioquic"))
    initial = quic.decode_client_initial(bytes.fromhex(capture["datagrams_hex"][0]))
    assert len(initial.crypto_data) == capture["observed"]["client_hello_length"]


def _capture_client_hello(monkeypatch: pytest.MonkeyPatch, tls_module: Any) -> list[bytes]:
    captured: list[bytes] = []
    original = tls_module.Context.handle_message

    def spy(self: Any, input_data: bytes, output_buf: Any, *args: Any, **kwargs: Any) -> None:
        original(self, input_data, output_buf, *args, **kwargs)
        data = bytes(output_buf[tls_module.Epoch.INITIAL].data)
        if data and not captured:
            captured.append(data)

    monkeypatch.setattr(tls_module.Context, "handle_message", spy)
    return captured


@pytest.mark.parametrize(
    ("peer", "cid_length", "token"),
    [("aioquic", 8, b""), ("aioquic", 4, b""), ("aioquic", 20, b""), ("aioquic", 8, b"t" * 40),
     ("qh3", 8, b""), ("qh3", 4, b""), ("qh3", 20, b"")],  # qh3's config has no token option
)
def test_initial_peer_client_hello_round_trip(
    monkeypatch: pytest.MonkeyPatch, peer: str, cid_length: int, token: bytes
) -> None:
    if peer == "aioquic":
        from aioquic import tls as tls_module
        from aioquic.quic.configuration import QuicConfiguration
        from aioquic.quic.connection import QuicConnection
    else:
        from qh3 import tls as tls_module  # type: ignore[no-redef]
        from qh3.quic.configuration import QuicConfiguration  # type: ignore[no-redef]
        from qh3.quic.connection import QuicConnection  # type: ignore[no-redef]
    captured = _capture_client_hello(monkeypatch, tls_module)
    options: dict[str, Any] = {"token": token} if token else {}
    config = QuicConfiguration(is_client=True, alpn_protocols=["h3"], server_name="example.com",
                               connection_id_length=cid_length, **options)
    client = QuicConnection(configuration=config)
    client.connect(("127.0.0.1", 4433), now=0.0)
    datagrams = client.datagrams_to_send(now=0.0)
    assert captured, "the peer produced no ClientHello"
    assembler = quic.ClientHelloAssembler()
    hello = None
    for data, _addr in datagrams:
        initial = quic.decode_client_initial(data)
        assert initial.version == quic.QUIC_V1
        assert initial.token == token
        assert initial.scid == client.host_cid
        assert len(initial.scid) == cid_length
        assert len(data) >= 1200
        hello = assembler.add(initial) or hello
    assert hello == captured[0]


@pytest.mark.parametrize(
    "datagram",
    [b"", b"\x40" + b"\x00" * 40, bytes.fromhex("c0ff00001d08") + b"\x00" * 30,
     b"\xc0\x00\x00\x00\x01\x08" + b"\x01" * 8 + b"\x00\x00\x41\x00" + b"\x00" * 300],
    ids=["empty", "short-header", "unknown-version", "undecryptable"],
)
def test_initial_rejects_non_initials(datagram: bytes) -> None:
    with pytest.raises(quic.InitialDecodeError):
        quic.decode_client_initial(datagram)


def test_initial_every_truncation_raises_coded_error() -> None:
    capture = next(c for c in CAPTURES if c["client"].startswith("aioquic"))
    datagram = bytes.fromhex(capture["datagrams_hex"][0])
    end = quic.decode_client_initial(datagram).packet_length
    for cut in range(end):
        with pytest.raises(quic.InitialDecodeError):
            quic.decode_client_initial(datagram[:cut])
