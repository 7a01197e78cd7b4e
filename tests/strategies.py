"""Hypothesis strategies for hostile input: any msgpack/JSON value, the values that broke servers
before (NaN, infinities, 1e308, huge integers and strings, ragged rows), and requests built from
each protocol's own field names so that the fuzz reaches past the first type check."""

from __future__ import annotations

import math

from hypothesis import strategies as st

NASTY_NUMBERS = [0, -1, 1, 2**31, 2**63 - 1, -(2**63), 2**64 - 1, 1e5, 1e7, 1e200, 1e308, -1e308, 1e-300,
                 math.nan, math.inf, -math.inf, 0.5, 3.5]
NASTY_STRINGS = ["", "press", "pack", "infeed", "handoff", "x" * 200, "y" * 20_000, "\x00", "💥", "Reset", "Start",
                 "Abort", "Stop", "Hold", "printer1", "cnc1", "fail", "offline", "pause"]


def scalars(json_safe: bool = False) -> st.SearchStrategy:
    numbers = st.sampled_from([n for n in NASTY_NUMBERS if not json_safe or (isinstance(n, int) or math.isfinite(n))])
    base = (st.none() | st.booleans() | numbers | st.integers(-(2**63), 2**63 - 1)
            | st.floats(allow_nan=not json_safe, allow_infinity=not json_safe) | st.sampled_from(NASTY_STRINGS)
            | st.text(max_size=20))
    return base if json_safe else base | st.binary(max_size=20)


def values(json_safe: bool = False) -> st.SearchStrategy:
    """Any nested value msgpack (or JSON) can carry."""
    return st.recursive(scalars(json_safe), lambda inner: st.lists(inner, max_size=6)
                        | st.dictionaries(st.text(max_size=12), inner, max_size=6), max_leaves=24)


def rows(width: int = 7) -> st.SearchStrategy:
    """Joint rows: right and wrong lengths, sane and absurd values."""
    value = st.sampled_from(NASTY_NUMBERS) | st.floats(-4, 4)
    return st.lists(st.lists(value, min_size=width - 1, max_size=width + 1), min_size=1, max_size=8)


def field_maps(fields: list[str], json_safe: bool = False) -> st.SearchStrategy:
    """Maps over a protocol's own field names (some dropped, some extra), with any values."""
    key = st.sampled_from(fields) if fields else st.text(max_size=8)
    special = st.one_of(values(json_safe), rows(), st.sampled_from(NASTY_STRINGS))
    return st.dictionaries(key | st.text(max_size=8), special, max_size=max(1, len(fields) + 1))
