"""The request and response views read their fields lazily: same answers as a full split."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from trio_zttp._trio.h3_request import _pseudo, _regular

_PSEUDO_NAMES = [b":method", b":scheme", b":authority", b":path", b":protocol", b":status"]
_LOOKUPS = [*_PSEUDO_NAMES, b":other"]  # the views look up pseudo-header names only

_values = st.binary(max_size=8)
_regular_fields = st.lists(
    st.tuples(st.sampled_from([b"host", b"x", b"content-length", b"a:b", b""]), _values),
    max_size=5,
)


@st.composite
def _sections(draw: st.DrawFn) -> list[tuple[bytes, bytes]]:
    """Field sections shaped like validated ones: unique pseudo-header fields first."""
    names = draw(st.lists(st.sampled_from(_PSEUDO_NAMES), unique=True, max_size=5))
    pseudo = [(name, draw(_values)) for name in names]
    return pseudo + draw(_regular_fields)


def _full_split(fields: list[tuple[bytes, bytes]]) -> tuple[dict[bytes, bytes], list]:
    pseudo: dict[bytes, bytes] = {}
    regular = []
    for name, value in fields:
        if name and name[0] == 0x3A:
            pseudo[name] = value
        else:
            regular.append((name, value))
    return pseudo, regular


@given(_sections())
def test_lazy_field_lookup_matches_a_full_split(fields: list[tuple[bytes, bytes]]) -> None:
    pseudo, regular = _full_split(fields)
    assert _regular(fields) == regular
    for name in _LOOKUPS:
        assert _pseudo(fields, name) == pseudo.get(name)
