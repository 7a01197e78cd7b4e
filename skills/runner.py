"""Drive a skill (or sequence) to its end from a plain loop: what a script, a test or the CLI
does without a cell. Between ticks, time passes through the driver's clock: one control period
of wall time on a realtime twin or a robot; on a lockstep twin, one period, or up to the skill's
next deadline or an event on its robot when it is only waiting for a motion (next-event advance).
The wall-clock bound is a liveness limit."""

from __future__ import annotations

import time
from typing import Protocol

from cellctl.drivers.errors import Timeout
from cellctl.drivers.wait import clock_of
from cellctl.skills.base import SkillResult
from cellctl.skills.context import SkillContext


class Tickable(Protocol):
    ctx: SkillContext

    def tick(self) -> SkillResult | None: ...

    def wake_hint(self) -> float | None:
        """Driver time by which the next tick is needed, if nothing happens first; None = next period."""


def run(skill: Tickable, timeout: float = 120.0) -> SkillResult:
    clock = clock_of(skill.ctx.driver)
    deadline = time.monotonic() + timeout
    while (result := skill.tick()) is None:
        if time.monotonic() > deadline:
            raise Timeout(f"skill still running after {timeout}s of wall time")
        clock.advance(skill.wake_hint())
    return result
