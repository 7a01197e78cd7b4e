"""MoveJoints: move through joint-space via-points to a goal."""

from __future__ import annotations

from pydantic import Field, model_validator

from cellctl.skills.base import Params, Skill
from cellctl.skills.registry import register


class MoveJointsParams(Params):
    waypoints: list[list[float]] = Field(min_length=1, description="joint via-points (rad); the last is the goal")
    speed: float = Field(1.0, gt=0, le=1, description="fraction of the velocity limits")

    @model_validator(mode="before")
    @classmethod
    def _goal_shorthand(cls, data: object) -> object:
        """``positions: [...]`` is shorthand for a single goal."""
        if isinstance(data, dict) and "positions" in data:
            data = {**data, "waypoints": [data["positions"]]}
            del data["positions"]
        return data


@register
class MoveJoints(Skill):
    name = "move_joints"
    Params = MoveJointsParams
    steps = ["moving"]

    def on_enter_moving(self) -> None:
        self.motion = self.driver.move_joints(self.params.waypoints, self.params.speed)

    def check_moving(self) -> str | None:
        goal = self.params.waypoints[-1]
        error = max(abs(a - b) for a, b in zip(self.driver.joint_state().positions, goal))
        return f"ended {error:.3f} rad from the goal" if error > 0.02 else None
