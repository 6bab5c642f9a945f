"""Our encoder across a reordering link, decoded by our decoder and by pylsqpack's.

Hypothesis drives the link: field sections overtake encoder-stream bytes, encoder-stream and
decoder-stream bytes arrive in arbitrary pieces and late, streams get cancelled.  Whatever
the order, every section decodes to its input, and neither decoder ever reports a violation:
that shows the encoder never evicts an entry a pending section needs, never exceeds the
capacity, and never lets more streams block than the peer allows (both decoders enforce
those limits and would raise).  Then the roles swap: pylsqpack encodes, our decoder decodes.
"""

from __future__ import annotations

from typing import Any

import pylsqpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.qpack.qpack_support import Headers, corpus_all, decoder_extra
from trio_zttp import qpack

CORPUS = corpus_all()
POOL = sorted({field for headers in CORPUS for field in headers if len(field[1]) < 300})

field_lists = st.lists(
    st.one_of(
        st.sampled_from(POOL),
        st.tuples(st.sampled_from([b"x-r", b"x-s", b"cookie", b":path"]), st.binary(max_size=40)),
        st.tuples(st.sampled_from([b"x-a", b"x-b"]), st.sampled_from([b"1", b"22", b"333"])),
    ),
    min_size=1,
    max_size=6,
)


class Link:
    """Both directions of one QPACK connection, with every byte queued until delivered."""

    def __init__(self, encoder: Any, decoder: Any, capacity: int, blocked: int) -> None:
        self.encoder, self.decoder = encoder, decoder
        self.blocked_error = (qpack.StreamBlocked, pylsqpack.StreamBlocked)
        self.encoder_stream = bytearray(encoder.apply_settings(capacity, blocked))
        self.decoder_stream = bytearray()
        self.unsent: dict[int, tuple[bytes, Headers]] = {}
        self.waiting: dict[int, Headers] = {}
        self.next_stream = 0
        self.decoded = 0

    def encode(self, headers: Headers) -> None:
        stream_id, self.next_stream = self.next_stream, self.next_stream + 4
        encoder_data, section = self.encoder.encode(stream_id, headers)
        self.encoder_stream += encoder_data
        self.unsent[stream_id] = (section, headers)

    def deliver_encoder_stream(self, n: int) -> None:
        data = bytes(self.encoder_stream[:n])
        del self.encoder_stream[:n]
        for stream_id in self.decoder.feed_encoder(data):
            control, decoded = self.decoder.resume_header(stream_id)
            assert decoded == self.waiting.pop(stream_id)
            self.decoder_stream += control
            self.decoded += 1
        self.decoder_stream += decoder_extra(self.decoder)

    def deliver_section(self, stream_id: int) -> None:
        section, headers = self.unsent.pop(stream_id)
        try:
            control, decoded = self.decoder.feed_header(stream_id, section)
        except self.blocked_error:
            self.waiting[stream_id] = headers
            return
        assert decoded == headers
        self.decoder_stream += control
        self.decoded += 1

    def deliver_decoder_stream(self, n: int) -> None:
        data = bytes(self.decoder_stream[:n])
        del self.decoder_stream[:n]
        self.encoder.feed_decoder(data)

    def cancel(self, stream_id: int) -> None:
        self.unsent.pop(stream_id, None)
        self.waiting.pop(stream_id, None)
        self.decoder_stream += self.decoder.cancel_stream(stream_id)

    def flush(self) -> None:
        self.deliver_encoder_stream(len(self.encoder_stream))
        for stream_id in sorted(self.unsent):
            self.deliver_section(stream_id)
        assert not self.waiting
        self.deliver_decoder_stream(len(self.decoder_stream))


def drive(link: Link, data: st.DataObject, steps: int) -> None:
    for _ in range(steps):
        action = data.draw(st.sampled_from(
            ["encode", "encode", "encode", "enc_stream", "section", "section", "dec_stream",
             "cancel"]))
        if action == "encode":
            link.encode(data.draw(field_lists))
        elif action == "enc_stream" and link.encoder_stream:
            link.deliver_encoder_stream(data.draw(st.integers(1, len(link.encoder_stream))))
        elif action == "section" and link.unsent:
            link.deliver_section(data.draw(st.sampled_from(sorted(link.unsent))))
        elif action == "dec_stream" and link.decoder_stream:
            link.deliver_decoder_stream(data.draw(st.integers(1, len(link.decoder_stream))))
        elif action == "cancel" and (link.unsent or link.waiting):
            link.cancel(data.draw(st.sampled_from(sorted({*link.unsent, *link.waiting}))))
    link.flush()


DECODERS = [
    pytest.param(lambda cap, blocked: qpack.Decoder(cap, blocked), id="our-decoder"),
    pytest.param(lambda cap, blocked: pylsqpack.Decoder(cap, blocked), id="pylsqpack-decoder"),
]


@pytest.mark.parametrize("make_decoder", DECODERS)
@settings(max_examples=50)
@given(data=st.data(), capacity=st.sampled_from([0, 100, 160, 400, 1500, 4096]),
       blocked=st.integers(0, 3))
def test_link_our_encoder_survives_any_delivery_order(
    make_decoder: Any, data: st.DataObject, capacity: int, blocked: int
) -> None:
    link = Link(qpack.Encoder(), make_decoder(capacity, blocked), capacity, blocked)
    drive(link, data, 40)


@settings(max_examples=50)
@given(data=st.data(), capacity=st.sampled_from([0, 100, 160, 400, 1500, 4096]),
       blocked=st.integers(0, 3))
def test_link_pylsqpack_encoder_into_our_decoder_any_delivery_order(
    data: st.DataObject, capacity: int, blocked: int
) -> None:
    link = Link(pylsqpack.Encoder(), qpack.Decoder(capacity, blocked), capacity, blocked)
    drive(link, data, 40)


def test_link_long_session_with_late_acknowledgments() -> None:
    # the whole corpus, five times, each section's decoder-stream bytes held back for 7 more
    link = Link(qpack.Encoder(), pylsqpack.Decoder(2048, 4), 2048, 4)
    held: list[bytes] = []
    for headers in CORPUS * 5:
        link.encode(headers)
        link.deliver_encoder_stream(len(link.encoder_stream))
        link.deliver_section(link.next_stream - 4)
        held.append(bytes(link.decoder_stream))
        link.decoder_stream.clear()
        if len(held) > 7:
            link.encoder.feed_decoder(held.pop(0))
    for chunk in held:
        link.encoder.feed_decoder(chunk)
    link.flush()
    assert link.decoded == len(CORPUS) * 5
