"""RFC 9204 Appendix B, B.1-B.5: the example bytes decoded, and written back byte for byte."""

from __future__ import annotations

from typing import Any

import pytest

from tests.qpack.qpack_support import latin1, load_json
from trio_zttp import qpack
from trio_zttp.qpack._instructions import (
    Duplicate,
    EncoderInstruction,
    InsertWithLiteralName,
    InsertWithNameReference,
    SetDynamicTableCapacity,
    write_encoder_instruction,
    write_indexed_dynamic,
    write_indexed_post_base,
    write_indexed_static,
    write_literal_static_name,
    write_section_prefix,
)

EXAMPLES = load_json("rfc9204_appendix_b.json")
CAPACITY = EXAMPLES["max_table_capacity"]
MAX_ENTRIES = CAPACITY // 32
STEPS: list[dict[str, Any]] = EXAMPLES["steps"]


def _headers(step: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    return [(latin1(n), latin1(v)) for n, v in step["headers"]]


def _probe_stream_ids() -> Any:
    stream_id = 1000
    while True:
        yield stream_id
        stream_id += 4


def _check_table(decoder: qpack.Decoder, step: dict[str, Any], probes: Any) -> None:
    """Look at the decoder's table only through field sections that reference it."""
    table = step.get("table")
    if table is None:
        return
    if not table:
        return  # (a reference now would only block, waiting for an insert)
    insert_count = max(absolute for absolute, _, _ in table) + 1
    for absolute, name, value in table:
        section = bytearray()
        write_section_prefix(section, insert_count, insert_count, MAX_ENTRIES)
        write_indexed_dynamic(section, insert_count - 1 - absolute)
        _, headers = decoder.feed_header(next(probes), bytes(section))
        assert headers == [(latin1(name), latin1(value))]
    for absolute in step.get("evicted", []):
        section = bytearray()
        write_section_prefix(section, insert_count, insert_count, MAX_ENTRIES)
        write_indexed_dynamic(section, insert_count - 1 - absolute)
        with pytest.raises(qpack.DecompressionFailed, match="evicted"):
            decoder.feed_header(next(probes), bytes(section))
    # the example's Size column follows from the entries (name + value + 32 each)
    assert sum(len(n) + len(v) + 32 for _, n, v in table) == step["table_size"]


def test_rfc9204_appendix_b_decoder_replays_every_step() -> None:
    decoder = qpack.Decoder(CAPACITY, 16)
    probes = _probe_stream_ids()
    delayed = b""
    for step in STEPS:
        kind = step["kind"]
        if kind == "field_section":
            data = bytes.fromhex(step["hex"])
            if step.get("blocked"):
                with pytest.raises(qpack.StreamBlocked):
                    decoder.feed_header(step["stream"], data)
                continue
            control, headers = decoder.feed_header(step["stream"], data)
            assert headers == _headers(step)
            assert control.hex() == step["decoder_stream"]
        elif kind == "encoder_stream":
            assert decoder.feed_encoder(bytes.fromhex(step["hex"])) == []
            if "decoder_stream" in step:
                assert decoder.data_to_send().hex() == step["decoder_stream"]
        elif kind == "encoder_stream_delayed":
            delayed = bytes.fromhex(step["hex"])
        elif kind == "cancel":
            assert decoder.cancel_stream(step["stream"]).hex() == step["decoder_stream"]
        elif kind == "deliver_delayed":
            # the cancelled stream 8 is not reported as unblocked
            assert decoder.feed_encoder(delayed) == []
        _check_table(decoder, step, probes)


def test_rfc9204_appendix_b_blocked_section_resumes_when_not_cancelled() -> None:
    # B.4 without the cancellation: the delayed Duplicate unblocks stream 8
    decoder = qpack.Decoder(CAPACITY, 1)
    for step in STEPS:
        if step["kind"] == "encoder_stream" and step["section"] in ("B.2", "B.3"):
            decoder.feed_encoder(bytes.fromhex(step["hex"]))
    section = next(s for s in STEPS if s["section"] == "B.4" and s["kind"] == "field_section")
    with pytest.raises(qpack.StreamBlocked):
        decoder.feed_header(8, bytes.fromhex(section["hex"]))
    assert decoder.feed_encoder(bytes.fromhex("02")) == [8]
    control, headers = decoder.resume_header(8)
    assert headers == _headers(section)
    assert control.hex() == "88"  # Section Acknowledgment for stream 8; RIC 4 = all inserts


def _instruction(spec: list[Any]) -> EncoderInstruction:
    match spec:
        case ["set_capacity", capacity]:
            return SetDynamicTableCapacity(capacity=capacity)
        case ["insert_static_name", index, value]:
            return InsertWithNameReference(static=True, index=index, value=latin1(value))
        case ["insert_dynamic_name", index, value]:
            return InsertWithNameReference(static=False, index=index, value=latin1(value))
        case ["insert_literal_name", name, value]:
            return InsertWithLiteralName(name=latin1(name), value=latin1(value))
        case ["duplicate", index]:
            return Duplicate(index=index)
    raise AssertionError(spec)


@pytest.mark.parametrize(
    "step", [s for s in STEPS if "instructions" in s], ids=lambda s: s["section"]
)
def test_rfc9204_appendix_b_encoder_stream_bytes_written(step: dict[str, Any]) -> None:
    buf = bytearray()
    for spec in step["instructions"]:
        write_encoder_instruction(buf, _instruction(spec), huffman=False)
    assert buf.hex() == step["hex"]


@pytest.mark.parametrize("step", [s for s in STEPS if "lines" in s], ids=lambda s: s["section"])
def test_rfc9204_appendix_b_field_section_bytes_written(step: dict[str, Any]) -> None:
    buf = bytearray()
    write_section_prefix(buf, step["required_insert_count"], step["base"], MAX_ENTRIES)
    for kind, index in step["lines"]:
        {"indexed_post_base": write_indexed_post_base, "indexed_dynamic": write_indexed_dynamic,
         "indexed_static": write_indexed_static}[kind](buf, index)
    assert buf.hex() == step["hex"]


def test_rfc9204_appendix_b1_written_by_the_encoder() -> None:
    # B.1 uses no dynamic table and no Huffman coding: our Encoder produces it exactly
    step = STEPS[0]
    encoder = qpack.Encoder(huffman=False)
    encoder_data, section = encoder.encode(step["stream"], _headers(step))
    assert encoder_data == b""
    assert section.hex() == step["hex"]
    buf = bytearray()
    write_section_prefix(buf, 0, 0, MAX_ENTRIES)
    write_literal_static_name(buf, 1, b"/index.html", huffman=False)
    assert buf.hex() == step["hex"]


def test_rfc9204_appendix_b2_capacity_instruction_from_the_encoder() -> None:
    encoder = qpack.Encoder()
    assert encoder.apply_settings(CAPACITY, 0).hex() == STEPS[1]["hex"][:6]  # 3fbd01
