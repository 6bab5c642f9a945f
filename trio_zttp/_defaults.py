"""The only defaults that touch the operating system: randomness and the wall clock.

The sans-IO core never reads the clock or the OS random source itself; configurations take
``random_bytes`` and ``wall_clock`` callables and fall back to these two.
"""

from __future__ import annotations

import datetime
import os

__all__ = ["random_bytes", "wall_clock"]


def random_bytes(n: int) -> bytes:
    """``n`` bytes from the OS CSPRNG."""
    return os.urandom(n)


def wall_clock() -> datetime.datetime:
    """Current UTC time (for certificate validity and ticket ages)."""
    return datetime.datetime.now(datetime.UTC)
