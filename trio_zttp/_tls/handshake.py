"""The TLS 1.3 handshake for QUIC: state table, message buffering and the QUIC-facing API.

QUIC feeds :meth:`Handshake.receive` with the CRYPTO bytes of each encryption level, in order,
cut anywhere; the handshake buffers partial messages (up to ``max_message_size``), looks each
whole message up in the state table and runs its handler.  What QUIC must do in response comes
out of :meth:`Handshake.take_updates`, in order: bytes to send at a level, traffic secrets to
install, completion, tickets.

The state machine is the data below (h11's shape): ``CLIENT_TABLE`` / ``SERVER_TABLE`` map
each state to the handshake message types it accepts and their handlers; a message type not
listed for the current state is an ``unexpected_message``.  ``NEXT_STATES`` lists where each
handler may lead, which :func:`state_diagram` draws and tests check.

Every failure caused by the peer is an :class:`AlertError`; after one, the handshake stays
failed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final, final

from cryptography import x509

from .alerts import AlertDescription, AlertError
from .client import ClientFlow
from .common import (
    RECEIVE_EPOCH,
    HandshakeComplete,
    InstallKey,
    SendCryptoData,
    SessionTicketReceived,
    State,
    Update,
)
from .config import TlsConfiguration
from .messages import ClientHello, HandshakeType
from .server import ServerFlow
from .suites import CipherSuite, Epoch

__all__ = [
    "CLIENT_TABLE",
    "NEXT_STATES",
    "SERVER_TABLE",
    "Handshake",
    "HandshakeComplete",
    "InstallKey",
    "SendCryptoData",
    "SessionTicketReceived",
    "State",
    "Update",
    "state_diagram",
]

_H = HandshakeType
_S = State

CLIENT_TABLE: Final[Mapping[State, Mapping[HandshakeType, Callable[[ClientFlow, bytes], None]]]] = {
    _S.CLIENT_WAIT_SERVER_HELLO: {_H.server_hello: ClientFlow.on_server_hello},
    _S.CLIENT_WAIT_ENCRYPTED_EXTENSIONS: {
        _H.encrypted_extensions: ClientFlow.on_encrypted_extensions
    },
    _S.CLIENT_WAIT_CERTIFICATE_OR_REQUEST: {
        _H.certificate: ClientFlow.on_certificate,
        _H.certificate_request: ClientFlow.on_certificate_request,
    },
    _S.CLIENT_WAIT_CERTIFICATE: {_H.certificate: ClientFlow.on_certificate},
    _S.CLIENT_WAIT_CERTIFICATE_VERIFY: {_H.certificate_verify: ClientFlow.on_certificate_verify},
    _S.CLIENT_WAIT_FINISHED: {_H.finished: ClientFlow.on_finished},
    _S.CLIENT_CONNECTED: {_H.new_session_ticket: ClientFlow.on_new_session_ticket},
}
"""Client: state -> {message type -> handler}."""

SERVER_TABLE: Final[Mapping[State, Mapping[HandshakeType, Callable[[ServerFlow, bytes], None]]]] = {
    _S.SERVER_WAIT_CLIENT_HELLO: {_H.client_hello: ServerFlow.on_client_hello},
    _S.SERVER_WAIT_SECOND_CLIENT_HELLO: {_H.client_hello: ServerFlow.on_client_hello},
    _S.SERVER_WAIT_CERTIFICATE: {_H.certificate: ServerFlow.on_certificate},
    _S.SERVER_WAIT_CERTIFICATE_VERIFY: {_H.certificate_verify: ServerFlow.on_certificate_verify},
    _S.SERVER_WAIT_FINISHED: {_H.finished: ServerFlow.on_finished},
    _S.SERVER_CONNECTED: {},
}
"""Server: state -> {message type -> handler}; nothing is accepted once connected."""

NEXT_STATES: Final[Mapping[tuple[State, HandshakeType], frozenset[State]]] = {
    (_S.CLIENT_WAIT_SERVER_HELLO, _H.server_hello): frozenset(
        {_S.CLIENT_WAIT_SERVER_HELLO, _S.CLIENT_WAIT_ENCRYPTED_EXTENSIONS}
    ),
    (_S.CLIENT_WAIT_ENCRYPTED_EXTENSIONS, _H.encrypted_extensions): frozenset(
        {_S.CLIENT_WAIT_CERTIFICATE_OR_REQUEST, _S.CLIENT_WAIT_FINISHED}
    ),
    (_S.CLIENT_WAIT_CERTIFICATE_OR_REQUEST, _H.certificate): frozenset(
        {_S.CLIENT_WAIT_CERTIFICATE_VERIFY}
    ),
    (_S.CLIENT_WAIT_CERTIFICATE_OR_REQUEST, _H.certificate_request): frozenset(
        {_S.CLIENT_WAIT_CERTIFICATE}
    ),
    (_S.CLIENT_WAIT_CERTIFICATE, _H.certificate): frozenset({_S.CLIENT_WAIT_CERTIFICATE_VERIFY}),
    (_S.CLIENT_WAIT_CERTIFICATE_VERIFY, _H.certificate_verify): frozenset(
        {_S.CLIENT_WAIT_FINISHED}
    ),
    (_S.CLIENT_WAIT_FINISHED, _H.finished): frozenset({_S.CLIENT_CONNECTED}),
    (_S.CLIENT_CONNECTED, _H.new_session_ticket): frozenset({_S.CLIENT_CONNECTED}),
    (_S.SERVER_WAIT_CLIENT_HELLO, _H.client_hello): frozenset(
        {_S.SERVER_WAIT_SECOND_CLIENT_HELLO, _S.SERVER_WAIT_CERTIFICATE, _S.SERVER_WAIT_FINISHED}
    ),
    (_S.SERVER_WAIT_SECOND_CLIENT_HELLO, _H.client_hello): frozenset(
        {_S.SERVER_WAIT_CERTIFICATE, _S.SERVER_WAIT_FINISHED}
    ),
    (_S.SERVER_WAIT_CERTIFICATE, _H.certificate): frozenset(
        {_S.SERVER_WAIT_CERTIFICATE_VERIFY, _S.SERVER_WAIT_FINISHED}
    ),
    (_S.SERVER_WAIT_CERTIFICATE_VERIFY, _H.certificate_verify): frozenset(
        {_S.SERVER_WAIT_FINISHED}
    ),
    (_S.SERVER_WAIT_FINISHED, _H.finished): frozenset({_S.SERVER_CONNECTED}),
}
"""Where each (state, message) may lead; the handler picks one."""


_NONE: Final[Mapping[int, Callable[..., None]]] = {}


def state_diagram() -> str:
    """The state machine as Graphviz ``dot`` source, drawn from the tables."""
    lines = ["digraph tls13 {", "  rankdir=LR;"]
    for (state, message), targets in NEXT_STATES.items():
        for target in sorted(targets, key=lambda s: s.value):
            lines.append(f'  {state.name} -> {target.name} [label="{message.name}"];')
    lines.append("}")
    return "\n".join(lines)


@final
class Handshake:
    """One endpoint's TLS 1.3 handshake, driven by a QUIC connection (RFC 9001 §4)."""

    __slots__ = ("_flow", "_buffer", "_buffer_epoch", "_error")

    def __init__(self, config: TlsConfiguration, *, transport_parameters: bytes) -> None:
        """Create the handshake.

        Args:
            config: this endpoint's TLS configuration.
            transport_parameters: our encoded QUIC transport parameters (RFC 9000 §18), sent
                in the ``quic_transport_parameters`` extension.
        """
        self._flow: ClientFlow | ServerFlow = (
            ClientFlow(config, transport_parameters)
            if config.is_client
            else ServerFlow(config, transport_parameters)
        )
        self._buffer = bytearray()
        self._buffer_epoch: Epoch | None = None
        self._error: AlertError | None = None

    # --- commands ------------------------------------------------------------------------

    def start(self) -> None:
        """Client: queue the ClientHello (and the 0-RTT write key when sending early data)."""
        if not isinstance(self._flow, ClientFlow):
            raise RuntimeError("only a client starts the handshake")
        self._flow.start()

    def receive(self, epoch: Epoch, data: bytes) -> None:
        """Feed CRYPTO data received at ``epoch``: in order, split anywhere.

        Raises:
            AlertError: the handshake failed; ``description`` is the alert for the peer
                (QUIC sends CRYPTO_ERROR 0x100 + description, RFC 9001 §4.8).
        """
        if self._error is not None:
            raise AlertError(self._error.description, "the handshake already failed")
        try:
            self._receive(epoch, data)
        except AlertError as error:
            self._fail(error)
            raise
        except Exception as error:  # a bug must not escape as anything but an alert
            alert = AlertError(AlertDescription.internal_error, repr(error))
            self._fail(alert)
            raise alert from error

    def take_updates(self) -> list[Update]:
        """Everything QUIC must do since the last call, in order."""
        updates = self._flow.updates
        self._flow.updates = []
        return updates

    def use_parsed_client_hello(self, message: bytes, hello: ClientHello) -> None:
        """Server: the caller already parsed ``message``, the ClientHello still to come.

        ``hello`` must be ``parse_client_hello(message[4:])`` (QUIC reads the client's
        transport parameters before TLS starts).  When exactly ``message`` arrives it is not
        parsed again; anything else is parsed as usual.
        """
        flow = self._flow
        if not isinstance(flow, ServerFlow):
            raise RuntimeError("only a server receives a ClientHello")
        flow.parsed_client_hello = (message, hello)

    def send_session_ticket(self) -> None:
        """Server, after completion: queue a NewSessionTicket at the 1-RTT level."""
        flow = self._flow
        if not isinstance(flow, ServerFlow) or flow.state is not State.SERVER_CONNECTED:
            raise RuntimeError("only a connected server sends session tickets")
        flow.send_session_ticket()

    # --- the engine ----------------------------------------------------------------------

    def _fail(self, error: AlertError) -> None:
        # a copy without the traceback: its frames hold this object (no cycle through them)
        self._error = AlertError(error.description, error.reason)
        self._flow.state = State.FAILED
        self._buffer.clear()

    def _receive(self, epoch: Epoch, data: bytes) -> None:
        if not data:
            return
        flow = self._flow
        if RECEIVE_EPOCH.get(flow.state) != epoch:
            raise AlertError(
                AlertDescription.unexpected_message,
                f"handshake data at {epoch.name} in state {flow.state.name}",
            )
        buffer = self._buffer
        buffer += data
        limit = flow.config.max_message_size
        # HandshakeType is an IntEnum: the tables answer to the wire's int directly
        table: Mapping[State, Mapping[int, Callable[..., None]]] = (
            CLIENT_TABLE if flow.config.is_client else SERVER_TABLE)  # type: ignore[assignment]
        while len(buffer) >= 4:
            msg_type = buffer[0]
            length = int.from_bytes(buffer[1:4], "big")
            state = flow.state
            if RECEIVE_EPOCH.get(state) != epoch:
                # the previous message changed keys: the rest belongs to a new level
                raise AlertError(
                    AlertDescription.unexpected_message,
                    "handshake data continues across a key change",
                )
            handler = table.get(state, _NONE).get(msg_type)
            if handler is None:
                raise AlertError(
                    AlertDescription.unexpected_message,
                    f"handshake message type {msg_type} in state {state.name}",
                )
            if length > limit:
                raise AlertError(
                    AlertDescription.unexpected_message,
                    f"handshake message of {length} bytes is over the {limit}-byte limit",
                )
            if len(buffer) < 4 + length:
                return
            message = bytes(buffer[: 4 + length])
            del buffer[: 4 + length]
            handler(flow, message)
            assert flow.state in NEXT_STATES[state, msg_type], flow.state  # type: ignore[index]
        if buffer and RECEIVE_EPOCH.get(flow.state) != epoch:
            raise AlertError(
                AlertDescription.unexpected_message,
                "handshake data continues across a key change",
            )

    # --- what was negotiated --------------------------------------------------------------

    @property
    def state(self) -> State:
        """The current state."""
        return self._flow.state

    @property
    def is_complete(self) -> bool:
        """The handshake finished (our side has sent and received Finished)."""
        return self._flow.state in (State.CLIENT_CONNECTED, State.SERVER_CONNECTED)

    @property
    def is_client(self) -> bool:
        return isinstance(self._flow, ClientFlow)

    @property
    def peer_transport_parameters(self) -> bytes | None:
        """The peer's ``quic_transport_parameters`` body, once received."""
        return self._flow.peer_transport_parameters

    @property
    def alpn_protocol(self) -> str | None:
        """The negotiated application protocol."""
        return self._flow.alpn_protocol

    @property
    def cipher_suite(self) -> CipherSuite | None:
        """The negotiated cipher suite."""
        return self._flow.suite

    @property
    def key_exchange_group(self) -> int | None:
        """The negotiated key-exchange group (a ``NamedGroup`` value)."""
        return self._flow.group

    @property
    def peer_certificate_chain(self) -> tuple[x509.Certificate, ...]:
        """The peer's certificates, leaf first (empty when it sent none or we resumed)."""
        return self._flow.peer_certificate_chain

    @property
    def session_resumed(self) -> bool:
        """A ticket's PSK authenticated this handshake."""
        return self._flow.session_resumed

    @property
    def early_data_accepted(self) -> bool:
        """The server accepted 0-RTT data."""
        return self._flow.early_data_accepted

    @property
    def client_random(self) -> bytes:
        """ClientHello.random (the key log's connection identifier)."""
        return self._flow.client_random
