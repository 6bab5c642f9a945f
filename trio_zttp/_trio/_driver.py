"""The driver's step: what a connection does with the datagrams its endpoint routed to it,
its timer and its engine's events, then the flush (see ``connection.py``'s docstring,
"Flushing" and "Driving").  Methods of :class:`~trio_zttp.QuicConnection`, kept apart for
size: the driver task runs :func:`run`; the endpoint's receive task runs :func:`run_inline`
for a connection whose driver waits for work."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final

import trio

if TYPE_CHECKING:
    from .connection import QuicConnection

__all__ = ["FLUSH_DEFERRAL", "TIMER_GRANULARITY", "deadline_after", "run", "run_inline",
           "send_unsent", "step", "step_sync"]

TIMER_GRANULARITY: Final = 0.001
"""Shortest wait after a timer the engine did not clear (kGranularity, RFC 9002 §6.1.2)."""
FLUSH_DEFERRAL: Final = 0.001
"""Longest the driver leaves its flush (an ACK, say) to the tasks its batch woke."""
_NOT_HANDLED: Final = -math.inf


def run_inline(self: QuicConnection) -> None:
    """The endpoint's receive task, after routing a batch: if the driver still waits for
    work, handle the queued datagrams here (one task step fewer); otherwise wake it."""
    self._touched = False
    if self._parked is None:
        return  # the driver is awake and drains the queue itself
    if self._sending or not self._driver_started or self._closed_info is not None:
        self._wake()
        return
    try:
        handled = self._step_sync()
        if handled is None or self._unsent or self._failure is not None:
            self._wake()
            return
        if handled != _NOT_HANDLED:  # as the driver does after a step
            self._handled_at = handled
            deadline = self._deadline_after(handled)  # (asks the engine: inside the try)
            if deadline is None:
                self._wake()
            else:
                self._move_wait_deadline(deadline)
    except Exception as exc:  # an engine bug: the driver ends the connection, and nothing
        self._fail(exc)  # raises into the endpoint's receive task


async def run(self: QuicConnection) -> None:
    # the endpoint flushed the first flight when it made the connection: the driver
    # sends only what was left over (a full socket) or queued since
    if self._flush_pending:
        self._flush_now()
    if self._unsent:
        await self._send_unsent()
    if self._failure is not None:
        return
    self._handled_at = -math.inf
    while True:
        deadline = self._deadline_after(self._handled_at)
        if deadline is None:
            return
        # one scope until its deadline passes: a timer handled on a datagram's wake-up
        # moves the deadline, which is cheaper than a fresh scope
        with trio.CancelScope(deadline=deadline) as scope:
            self._wait_scope = scope
            self._wait_deadline = deadline
            while True:
                await self._wait_for_work()
                handled = await self._step()
                if handled is None:
                    return
                if handled != _NOT_HANDLED:
                    self._handled_at = handled
                    deadline = self._deadline_after(self._handled_at)
                    if deadline is None:
                        return
                    self._move_wait_deadline(deadline)
        self._wait_scope = None
        if scope.cancelled_caught:  # the deadline passed: the timer may be due
            handled = await self._step()
            if handled is None:
                return
            if handled != _NOT_HANDLED:
                self._handled_at = handled


def deadline_after(self: QuicConnection, handled_at: float) -> float | None:
    """When the driver wakes up next (no datagram coming): the engine's timer, or the
    deferred flush's deadline if sooner; None once a closed engine has no timer left."""
    timer = self._engine.get_timer()
    if timer is None:
        if self._closed_info is not None:
            return None
        deadline = math.inf
    elif timer <= handled_at:
        # The engine's timer did not move past the last handle_timer (float rounding
        # in a loss-detection deadline, say): wait one timer granularity instead of
        # spinning, which under a MockClock would never let time advance.
        deadline = handled_at + TIMER_GRANULARITY
    else:
        deadline = timer
    if self._fallback_at < deadline:
        deadline = self._fallback_at  # a deferred flush still waits for its tasks
    return deadline


async def step(self: QuicConnection) -> float | None:
    """One wake-up: the queued datagrams, the timer if due, events, then the flush.

    Returns the time the engine's timer was handled (``_NOT_HANDLED`` if it was not), None
    once the connection is finished.
    """
    handled_at = self._step_sync()
    if handled_at is None:
        return None
    if self._unsent:
        await self._send_unsent()
    if self._failure is not None:
        return None
    return handled_at


def step_sync(self: QuicConnection) -> float | None:
    """:meth:`_step` up to what the socket could not take (left in ``_unsent``)."""
    engine = self._engine
    ecn_engine = self._ecn_engine
    queue = self._incoming
    now = self._current_time()
    received = len(queue)
    self._woke = False
    while queue:
        data, addr, ecn = queue.popleft()
        if ecn and ecn_engine is not None:
            ecn_engine.receive_datagram(data, addr, now, ecn=ecn)
        else:
            engine.receive_datagram(data, addr, now)
    handled_at = _NOT_HANDLED
    if received:
        self._datagrams_received += received
        self._flush_pending = True
    # The engine's timer can only be due once the driver's deadline passed: that deadline is
    # never later than the timer as of the last step or flush, and receiving a batch makes
    # nothing due at once (what it makes urgent, an immediate ACK, a close on error, goes
    # out with the flush below).  A step well inside the deadline skips get_timer.
    timer = engine.get_timer() if now >= self._wait_deadline else None
    if timer is not None and now >= timer:
        engine.handle_timer(now)
        handled_at = now
        self._flush_pending = True
        if self._closed_info is not None:
            after = engine.get_timer()
            if after is not None and after <= now:
                self._handle_events()
                return None  # the engine makes no progress on its closing timer
    self._handle_events()
    if self._blocked_senders:
        self._wake_senders()
    if self._flush_pending:
        if received and self._woke and self._closed_info is None and self._fallback_at > now:
            # This batch woke tasks: leave the flush to them (their next command or
            # park), so that what they answer leaves in the same packet as the ACK; if
            # they do not flush within FLUSH_DEFERRAL, the driver's deadline does.  (A
            # closed connection has nothing they could add: no deferral.)  A deferral
            # already pending keeps its deadline, and one that is due flushes now: a
            # stream of batches waking silent tasks cannot push the flush back forever.
            if self._fallback_at == math.inf:
                # (counted from now, not from the wake-up: reading the batch may have
                # taken a good part of FLUSH_DEFERRAL, a handshake's last flight more)
                self._fallback_at = deadline = self._current_time() + FLUSH_DEFERRAL
                if deadline < self._wait_deadline:
                    self._move_wait_deadline(deadline)
        else:
            self._flush_now()
    return handled_at


async def send_unsent(self: QuicConnection) -> None:
    """Send what inline flushes could not, in order, waiting for the socket (shielded:
    these packets are already counted as sent by the engine).  One task at a time: the
    others queue behind it, and it sends what they queued too."""
    if self._sending:
        return
    self._sending = True
    try:
        with trio.CancelScope(shield=True):
            while self._unsent:
                datagrams, ecn = self._unsent.pop(0)
                await self._endpoint._send_datagrams(datagrams, ecn)
                if not self._unsent and self._flush_pending:
                    self._flush_now()  # queued meanwhile: nobody could send past us
    finally:
        self._sending = False
