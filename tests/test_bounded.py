"""trio_zttp._bounded.remember: the module-level caches' one insertion rule."""

from __future__ import annotations

import sys
import threading

from trio_zttp._bounded import remember


def test_remember_evicts_the_oldest_when_a_new_key_finds_it_full() -> None:
    cache: dict[int, str] = {}
    for i in range(5):
        assert remember(cache, i, str(i), 3) == str(i)
    assert list(cache) == [2, 3, 4]


def test_remember_a_known_key_evicts_nothing() -> None:
    cache = {1: "a", 2: "b", 3: "c"}
    remember(cache, 2, "B", 3)
    assert cache == {1: "a", 2: "B", 3: "c"}


def test_remember_never_raises_when_threads_share_the_cache() -> None:
    # The old rule (``del cache[next(iter(cache))]``) raised KeyError here when two threads
    # picked the same oldest key.
    cache: dict[tuple[int, int], int] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def hammer(n: int) -> None:
        start.wait()
        try:
            for i in range(20_000):
                remember(cache, (n, i), i, 8)
        except BaseException as exc:  # noqa: BLE001 - any escape fails the test
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(4)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often: the race shows in every run
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    assert len(cache) <= 8 + len(threads)
