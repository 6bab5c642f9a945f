"""Shared helpers for the QPACK tests: vector loading and an encoder/decoder link model."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, Protocol

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "qpack"

Headers = list[tuple[bytes, bytes]]


def latin1(text: str) -> bytes:
    return text.encode("latin-1")


@cache
def load_json(name: str) -> Any:
    return json.loads((VECTORS / name).read_text())


def corpus_sets() -> dict[str, list[Headers]]:
    """The synthetic corpus: set name -> list of header lists (bytes)."""
    raw = load_json("corpus.json")["sets"]
    return {
        name: [[(latin1(n), latin1(v)) for n, v in headers] for headers in sets]
        for name, sets in raw.items()
    }


def corpus_all() -> list[Headers]:
    return [headers for sets in corpus_sets().values() for headers in sets]


class EncoderLike(Protocol):
    def apply_settings(self, max_table_capacity: int, blocked_streams: int) -> bytes: ...
    def encode(self, stream_id: int, headers: Headers) -> tuple[bytes, bytes]: ...
    def feed_decoder(self, data: bytes) -> None: ...


class DecoderLike(Protocol):
    def feed_encoder(self, data: bytes) -> list[int]: ...
    def feed_header(self, stream_id: int, data: bytes) -> tuple[bytes, Headers]: ...
    def resume_header(self, stream_id: int) -> tuple[bytes, Headers]: ...
    def cancel_stream(self, stream_id: int) -> bytes: ...


def decoder_extra(decoder: DecoderLike) -> bytes:
    """Pending decoder-stream bytes our Decoder keeps for Insert Count Increments."""
    data_to_send: Callable[[], bytes] | None = getattr(decoder, "data_to_send", None)
    return data_to_send() if data_to_send is not None else b""


def run_in_order(
    encoder: EncoderLike,
    decoder: DecoderLike,
    sets: list[Headers],
    capacity: int,
    blocked: int,
    first_stream: int = 0,
) -> list[tuple[int, int]]:
    """Encode every header list, deliver everything in order, check each decodes equal.

    Returns per-section (encoder stream bytes, field section bytes) sizes.
    """
    decoder.feed_encoder(encoder.apply_settings(capacity, blocked))
    sizes = []
    for n, headers in enumerate(sets):
        stream_id = first_stream + 4 * n
        encoder_data, section = encoder.encode(stream_id, headers)
        assert decoder.feed_encoder(encoder_data) == []
        decoder_data, decoded = decoder.feed_header(stream_id, section)
        assert decoded == headers
        encoder.feed_decoder(decoder_data + decoder_extra(decoder))
        sizes.append((len(encoder_data), len(section)))
    return sizes
