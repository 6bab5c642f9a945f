"""The exception-group policy at the trio layer's context-manager boundaries."""

from __future__ import annotations

import pytest
import trio

from trio_zttp._trio._groups import collapse_exception_groups, single_exception


def test_groups_single_real_exception_is_unwrapped() -> None:
    error = KeyError("x")
    nested = ExceptionGroup("outer", [ExceptionGroup("inner", [error])])
    assert single_exception(nested) is error


def test_groups_several_real_exceptions_stay_a_group() -> None:
    group = ExceptionGroup("two", [KeyError(), ValueError()])
    assert single_exception(group) is None
    with pytest.raises(ExceptionGroup) as caught, collapse_exception_groups():
        raise group
    assert caught.value is group


async def test_groups_cancelled_siblings_are_dropped() -> None:
    with trio.CancelScope() as scope:
        scope.cancel()
        try:
            await trio.lowlevel.checkpoint()
        except trio.Cancelled as exc:
            cancelled = exc
            error = RuntimeError("real")
            assert single_exception(BaseExceptionGroup("g", [cancelled, error])) is error
            assert single_exception(BaseExceptionGroup("g", [cancelled])) is cancelled
            raise


def test_groups_unwrapped_exception_keeps_its_own_chain() -> None:
    cause = OSError("root cause")
    try:
        try:
            raise cause
        except OSError as exc:
            raise LookupError("wrapper") from exc
    except LookupError as exc:
        error = exc
    with pytest.raises(LookupError) as caught, collapse_exception_groups():
        raise ExceptionGroup("g", [error])
    assert caught.value is error
    assert caught.value.__cause__ is cause
    assert not isinstance(caught.value.__context__, BaseExceptionGroup)


async def test_groups_nursery_error_surfaces_unwrapped() -> None:
    async def fail() -> None:
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError), collapse_exception_groups():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fail)
            await trio.sleep_forever()
