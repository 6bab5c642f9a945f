"""Exception-group policy at the trio layer's public context-manager boundaries.

``open_quic_endpoint``, ``serve_quic`` and ``open_quic_connection`` run nurseries, and
trio's strict exception groups would otherwise wrap whatever leaves the ``async with``
body in an :class:`ExceptionGroup`.  The policy, in one place:

1. Flatten nested groups into their leaf exceptions.
2. If exactly one leaf is not :class:`trio.Cancelled`, raise that leaf itself (its own
   traceback, ``__cause__`` and ``__context__`` kept; the group is not chained onto it).
   Cancelled siblings are dropped: cancellation is level-triggered, so an enclosing
   cancelled scope delivers it again at the next checkpoint.
3. If every leaf is :class:`trio.Cancelled`, raise the first one, so the cancel scope
   that owns it catches it as usual.
4. Otherwise (several real errors) raise the group unchanged: hiding any of them would
   lose information.

Users therefore write ``except ConnectionClosedError`` around these context managers,
not ``except*``, unless two things really failed at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import trio

__all__ = ["collapse_exception_groups", "leaves", "single_exception"]


def leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    """The non-group exceptions inside ``group``, depth first."""
    found: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found.extend(leaves(exc))
        else:
            found.append(exc)
    return found


def single_exception(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The one exception to raise instead of ``group`` under this module's policy, or None."""
    found = leaves(group)
    real = [exc for exc in found if not isinstance(exc, trio.Cancelled)]
    if len(real) == 1:
        return real[0]
    if not real and found:
        return found[0]
    return None


def _reraise(exc: BaseException) -> None:
    # Raising inside our frame would chain the group (being handled by the caller's
    # ``with``) as __context__; keep the exception's own chain instead.
    context, cause, suppress = exc.__context__, exc.__cause__, exc.__suppress_context__
    try:
        raise exc
    finally:
        exc.__context__ = context
        exc.__cause__ = cause
        exc.__suppress_context__ = suppress
        del exc, context, cause  # the traceback holds this frame: no cycle through it


@contextmanager
def collapse_exception_groups() -> Iterator[None]:
    """Apply the policy above to whatever leaves the ``with`` block."""
    single: BaseException | None = None
    try:
        yield
    except BaseExceptionGroup as group:
        single = single_exception(group)
        if single is None:
            raise
    if single is not None:
        try:
            _reraise(single)
        finally:
            del single  # the traceback holds this frame: no cycle through it
