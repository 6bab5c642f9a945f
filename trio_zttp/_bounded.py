"""A bounded, insertion-ordered cache for values that are the same whoever computes them.

The caches of parsed certificates, verified chains, ClientHello plans and decoded extensions
are module-level: several ``trio.run`` threads may share them.  :func:`remember` never raises
when another thread evicts or fills the same dict at the same time (the bound may then be
passed by a few entries, for a moment).
"""

from __future__ import annotations

from typing import TypeVar

__all__ = ["remember"]

_K = TypeVar("_K")
_V = TypeVar("_V")


def remember(cache: dict[_K, _V], key: _K, value: _V, limit: int) -> _V:
    """Store ``value`` under ``key``; when a new key finds ``cache`` full, the oldest entry
    goes first.  Returns ``value``."""
    if key not in cache:
        # a loop, not one eviction: two threads may evict the same oldest key, and the cache
        # must not keep the one entry too many that this leaves
        while len(cache) >= limit:
            try:
                cache.pop(next(iter(cache)), None)
            except (StopIteration, RuntimeError):  # another thread emptied or resized it
                break
    cache[key] = value
    return value
