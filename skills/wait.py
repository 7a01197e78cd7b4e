"""Wait: let driver time pass (a process step, a dwell). Sim time on the twin, so a wait in a
fast twin is fast."""

from __future__ import annotations

from pydantic import Field

from cellctl.skills.base import Params, Skill
from cellctl.skills.registry import register


class WaitParams(Params):
    seconds: float = Field(ge=0, description="how long, in driver time")


@register
class Wait(Skill):
    name = "wait"
    Params = WaitParams
    steps = ["waiting"]

    def on_enter_waiting(self) -> None:
        self.until = self.ctx.now() + self.params.seconds

    def poll_waiting(self) -> bool:
        return self.ctx.now() >= self.until

    def wake_hint(self) -> float | None:
        return self.until if self.state == "waiting" else None
