"""Stream state machines (RFC 9000 §3), as tables; used by :mod:`._streams`.

Each half of a stream is a state machine written as a table (STYLE.md): an Enum of states,
an Enum of events and a module-level ``{state: {event: next_state}}`` dict.
:func:`send_transition` and :func:`recv_transition` apply one move; a move missing from the
table raises :class:`~trio_zttp.quic._errors.StreamStateError`. Every move a *peer* can cause
(STREAM, RESET_STREAM arriving) exists in every receive state, so remote input never hits a
missing move; missing moves are local misuse.

Send side (RFC 9000 §3.1)::

    READY --data--> SEND --fin--> DATA_SENT --all acked--> DATA_RECVD
      |               |              |
      +---reset-------+----reset-----+--> RESET_SENT --reset acked--> RESET_RECVD

Receive side (RFC 9000 §3.2)::

    RECV --fin--> SIZE_KNOWN --all received--> DATA_RECVD --app read all--> DATA_READ
      |               |
      +----reset------+--> RESET_RECVD --app read reset--> RESET_READ

A RESET_STREAM arriving once all data is received (DATA_RECVD) is ignored apart from the
final-size check: the data is already here and the application can read it (RFC 9000 §3.2
leaves the choice to the implementation).
"""

from __future__ import annotations

import enum
from typing import Final

from ._errors import StreamStateError

__all__ = [
    "RECV_TRANSITIONS",
    "SEND_TRANSITIONS",
    "RecvEvent",
    "RecvState",
    "SendEvent",
    "SendState",
    "recv_transition",
    "send_transition",
]


class SendState(enum.Enum):
    """Sending part of a stream (RFC 9000 §3.1)."""

    # members hash by identity (C speed): the transition tables are dicts keyed by them
    __hash__ = object.__hash__

    READY = "Ready"
    SEND = "Send"
    DATA_SENT = "Data Sent"
    DATA_RECVD = "Data Recvd"
    RESET_SENT = "Reset Sent"
    RESET_RECVD = "Reset Recvd"


class SendEvent(enum.Enum):
    SEND_DATA = "send STREAM"
    SEND_FIN = "send STREAM+FIN"
    ALL_DATA_ACKED = "recv all ACKs"
    SEND_RESET = "send RESET_STREAM"
    RESET_ACKED = "recv ACK of RESET_STREAM"

    # members hash by identity (C speed): the transition tables are dicts keyed by them
    __hash__ = object.__hash__


_OPEN_MOVES: Final = {
    SendEvent.SEND_DATA: SendState.SEND,
    SendEvent.SEND_FIN: SendState.DATA_SENT,
    SendEvent.SEND_RESET: SendState.RESET_SENT,
}

SEND_TRANSITIONS: Final[dict[SendState, dict[SendEvent, SendState]]] = {
    SendState.READY: dict(_OPEN_MOVES),
    SendState.SEND: dict(_OPEN_MOVES),
    SendState.DATA_SENT: {
        SendEvent.SEND_DATA: SendState.DATA_SENT,
        SendEvent.SEND_FIN: SendState.DATA_SENT,
        SendEvent.ALL_DATA_ACKED: SendState.DATA_RECVD,
        SendEvent.SEND_RESET: SendState.RESET_SENT,
    },
    SendState.DATA_RECVD: {},
    SendState.RESET_SENT: {
        SendEvent.RESET_ACKED: SendState.RESET_RECVD,
    },
    SendState.RESET_RECVD: {},
}


class RecvState(enum.Enum):
    """Receiving part of a stream (RFC 9000 §3.2)."""

    # members hash by identity (C speed): the transition tables are dicts keyed by them
    __hash__ = object.__hash__

    RECV = "Recv"
    SIZE_KNOWN = "Size Known"
    DATA_RECVD = "Data Recvd"
    DATA_READ = "Data Read"
    RESET_RECVD = "Reset Recvd"
    RESET_READ = "Reset Read"


class RecvEvent(enum.Enum):
    RECV_DATA = "recv STREAM"
    RECV_FIN = "recv STREAM+FIN"
    ALL_DATA_RECEIVED = "recv all data"
    APP_READ_ALL = "app read all data"
    RECV_RESET = "recv RESET_STREAM"
    APP_READ_RESET = "app read reset"

    # members hash by identity (C speed): the transition tables are dicts keyed by them
    __hash__ = object.__hash__


_PEER_EVENTS: Final = (RecvEvent.RECV_DATA, RecvEvent.RECV_FIN, RecvEvent.RECV_RESET)

RECV_TRANSITIONS: Final[dict[RecvState, dict[RecvEvent, RecvState]]] = {
    RecvState.RECV: {
        RecvEvent.RECV_DATA: RecvState.RECV,
        RecvEvent.RECV_FIN: RecvState.SIZE_KNOWN,
        RecvEvent.RECV_RESET: RecvState.RESET_RECVD,
    },
    RecvState.SIZE_KNOWN: {
        RecvEvent.RECV_DATA: RecvState.SIZE_KNOWN,
        RecvEvent.RECV_FIN: RecvState.SIZE_KNOWN,
        RecvEvent.ALL_DATA_RECEIVED: RecvState.DATA_RECVD,
        RecvEvent.RECV_RESET: RecvState.RESET_RECVD,
    },
    RecvState.DATA_RECVD: {
        **{event: RecvState.DATA_RECVD for event in _PEER_EVENTS},
        RecvEvent.APP_READ_ALL: RecvState.DATA_READ,
    },
    RecvState.DATA_READ: {event: RecvState.DATA_READ for event in _PEER_EVENTS},
    RecvState.RESET_RECVD: {
        **{event: RecvState.RESET_RECVD for event in _PEER_EVENTS},
        RecvEvent.APP_READ_RESET: RecvState.RESET_READ,
    },
    RecvState.RESET_READ: {event: RecvState.RESET_READ for event in _PEER_EVENTS},
}


def send_transition(state: SendState, event: SendEvent) -> SendState:
    """The sending part's next state; raises StreamStateError for a move not in the table."""
    try:
        return SEND_TRANSITIONS[state][event]
    except KeyError:
        raise StreamStateError(f"cannot {event.value} in send state {state.value}") from None


def recv_transition(state: RecvState, event: RecvEvent) -> RecvState:
    """The receiving part's next state; raises StreamStateError for a move not in the table."""
    try:
        return RECV_TRANSITIONS[state][event]
    except KeyError:
        raise StreamStateError(f"cannot {event.value} in receive state {state.value}") from None
