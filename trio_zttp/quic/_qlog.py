"""qlog tracing (draft-ietf-quic-qlog-main-schema / -quic-events, JSON-SEQ, readable by qvis).

A :class:`QlogTracer` is given to ``Configuration(qlog=...)``; the connection calls it only
when one is set, so tracing costs nothing otherwise.  Output is JSON Text Sequences (RFC 7464):
each record is ``0x1E`` + JSON + ``\\n``, written to a sink the user owns (a text file or a
callable), one trace per connection.  The core never opens files itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import IO, Any, final

__all__ = ["QlogTracer"]

_RS = "\x1e"


@final
class QlogTracer:
    """Writes one connection's qlog trace as JSON-SEQ.

    Args:
        sink: a text stream with ``write`` or a callable taking each record as a string.
        title: the trace title.
    """

    __slots__ = ("_write", "_title", "_start", "_started")

    def __init__(self, sink: IO[str] | Callable[[str], object], *, title: str = "trio_zttp"):
        if callable(sink):
            self._write: Callable[[str], object] = sink
        else:
            self._write = sink.write
        self._title = title
        self._start = 0.0
        self._started = False

    @property
    def started(self) -> bool:
        return self._started

    def start(self, *, now: float, odcid: bytes, vantage_point: str) -> None:
        """Write the header record; times of later events are relative to ``now``."""
        self._start = now
        self._started = True
        header = {
            "qlog_version": "0.3",
            "qlog_format": "JSON-SEQ",
            "title": self._title,
            "trace": {
                "vantage_point": {"type": vantage_point, "name": "trio_zttp"},
                "common_fields": {
                    "ODCID": odcid.hex(),
                    "time_format": "relative",
                    "reference_time": 0,
                    "protocol_type": ["QUIC"],
                },
            },
        }
        self._write(_RS + json.dumps(header, separators=(",", ":")) + "\n")

    def event(self, now: float, name: str, data: dict[str, Any]) -> None:
        """Write one event (``name`` like ``"transport:packet_sent"``); time in milliseconds."""
        if not self._started:
            return
        record = {"time": round((now - self._start) * 1000.0, 3), "name": name, "data": data}
        self._write(_RS + json.dumps(record, separators=(",", ":")) + "\n")
