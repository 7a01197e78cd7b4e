"""Place: put the held part on a station.

approach → descend (part just above the station) → release (suction off; checks the gripper let
go) → retreat (checks, where the backend locates parts, that the part rests on the station)."""

from __future__ import annotations

from pydantic import Field

from cellctl.drivers.types import GripperCommand
from cellctl.skills.base import Params, Skill
from cellctl.skills.registry import register

ARRIVAL_TOLERANCE = (0.03, 0.01)  # m: horizontal from the station centre, vertical from its top


class PlaceMotion(Params):
    """How a part is put down (the place skill's and load_machine's parameters share it)."""

    hover: float = Field(0.10, gt=0)
    gap: float = Field(0.005, ge=0, description="part bottom face above the station top when released (m)")
    speed: float = Field(1.0, gt=0, le=1)
    approach_speed: float = Field(0.5, gt=0, le=1)


class PlaceParams(PlaceMotion):
    station: str


@register
class Place(Skill):
    name = "place"
    Params = PlaceParams
    steps = ["approach", "descend", "release", "retreat"]

    def setup(self) -> None:
        self.part_id = self.driver.gripper_state().part_id
        self.station: str = self.params.station

    def preconditions(self) -> list[tuple[str, bool]]:
        return [(f"station {self.station!r} is known (stations: {sorted(self.ctx.stations)})",
                 self.station in self.ctx.stations),
                ("the gripper holds a part", self.driver.gripper_state().part_present)]

    def _release_height(self) -> float:
        return self.ctx.part_height + self.params.gap

    def on_enter_approach(self) -> None:
        target = self.ctx.station(self.station)
        self.motion = self.driver.move_pose([self.ctx.above(target, self._release_height() + self.params.hover)],
                                            self.params.speed)

    def on_enter_descend(self) -> None:
        target = self.ctx.station(self.station)
        self.motion = self.driver.move_pose([self.ctx.above(target, self._release_height())], self.params.approach_speed)

    def on_enter_release(self) -> None:
        self.motion = self.driver.gripper(GripperCommand.OPEN)

    def check_release(self) -> str | None:
        return "suction off, but the part is still held" if self.driver.gripper_state().part_present else None

    on_enter_retreat = on_enter_approach

    def check_retreat(self) -> str | None:
        if self.ctx.locate is None or self.part_id is None:
            return None
        where = self.ctx.locate(self.part_id)
        x, y, z = self.ctx.station(self.station)
        if where is None:
            return None if self.station in self.ctx.sinks else f"part {self.part_id} is gone"
        off = ((where[0] - x) ** 2 + (where[1] - y) ** 2) ** 0.5
        if off > ARRIVAL_TOLERANCE[0] or abs(where[2] - z) > ARRIVAL_TOLERANCE[1]:
            return f"part {self.part_id} rests at {[round(v, 3) for v in where]}, not on station {self.station}"
        return None
