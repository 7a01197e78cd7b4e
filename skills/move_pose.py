"""MovePose: move the TCP through Cartesian via-points (each solved by IK)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from cellctl.drivers.types import Pose
from cellctl.skills.base import Params, Skill
from cellctl.skills.registry import register


class PoseParam(BaseModel):
    model_config = ConfigDict(extra="forbid")
    position: tuple[float, float, float]
    orientation: tuple[float, float, float, float] | None = Field(
        None, description="(x, y, z, w); default: the tool pointing as at home, turned to face the target")
    frame: Literal["world", "base"] = "world"


class MovePoseParams(Params):
    poses: list[PoseParam] = Field(min_length=1, description="TCP via-points; the last is the goal")
    speed: float = Field(1.0, gt=0, le=1)


@register
class MovePose(Skill):
    name = "move_pose"
    Params = MovePoseParams
    steps = ["moving"]

    def on_enter_moving(self) -> None:
        poses = [Pose(p.position, p.orientation or self.ctx.facing(p.position), p.frame) for p in self.params.poses]
        self.motion = self.driver.move_pose(poses, self.params.speed)
