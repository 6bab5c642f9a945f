"""The static table (RFC 9204 Appendix A), checked against the RFC and against ls-qpack."""

from __future__ import annotations

import pylsqpack
import pytest

from trio_zttp import qpack
from trio_zttp.qpack._static_table import STATIC_FIELD_INDEX, STATIC_NAME_INDEX, STATIC_TABLE


def test_static_table_shape_and_rfc_rows() -> None:
    assert len(STATIC_TABLE) == 99
    assert len(set(STATIC_TABLE)) == 99
    assert STATIC_TABLE[0] == (b":authority", b"")
    assert STATIC_TABLE[17] == (b":method", b"GET")
    assert STATIC_TABLE[31] == (b"accept-encoding", b"gzip, deflate, br")
    assert STATIC_TABLE[85] == (
        b"content-security-policy", b"script-src 'none'; object-src 'none'; base-uri 'none'"
    )
    assert STATIC_TABLE[98] == (b"x-frame-options", b"sameorigin")


def test_static_table_lookups() -> None:
    for index, field in enumerate(STATIC_TABLE):
        assert STATIC_FIELD_INDEX[field] == index
        assert STATIC_NAME_INDEX[field[0]] <= index
    assert STATIC_NAME_INDEX[b":status"] == 24


@pytest.mark.parametrize("index", range(99))
def test_static_table_entry_matches_ls_qpack(index: int) -> None:
    # ls-qpack encodes an exact static match as an Indexed Field Line: same index, same bytes
    field = STATIC_TABLE[index]
    _, theirs = pylsqpack.Encoder().encode(0, [field])
    _, ours = qpack.Encoder().encode(0, [field])
    assert ours == theirs
    assert qpack.Decoder(0, 0).feed_header(0, theirs)[1] == [field]
