"""The fast canonical-JSON path agrees with the rfc8785 package byte for byte."""

from __future__ import annotations

from typing import Any

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from clearpost.core.canonical import canonical_json

SAFE = 2**53 - 1
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-SAFE, SAFE),
    st.text(),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7F)),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.text(max_size=8), children, max_size=5),
    ),
    max_leaves=30,
)


@settings(max_examples=500, deadline=None)
@given(values)
def test_fast_path_is_rfc8785(value: Any) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


def test_floats_and_astral_keys_take_the_reference_path() -> None:
    for value in (
        {"epsilon": 1.0},
        {"x": 1e21},
        {"\U0001f600": 1, "\ue000": 2},
        {"b": 0.1, "a": [1.5]},
    ):
        assert canonical_json(value) == rfc8785.dumps(value)
