"""The receive task's inline step (``_driver.run_inline``) never raises into the endpoint's
receive task: an engine failure anywhere in it ends that connection through ``_fail``, as
the driver's own step does (``_drive``)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from trio_zttp._trio import _driver


def _connection(step_sync: object, get_timer: object) -> SimpleNamespace:
    events: list[str] = []
    conn = SimpleNamespace(
        _touched=True, _parked=object(), _sending=False, _driver_started=True,
        _closed_info=None, _unsent=[], _failure=None, _fallback_at=math.inf,
        _engine=SimpleNamespace(get_timer=get_timer), events=events,
    )
    conn._step_sync = step_sync
    conn._wake = lambda: events.append("wake")
    conn._fail = lambda exc: events.append(f"fail: {exc}")
    conn._move_wait_deadline = lambda deadline: events.append(f"deadline {deadline}")
    conn._deadline_after = lambda handled: _driver.deadline_after(conn, handled)
    return conn


def _broken_timer() -> float:
    raise RuntimeError("engine bug in get_timer")


def _broken_step() -> float:
    raise RuntimeError("engine bug in receive_datagram")


@pytest.mark.parametrize(
    ("step_sync", "get_timer", "reason"),
    [
        (lambda: 1.0, _broken_timer, "engine bug in get_timer"),  # a timer handled, then
        (_broken_step, lambda: 5.0, "engine bug in receive_datagram"),
    ],
)
def test_run_inline_an_engine_failure_ends_the_connection_not_the_receive_task(
    step_sync: object, get_timer: object, reason: str
) -> None:
    conn = _connection(step_sync, get_timer)
    _driver.run_inline(conn)  # type: ignore[arg-type]
    assert conn.events == [f"fail: {reason}"]
    assert not conn._touched


def test_run_inline_a_handled_timer_moves_the_drivers_deadline() -> None:
    conn = _connection(lambda: 1.0, lambda: 5.0)
    _driver.run_inline(conn)  # type: ignore[arg-type]
    assert conn.events == ["deadline 5.0"]
