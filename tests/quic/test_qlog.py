"""qlog JSON-SEQ output (RFC 7464 framing, qlog 0.3 header)."""

from __future__ import annotations

import io
import json

from trio_zttp.quic._qlog import QlogTracer


def test_qlog_json_seq_records() -> None:
    out = io.StringIO()
    tracer = QlogTracer(out, title="t")
    tracer.event(0.0, "transport:packet_sent", {"x": 1})  # before start: ignored
    tracer.start(now=10.0, odcid=b"\x01\x02", vantage_point="client")
    tracer.event(10.25, "transport:packet_sent", {"header": {"packet_number": 0}})
    records = out.getvalue().split("\x1e")
    assert records[0] == ""
    header, event = (json.loads(r) for r in records[1:])
    assert header["qlog_format"] == "JSON-SEQ"
    assert header["trace"]["common_fields"]["ODCID"] == "0102"
    assert header["trace"]["vantage_point"]["type"] == "client"
    assert event == {"time": 250.0, "name": "transport:packet_sent",
                     "data": {"header": {"packet_number": 0}}}


def test_qlog_callable_sink() -> None:
    lines: list[str] = []
    tracer = QlogTracer(lines.append)
    tracer.start(now=0.0, odcid=b"", vantage_point="server")
    assert len(lines) == 1 and lines[0].startswith("\x1e") and lines[0].endswith("\n")
