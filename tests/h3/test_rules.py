"""Frame placement, message frame sequence and stream-type rules (RFC 9114 §4.1, §6, §7.2)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_zttp.h3._errors import (
    ErrorCode,
    FrameUnexpectedError,
    IdError,
    MissingSettingsError,
    StreamCreationError,
)
from trio_zttp.h3._frames import FrameType, StreamType, grease_frame_type
from trio_zttp.h3._rules import (
    MESSAGE_INPUT_FRAME,
    MESSAGE_TRANSITIONS,
    ControlState,
    MessageInput,
    MessageState,
    StreamKind,
    check_frame_allowed,
    check_goaway_id,
    check_max_push_id,
    check_message_frame,
    check_uni_stream_type,
    next_control_state,
    next_message_state,
)

C, R, P = StreamKind.CONTROL, StreamKind.REQUEST, StreamKind.PUSH

# RFC 9114 §7.2, "HTTP/3 Frames and Stream Type Overview", transcribed row by row, then the
# direction rules of §4.6 (push streams go server -> client), §7.2.5 (a server MUST treat
# PUSH_PROMISE as H3_FRAME_UNEXPECTED) and §7.2.7 (a client MUST treat MAX_PUSH_ID so).
RFC_TABLE = {
    "DATA": (False, True, True),
    "HEADERS": (False, True, True),
    "CANCEL_PUSH": (True, False, False),
    "SETTINGS": (True, False, False),
    "PUSH_PROMISE": (False, True, False),
    "GOAWAY": (True, False, False),
    "MAX_PUSH_ID": (True, False, False),
}


def rfc_allows(name: str, kind: StreamKind, receiver_is_client: bool) -> bool:
    on_control, on_request, on_push = RFC_TABLE[name]
    allowed = {C: on_control, R: on_request, P: on_push}[kind]
    if kind is P and not receiver_is_client:
        return False
    if name == "PUSH_PROMISE" and not receiver_is_client:
        return False
    if name == "MAX_PUSH_ID" and receiver_is_client:
        return False
    return allowed


@pytest.mark.parametrize(
    ("name", "kind", "is_client"),
    list(itertools.product(RFC_TABLE, [C, R, P], [True, False])),
)
def test_rules_placement_matches_rfc_table(name: str, kind: StreamKind, is_client: bool) -> None:
    frame_type = FrameType[name]
    if rfc_allows(name, kind, is_client):
        assert check_frame_allowed(frame_type, kind, is_client=is_client) is True
    else:
        with pytest.raises(FrameUnexpectedError) as info:
            check_frame_allowed(frame_type, kind, is_client=is_client)
        assert info.value.error_code == ErrorCode.H3_FRAME_UNEXPECTED
        assert info.value.frame_type == frame_type


@pytest.mark.parametrize("kind", [C, R, P])
def test_rules_unknown_frames_are_ignored_and_http2_types_rejected(kind: StreamKind) -> None:
    for frame_type in (grease_frame_type(0), grease_frame_type(99), 0x41, 0xF0700, 0xC):
        assert check_frame_allowed(frame_type, kind, is_client=True) is False
        assert check_frame_allowed(frame_type, kind, is_client=False) is False
    for frame_type in (0x2, 0x6, 0x8, 0x9):
        with pytest.raises(FrameUnexpectedError):
            check_frame_allowed(frame_type, kind, is_client=True)


@given(
    state=st.sampled_from(list(MessageState)),
    event=st.sampled_from(list(MessageInput)),
)
def test_rules_message_table_every_state_input_pair(
    state: MessageState, event: MessageInput
) -> None:
    moves = MESSAGE_TRANSITIONS[state]
    if event in moves:
        assert next_message_state(state, event) is moves[event]
        check_message_frame(state, MESSAGE_INPUT_FRAME[event])
    else:
        with pytest.raises(FrameUnexpectedError) as info:
            next_message_state(state, event)
        assert info.value.error_code == ErrorCode.H3_FRAME_UNEXPECTED
        assert info.value.frame_type == MESSAGE_INPUT_FRAME[event]
        frame_allowed = any(MESSAGE_INPUT_FRAME[e] == MESSAGE_INPUT_FRAME[event] for e in moves)
        if not frame_allowed:
            with pytest.raises(FrameUnexpectedError):
                check_message_frame(state, MESSAGE_INPUT_FRAME[event])


def test_rules_every_state_is_reachable_and_has_a_row() -> None:
    assert set(MESSAGE_TRANSITIONS) == set(MessageState)
    reached = {MessageState.HEADERS_EXPECTED}
    frontier = [MessageState.HEADERS_EXPECTED]
    while frontier:
        for target in MESSAGE_TRANSITIONS[frontier.pop()].values():
            if target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(MessageState)


def run(events: list[MessageInput]) -> MessageState:
    state = MessageState.HEADERS_EXPECTED
    for event in events:
        state = next_message_state(state, event)
    return state


H, IH, T, D, PP = (
    MessageInput.HEADERS,
    MessageInput.INTERIM_HEADERS,
    MessageInput.TUNNEL_HEADERS,
    MessageInput.DATA,
    MessageInput.PUSH_PROMISE,
)


@pytest.mark.parametrize(
    ("events", "final"),
    [
        ([H], MessageState.BODY),
        ([H, D, D, D], MessageState.BODY),
        ([H, D, H], MessageState.DONE),
        ([H, H], MessageState.DONE),  # empty content, then trailers
        ([IH, IH, H, D], MessageState.BODY),  # 1xx responses before the final one
        ([PP, H, PP, D, PP, H, PP], MessageState.DONE),  # §4.1: before, between, after
        ([T, D, D], MessageState.TUNNEL),
        ([IH, T, D], MessageState.TUNNEL),
    ],
)
def test_rules_message_valid_sequences(events: list[MessageInput], final: MessageState) -> None:
    assert run(events) is final


@pytest.mark.parametrize(
    "events",
    [
        [D],  # §4.1: DATA before any HEADERS
        [IH, D],  # an interim response has no content
        [H, D, H, D],  # DATA after the trailing HEADERS
        [H, H, H],  # HEADERS after the trailing HEADERS
        [T, H],  # §4.4: only DATA in a CONNECT tunnel
        [T, PP],
        [H, IH],  # an interim response after the final one
    ],
)
def test_rules_message_invalid_sequences(events: list[MessageInput]) -> None:
    with pytest.raises(FrameUnexpectedError):
        run(events)


def test_rules_check_message_frame_at_frame_header() -> None:
    check_message_frame(MessageState.HEADERS_EXPECTED, FrameType.HEADERS)
    check_message_frame(MessageState.TUNNEL, FrameType.DATA)
    check_message_frame(MessageState.TUNNEL, 0x21)  # unknown types always pass
    for state, frame_type in [
        (MessageState.HEADERS_EXPECTED, FrameType.DATA),
        (MessageState.TUNNEL, FrameType.HEADERS),
        (MessageState.DONE, FrameType.DATA),
        (MessageState.DONE, FrameType.HEADERS),
    ]:
        with pytest.raises(FrameUnexpectedError):
            check_message_frame(state, frame_type)


def test_rules_control_stream_settings_first_and_once() -> None:
    state = next_control_state(ControlState.AWAITING_SETTINGS, FrameType.SETTINGS)
    assert state is ControlState.READY
    assert next_control_state(state, FrameType.GOAWAY) is ControlState.READY
    assert next_control_state(state, 0x21) is ControlState.READY
    with pytest.raises(FrameUnexpectedError):
        next_control_state(state, FrameType.SETTINGS)
    # §6.2.1: "any other frame type" first, unknown and reserved ones included
    for frame_type in (FrameType.GOAWAY, FrameType.DATA, 0x21, 0x2, 0xF0700):
        with pytest.raises(MissingSettingsError) as info:
            next_control_state(ControlState.AWAITING_SETTINGS, frame_type)
        assert info.value.error_code == ErrorCode.H3_MISSING_SETTINGS == 0x10A


def test_rules_uni_stream_types() -> None:
    for is_client in (True, False):
        assert check_uni_stream_type(0, is_client=is_client) is StreamType.CONTROL
        assert check_uni_stream_type(2, is_client=is_client) is StreamType.QPACK_ENCODER
        assert check_uni_stream_type(3, is_client=is_client) is StreamType.QPACK_DECODER
        assert check_uni_stream_type(0x21, is_client=is_client) is None
        assert check_uni_stream_type(0x54, is_client=is_client) is None  # WebTransport
    assert check_uni_stream_type(1, is_client=True) is StreamType.PUSH
    with pytest.raises(StreamCreationError) as info:
        check_uni_stream_type(1, is_client=False)
    assert info.value.error_code == ErrorCode.H3_STREAM_CREATION_ERROR == 0x103


def test_rules_goaway_ids() -> None:
    assert check_goaway_id(8, is_client=True) == 8
    assert check_goaway_id(2**62 - 4, is_client=True, previous=2**62 - 4) == 2**62 - 4
    assert check_goaway_id(7, is_client=False) == 7  # a push ID: any value
    for bad in (1, 2, 3, 5):
        with pytest.raises(IdError) as info:
            check_goaway_id(bad, is_client=True)
        assert info.value.error_code == ErrorCode.H3_ID_ERROR
    with pytest.raises(IdError):
        check_goaway_id(12, is_client=True, previous=8)
    with pytest.raises(IdError):
        check_goaway_id(10, is_client=False, previous=9)


def test_rules_max_push_id_cannot_shrink() -> None:
    assert check_max_push_id(8) == 8
    assert check_max_push_id(8, previous=8) == 8
    assert check_max_push_id(9, previous=8) == 9
    with pytest.raises(IdError):
        check_max_push_id(7, previous=8)
