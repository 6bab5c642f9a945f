"""TLS 1.3 secrets in the NSS key log format (``SSLKEYLOGFILE``), for Wireshark and friends.

Each line is ``<label> <client_random hex> <secret hex>``, for example::

    CLIENT_HANDSHAKE_TRAFFIC_SECRET 5f2c...0e a1b2...ff

(NSS key log format; the labels for TLS 1.3 are the ones in :class:`KeyLogLabel`.)
QUIC's Initial secrets derive from the connection ID and are never logged.

The sans-IO core does no I/O of its own: :class:`KeyLogWriter` hands each line to a callable
or to a text file object the user opened (flushing each line, so a crash loses nothing).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Protocol, final

from .suites import Epoch

__all__ = [
    "KeyLogLabel",
    "KeyLogWriter",
    "SupportsWriteText",
    "format_key_log_line",
    "traffic_secret_label",
]


class KeyLogLabel(enum.StrEnum):
    """NSS key log labels for TLS 1.3 secrets."""

    CLIENT_EARLY_TRAFFIC_SECRET = "CLIENT_EARLY_TRAFFIC_SECRET"
    CLIENT_HANDSHAKE_TRAFFIC_SECRET = "CLIENT_HANDSHAKE_TRAFFIC_SECRET"
    SERVER_HANDSHAKE_TRAFFIC_SECRET = "SERVER_HANDSHAKE_TRAFFIC_SECRET"
    CLIENT_TRAFFIC_SECRET_0 = "CLIENT_TRAFFIC_SECRET_0"
    SERVER_TRAFFIC_SECRET_0 = "SERVER_TRAFFIC_SECRET_0"
    EARLY_EXPORTER_SECRET = "EARLY_EXPORTER_SECRET"
    EXPORTER_SECRET = "EXPORTER_SECRET"


_L = KeyLogLabel
_TRAFFIC_LABELS: dict[tuple[Epoch, bool], KeyLogLabel] = {
    (Epoch.ZERO_RTT, True): _L.CLIENT_EARLY_TRAFFIC_SECRET,
    (Epoch.HANDSHAKE, True): _L.CLIENT_HANDSHAKE_TRAFFIC_SECRET,
    (Epoch.HANDSHAKE, False): _L.SERVER_HANDSHAKE_TRAFFIC_SECRET,
    (Epoch.ONE_RTT, True): _L.CLIENT_TRAFFIC_SECRET_0,
    (Epoch.ONE_RTT, False): _L.SERVER_TRAFFIC_SECRET_0,
}


def traffic_secret_label(epoch: Epoch, *, client: bool) -> KeyLogLabel:
    """The label for the traffic secret one side writes with at ``epoch``.

    Args:
        epoch: ZERO_RTT (client only), HANDSHAKE or ONE_RTT.
        client: whose secret it is (the client's write secret is the server's read secret).

    Raises:
        ValueError: INITIAL, or ZERO_RTT for the server: no such TLS secret.
    """
    try:
        return _TRAFFIC_LABELS[epoch, client]
    except KeyError:
        side = "client" if client else "server"
        raise ValueError(f"no TLS traffic secret for the {side} at {epoch.name}") from None


def format_key_log_line(label: str, client_random: bytes, secret: bytes) -> str:
    """One key log line, without its trailing newline.

    Args:
        label: a :class:`KeyLogLabel`.
        client_random: the 32-byte ``random`` of the ClientHello (the line's key).
        secret: the secret, logged in lowercase hex.

    Raises:
        ValueError: ``client_random`` is not 32 bytes.
    """
    if len(client_random) != 32:
        raise ValueError("client_random is 32 bytes")
    return f"{label} {client_random.hex()} {secret.hex()}"


class SupportsWriteText(Protocol):
    """A text file-like object: anything with ``write(str)`` (``flush()`` is used if present)."""

    def write(self, s: str, /) -> object: ...


@final
class KeyLogWriter:
    """Sends key log lines to a callable or a user-opened text file.

    A callable receives each line without its newline (e.g. ``lines.append`` or a logger
    method); an object with ``write`` receives each line plus ``"\\n"`` and is flushed after
    every line when it has ``flush``.  The writer never opens or closes files itself.
    """

    __slots__ = ("_emit",)

    def __init__(self, sink: SupportsWriteText | Callable[[str], object]) -> None:
        """Args:
        sink: a text file-like object or a ``(line: str) -> None`` callable.

        Raises:
            TypeError: ``sink`` is neither.
        """
        write = getattr(sink, "write", None)
        if callable(write):
            flush = getattr(sink, "flush", None)

            def emit(line: str) -> None:
                write(line + "\n")
                if callable(flush):
                    flush()

            self._emit: Callable[[str], object] = emit
        elif callable(sink):
            self._emit = sink
        else:
            raise TypeError("a key log sink is a text file-like object or a callable")

    def log(self, label: str, client_random: bytes, secret: bytes) -> None:
        """Write one secret."""
        self._emit(format_key_log_line(label, client_random, secret))

    def log_traffic_secret(
        self, epoch: Epoch, *, client: bool, client_random: bytes, secret: bytes
    ) -> None:
        """Write one side's traffic secret for ``epoch`` (see :func:`traffic_secret_label`)."""
        self.log(traffic_secret_label(epoch, client=client), client_random, secret)
