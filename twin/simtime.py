"""Sim time from a step count, and back. Every party that turns steps into seconds (the world, the
lockstep grants, a restore) uses these two, so they agree to the last bit: ``steps / hz`` is one
correctly rounded division (``steps * (1 / hz)`` rounds twice and puts 3312 steps at 240 Hz at
13.799999999999999 s), and a restored twin asked to resume at ``t`` never starts a hair before it."""

from __future__ import annotations

import math


def time_at(steps: int, hz: int) -> float:
    """The sim time, in seconds, after ``steps`` physics steps at ``hz``."""
    return steps / hz


def first_step_at(t: float, hz: int) -> int:
    """The first step count whose time is ``t`` or later."""
    steps = max(0, math.ceil(t * hz - 1e-6))
    while time_at(steps, hz) < t:
        steps += 1
    return steps
