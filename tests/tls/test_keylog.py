"""NSS key log lines (SSLKEYLOGFILE), checked against what aioquic writes for the same secrets."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from aioquic import tls as aioquic_tls
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection

from trio_zttp._tls.keylog import (
    KeyLogLabel,
    KeyLogWriter,
    format_key_log_line,
    traffic_secret_label,
)
from trio_zttp._tls.suites import Epoch
from trio_zttp.testing import CertificateAuthority

RANDOM = bytes(range(32))
SECRET = bytes(range(0xA0, 0xD0))  # 48 bytes, as with SHA-384
# NSS key log format: "<label> <64 hex digits> <hex secret>", one per line
NSS_LINE = re.compile(r"^([A-Z_0-9]+) ([0-9a-fA-F]{64}) ([0-9a-fA-F]+)$")


def test_keylog_line_format() -> None:
    line = format_key_log_line(KeyLogLabel.CLIENT_HANDSHAKE_TRAFFIC_SECRET, RANDOM, SECRET)
    match = NSS_LINE.match(line)
    assert match is not None
    assert match.group(1) == "CLIENT_HANDSHAKE_TRAFFIC_SECRET"
    assert bytes.fromhex(match.group(2)) == RANDOM
    assert bytes.fromhex(match.group(3)) == SECRET
    assert line == line.lower().replace(
        "client_handshake_traffic_secret", "CLIENT_HANDSHAKE_TRAFFIC_SECRET"
    )
    assert "\n" not in line


def test_keylog_labels_are_the_nss_names() -> None:
    assert {label.value for label in KeyLogLabel} == {
        "CLIENT_EARLY_TRAFFIC_SECRET",
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
        "EARLY_EXPORTER_SECRET",
        "EXPORTER_SECRET",
    }
    line = format_key_log_line(KeyLogLabel.EXPORTER_SECRET, RANDOM, b"\x01")
    assert line == "EXPORTER_SECRET " + RANDOM.hex() + " 01"


def test_keylog_client_random_must_be_32_bytes() -> None:
    with pytest.raises(ValueError):
        format_key_log_line(KeyLogLabel.EXPORTER_SECRET, bytes(31), SECRET)


def test_keylog_traffic_labels_match_aioquic_table() -> None:
    from aioquic.quic.connection import SECRETS_LABELS

    # aioquic's table: row 0 for the client's secrets, row 1 for the server's, by epoch
    for epoch in Epoch:
        for row, client in ((0, True), (1, False)):
            theirs = SECRETS_LABELS[row][epoch.value]
            if theirs is None:
                with pytest.raises(ValueError):
                    traffic_secret_label(epoch, client=client)
            else:
                assert traffic_secret_label(epoch, client=client) == theirs


def test_keylog_writer_to_callable_gets_lines_without_newline() -> None:
    lines: list[str] = []
    writer = KeyLogWriter(lines.append)
    writer.log(KeyLogLabel.SERVER_TRAFFIC_SECRET_0, RANDOM, SECRET)
    writer.log_traffic_secret(Epoch.HANDSHAKE, client=True, client_random=RANDOM, secret=b"\xff")
    assert lines == [
        f"SERVER_TRAFFIC_SECRET_0 {RANDOM.hex()} {SECRET.hex()}",
        f"CLIENT_HANDSHAKE_TRAFFIC_SECRET {RANDOM.hex()} ff",
    ]


class RecordingFile:
    def __init__(self) -> None:
        self.events: list[str] = []

    def write(self, s: str) -> int:
        self.events.append("write:" + s)
        return len(s)

    def flush(self) -> None:
        self.events.append("flush")


def test_keylog_writer_to_file_flushes_every_line() -> None:
    sink = RecordingFile()
    writer = KeyLogWriter(sink)
    writer.log(KeyLogLabel.CLIENT_TRAFFIC_SECRET_0, RANDOM, b"\x01")
    writer.log(KeyLogLabel.SERVER_TRAFFIC_SECRET_0, RANDOM, b"\x02")
    assert sink.events == [
        f"write:CLIENT_TRAFFIC_SECRET_0 {RANDOM.hex()} 01\n",
        "flush",
        f"write:SERVER_TRAFFIC_SECRET_0 {RANDOM.hex()} 02\n",
        "flush",
    ]


def test_keylog_writer_to_real_text_file(tmp_path: Any) -> None:
    path = tmp_path / "keys.log"
    with open(path, "w") as f:
        KeyLogWriter(f).log(KeyLogLabel.EXPORTER_SECRET, RANDOM, SECRET)
        # flushed already, before the file is closed
        assert path.read_text() == f"EXPORTER_SECRET {RANDOM.hex()} {SECRET.hex()}\n"


def test_keylog_writer_without_flush() -> None:
    class WriteOnly:
        def __init__(self) -> None:
            self.data = ""

        def write(self, s: str) -> None:
            self.data += s

    sink = WriteOnly()
    KeyLogWriter(sink).log(KeyLogLabel.EXPORTER_SECRET, RANDOM, b"\x00")
    assert sink.data == f"EXPORTER_SECRET {RANDOM.hex()} 00\n"


def test_keylog_writer_rejects_other_sinks() -> None:
    with pytest.raises(TypeError):
        KeyLogWriter(42)  # type: ignore[arg-type]


# ------------------------------------------------------------------ against aioquic


class RecordingConnection(QuicConnection):
    """aioquic connection that also records each traffic secret it installs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.recorded: list[tuple[Any, Any, bytes]] = []
        super().__init__(*args, **kwargs)

    def _update_traffic_key(self, direction: Any, epoch: Any, suite: Any, secret: bytes) -> None:
        self.recorded.append((direction, epoch, secret))
        super()._update_traffic_key(direction, epoch, suite, secret)


def aioquic_pair(
    ca: CertificateAuthority, tickets: dict[bytes, Any], session_ticket: Any = None
) -> tuple[RecordingConnection, RecordingConnection, list[Any]]:
    issued = ca.issue(["localhost"])
    client_config = QuicConfiguration(
        is_client=True,
        alpn_protocols=["hq-interop"],
        server_name="localhost",
        secrets_log_file=io.StringIO(),
    )
    client_config.load_verify_locations(cadata=ca.pem)
    client_config.session_ticket = session_ticket
    server_config = QuicConfiguration(
        is_client=False, alpn_protocols=["hq-interop"], secrets_log_file=io.StringIO()
    )
    server_config.certificate = issued.certificate
    server_config.private_key = issued.private_key
    received: list[Any] = []
    client = RecordingConnection(
        configuration=client_config, session_ticket_handler=received.append
    )
    now = 0.0
    client.connect(("192.0.2.1", 443), now=now)
    if session_ticket is not None:
        client.send_stream_data(0, b"early data", end_stream=True)
    server = RecordingConnection(
        configuration=server_config,
        original_destination_connection_id=client.original_destination_connection_id,
        session_ticket_fetcher=tickets.pop,
        session_ticket_handler=lambda ticket: tickets.__setitem__(ticket.ticket, ticket),
    )
    for _ in range(10):
        for data, _addr in client.datagrams_to_send(now):
            server.receive_datagram(data, ("192.0.2.2", 4433), now)
        for data, _addr in server.datagrams_to_send(now):
            client.receive_datagram(data, ("192.0.2.1", 443), now)
        now += 0.01
    return client, server, received


def secrets_log(connection: RecordingConnection) -> str:
    log = connection._configuration.secrets_log_file
    assert isinstance(log, io.StringIO)
    return log.getvalue()


def our_log(connection: RecordingConnection, is_client: bool) -> str:
    out = io.StringIO()
    writer = KeyLogWriter(out)
    for direction, epoch, secret in connection.recorded:
        writer.log_traffic_secret(
            Epoch(epoch.value),
            client=is_client == (direction == aioquic_tls.Direction.ENCRYPT),
            client_random=connection.tls.client_random,
            secret=secret,
        )
    return out.getvalue()


def test_keylog_matches_aioquic_secrets_log_file() -> None:
    ca = CertificateAuthority.create()
    tickets: dict[bytes, Any] = {}
    client, server, received = aioquic_pair(ca, tickets)
    assert received, "the aioquic server sent no session ticket"
    resumed_client, resumed_server, _ = aioquic_pair(ca, tickets, session_ticket=received[0])
    assert resumed_client.tls.session_resumed

    for connection, is_client in [
        (client, True),
        (server, False),
        (resumed_client, True),
        (resumed_server, False),
    ]:
        theirs = secrets_log(connection)
        assert theirs, "aioquic logged nothing"
        assert our_log(connection, is_client) == theirs
        for line in theirs.splitlines():
            assert NSS_LINE.match(line), line
    logged = secrets_log(resumed_client)
    assert logged.startswith("CLIENT_EARLY_TRAFFIC_SECRET ")
