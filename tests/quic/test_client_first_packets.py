"""What a client takes from the network before its handshake is done: one Version
Negotiation at most (RFC 9000 §6.2, RFC 9368 §4: a second one, or one listing the version the
client tried, could only be a downgrade), and, once the server's first Initial came, only
packets from that server's Source Connection ID (RFC 9000 §7.2: a forged Initial, protected
with the public Initial keys, must not close the connection). Found by a fuzz campaign."""

from __future__ import annotations

from tests.quic.conn_helpers import client_config, server_config
from trio_zttp._buffer import encode_varint
from trio_zttp.quic._connection import Connection
from trio_zttp.quic._crypto import derive_initial_keys
from trio_zttp.quic._packet import (
    PacketType,
    encode_long_header,
    encode_version_negotiation,
    iter_coalesced,
    parse_header,
)

SERVER, CLIENT = ("10.0.0.2", 4433), ("10.0.0.1", 5555)
V1, V2 = 0x00000001, 0x6B3343CF


def _events(connection: Connection) -> list[object]:
    events = []
    while (event := connection.next_event()) is not None:
        events.append(event)
    return events


def test_a_client_acts_on_one_version_negotiation_only() -> None:
    client = Connection(client_config(seed=1))  # v1 first, v2 supported
    client.connect(SERVER, 0.0)
    first = parse_header(client.datagrams_to_send(0.0)[0][0], 0, 8)
    client.receive_datagram(encode_version_negotiation(first.scid, first.dcid, [V2], 0x55),
                            SERVER, 0.01)
    assert client._version == V2  # a new attempt in v2
    again = parse_header(client.datagrams_to_send(0.01)[0][0], 0, 8)
    # a second one, listing the version first tried (a downgrade): ignored
    client.receive_datagram(encode_version_negotiation(again.scid, again.dcid, [V1], 0x55),
                            SERVER, 0.02)
    client.datagrams_to_send(0.02)
    assert client._version == V2
    # and one listing no common version does not end the connection
    client.receive_datagram(encode_version_negotiation(again.scid, again.dcid, [0x0A0A0A0A],
                                                       0x55), SERVER, 0.03)
    assert not [e for e in _events(client) if type(e).__name__ == "ConnectionTerminated"]


def test_a_client_ignores_packets_from_another_source_connection_id() -> None:
    client, server = Connection(client_config(seed=1)), Connection(server_config(seed=2))
    client.connect(SERVER, 0.0)
    flight = client.datagrams_to_send(0.0)
    first = parse_header(flight[0][0], 0, 8)
    for data, _ in flight:
        server.receive_datagram(data, CLIENT, 0.01)
    answer = server.datagrams_to_send(0.01)[0][0]
    initial = next(h for h in iter_coalesced(answer, 8) if h.packet_type is PacketType.INITIAL)
    packet = answer[initial.start : initial.end]
    client.receive_datagram(packet + bytes(max(0, 1200 - len(packet))), SERVER, 0.02)
    client.datagrams_to_send(0.02)
    _events(client)
    # an Initial forged with the server's (public) Initial keys, from another SCID,
    # carrying CONNECTION_CLOSE
    sealer, _ = derive_initial_keys(V1, first.dcid, False)
    frames = b"\x1c" + encode_varint(0x0A) + encode_varint(0) + encode_varint(4) + b"evil"
    frames += bytes(1100 - len(frames))
    header = encode_long_header(PacketType.INITIAL, V1, first.scid, b"\x99" * 8, b"",
                                2 + len(frames) + 16, 50, 2, length_size=2)
    client.receive_datagram(sealer.seal(header, frames, 50), SERVER, 0.03)
    assert not _events(client)
    assert client._state.name == "FIRSTFLIGHT"
