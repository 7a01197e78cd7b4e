"""Pick: take a part from a station (or a located part) with the suction gripper.

approach (hover above) → descend (suction cup just above the top face) → grip (suction on;
checks ``gripper_state()`` that a part is held, and which one where the backend knows) → lift."""

from __future__ import annotations

import math

from pydantic import Field, model_validator

from cellctl.drivers.errors import DriverError
from cellctl.drivers.types import GripperCommand, Vec3
from cellctl.skills.base import Params, Skill
from cellctl.skills.registry import register


class PickMotion(Params):
    """How a part is taken (the pick skill's and unload_machine's parameters share it)."""

    hover: float = Field(0.10, gt=0, description="approach height above the grip pose (m)")
    gap: float = Field(0.005, ge=0, description="suction cup to part top face at the grip pose (m)")
    speed: float = Field(1.0, gt=0, le=1)
    approach_speed: float = Field(0.5, gt=0, le=1, description="speed of the last approach and the lift")


class PickParams(PickMotion):
    station: str | None = Field(None, description="pick whatever rests on this station")
    part: str | None = Field(None, description="pick this part id (needs a backend that locates parts)")

    @model_validator(mode="after")
    def _one_target(self) -> PickParams:
        if (self.station is None) == (self.part is None):
            raise ValueError("give exactly one of station or part")
        return self


@register
class Pick(Skill):
    name = "pick"
    Params = PickParams
    steps = ["approach", "descend", "grip", "lift"]

    def setup(self) -> None:
        self.target: Vec3 | None = None
        self.expect = self.params.part  # the part the grip must hold, where known
        self.where = f"at {self.params.station}" if self.params.station else f"of part {self.params.part}"
        if self.params.station is not None and self.params.station in self.ctx.stations:
            self.target = self.ctx.station(self.params.station)
        elif self.params.part is not None and self.ctx.locate is not None:
            self.target = self.ctx.locate(self.params.part)

    def preconditions(self) -> list[tuple[str, bool]]:
        where = f"station {self.params.station!r}" if self.params.station else f"part {self.params.part!r}"
        return [(f"{where} is known (stations: {sorted(self.ctx.stations)})", self.target is not None),
                ("the gripper holds no part", not self.driver.gripper_state().part_present)]

    def _grip_height(self) -> float:
        return self.ctx.part_height + self.params.gap

    def on_enter_approach(self) -> None:
        self.motion = self.driver.move_pose([self.ctx.above(self.target, self._grip_height() + self.params.hover)],
                                            self.params.speed)

    def on_enter_descend(self) -> None:
        self.motion = self.driver.move_pose([self.ctx.above(self.target, self._grip_height())], self.params.approach_speed)

    def on_enter_grip(self) -> None:
        self.motion = self.driver.gripper(GripperCommand.CLOSE)

    def check_grip(self) -> str | None:
        state = self.driver.gripper_state()
        if not state.part_present:
            return f"suction on, but no part attached: {self._where_the_tcp_was()}"
        if self.expect is not None and state.part_id not in (None, self.expect):
            return f"holding {state.part_id!r}, not {self.expect!r}"
        return None

    def _where_the_tcp_was(self) -> str:
        """The TCP (forward kinematics of the robot's own joint state, with the configured TCP
        offset) against the part's top as the config puts it (the station's top plus the part's
        height): what a real cell knows. A wrong ``tcp.offset`` shows as the distance here."""
        try:
            tcp = self.driver.kinematics.fk(self.driver.joint_state().positions).position
        except DriverError as exc:
            return f"the TCP's position is unknown ({exc})"
        x, y, z = self.target
        dz, beside = tcp[2] - (z + self.ctx.part_height), math.hypot(tcp[0] - x, tcp[1] - y)
        text = f"TCP {abs(dz) * 100:.1f} cm {'above' if dz >= 0 else 'below'} the part's top {self.where}"
        if beside >= 0.005:
            text += f", {beside * 100:.1f} cm beside its centre"
        return f"{text}: check robots.{self.ctx.robot or '?'}.tcp.offset"

    def on_enter_lift(self) -> None:
        self.motion = self.driver.move_pose([self.ctx.above(self.target, self._grip_height() + self.params.hover)],
                                            self.params.approach_speed)

    def check_lift(self) -> str | None:
        return None if self.driver.gripper_state().part_present else "the part was lost during the lift"
