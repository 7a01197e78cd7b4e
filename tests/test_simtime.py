"""Sim time from step counts: the world, the lockstep grants and a restore agree to the bit, and a
restored twin never resumes a hair before the time it was asked for."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cellctl.twin.simtime import first_step_at, time_at


def test_a_step_count_at_a_round_time_is_that_time():
    assert time_at(3312, 240) == 13.8  # 3312 * (1 / 240) is 13.799999999999999
    assert first_step_at(8.8 + 5.0, 240) == 3312


@given(st.floats(min_value=0.0, max_value=1e6, allow_nan=False), st.sampled_from([60, 100, 240, 250, 1000]))
def test_the_first_step_at_a_time_is_never_before_it_and_the_one_before_is(t, hz):
    steps = first_step_at(t, hz)
    assert time_at(steps, hz) >= t
    assert steps == 0 or time_at(steps - 1, hz) < t
