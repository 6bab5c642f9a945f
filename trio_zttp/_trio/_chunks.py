"""A FIFO of received byte chunks, read in pieces of any size without re-copying the rest.

Shared by QUIC streams (``stream.py``) and HTTP/3 request bodies (``h3_stream.py``).
"""

from __future__ import annotations

from collections import deque
from typing import final

__all__ = ["ChunkBuffer"]


@final
class ChunkBuffer:
    """Bytes received and not yet read; ``size`` is how many."""

    __slots__ = ("_chunks", "_head", "size")

    def __init__(self) -> None:
        self._chunks: deque[bytes] = deque()
        self._head = 0  # bytes of the first chunk already read
        self.size = 0

    def append(self, data: bytes) -> None:
        self._chunks.append(data)
        self.size += len(data)

    def clear(self) -> int:
        """Drop everything; return how many bytes were dropped."""
        if not self._chunks:  # then nothing is held (size and head are 0)
            return 0
        dropped = self.size
        self._chunks.clear()
        self._head = 0
        self.size = 0
        return dropped

    def take(self, max_bytes: int | None) -> bytes:
        """Up to ``max_bytes`` (all when None) from the front."""
        chunks = self._chunks
        head = self._head
        if max_bytes is None or max_bytes >= self.size:
            if len(chunks) == 1:
                data = chunks.popleft()
                if head:
                    data = data[head:]
            else:
                if head:
                    chunks[0] = chunks[0][head:]
                data = b"".join(chunks)
                chunks.clear()
            self._head = 0
        else:
            parts = []
            need = max_bytes
            while need:
                chunk = chunks[0]
                available = len(chunk) - head
                if available <= need:
                    parts.append(chunk[head:] if head else chunk)
                    chunks.popleft()
                    need -= available
                    head = 0
                else:
                    parts.append(chunk[head : head + need])
                    head += need
                    need = 0
            self._head = head
            data = parts[0] if len(parts) == 1 else b"".join(parts)
        self.size -= len(data)
        return data
