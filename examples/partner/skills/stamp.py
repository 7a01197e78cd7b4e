"""Stamp: fire the stamper (a digital output of the cell's robot) for a dwell, then release it.
A step that is IO and time, not a motion: it polls time from its tick like every skill."""

from __future__ import annotations

from pydantic import Field

from cellctl.skills.base import Params, Skill
from drivers.stamper import Stamper


class StampParams(Params):
    io: str = Field("stamper", description="the robot's digital output that fires the stamper")
    dwell: float = Field(0.4, gt=0, le=5, description="how long the stamp presses (s of driver time)")


class Stamp(Skill):
    name = "stamp"
    Params = StampParams
    steps = ["pressing", "releasing"]

    def setup(self) -> None:
        self.stamper = Stamper(self.driver, self.params.io)

    def preconditions(self) -> list[tuple[str, bool]]:
        outputs = list(self.driver.describe().io_names)
        return [(f"the robot has an output {self.params.io!r} (it has {outputs})", self.stamper.present())]

    def on_enter_pressing(self) -> None:
        self.stamper.fire()
        self.until = self.ctx.now() + self.params.dwell

    def poll_pressing(self) -> bool:
        return self.ctx.now() >= self.until

    def on_enter_releasing(self) -> None:
        self.stamper.release()

    def wake_hint(self) -> float | None:
        return self.until if self.state == "pressing" else None
