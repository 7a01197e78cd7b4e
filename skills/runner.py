"""Drive a skill (or sequence) to its end from a plain loop: what a script, a test or the CLI
does without a cell. One tick per control period; the period is paced on the wall clock because
a realtime twin or a real robot advances by itself. The wall-clock bound is a liveness limit."""

from __future__ import annotations

import time
from typing import Protocol

from drivers.errors import Timeout
from skills.base import SkillResult

CONTROL_PERIOD = 0.02  # s


class Tickable(Protocol):
    def tick(self) -> SkillResult | None: ...


def run(skill: Tickable, period: float = CONTROL_PERIOD, timeout: float = 120.0) -> SkillResult:
    deadline = time.monotonic() + timeout
    while (result := skill.tick()) is None:
        if time.monotonic() > deadline:
            raise Timeout(f"skill still running after {timeout}s of wall time")
        time.sleep(period)
    return result
