"""Robot entries of a config, as validated data (pydantic): which model (URDF), where its base is,
its TCP, its motion limits, workspace box, home and IO. They live beside the robot description
(``drivers/description.py``) because every driver needs them and the twin only reads them: the
config schema is one section per owner, reachable one way (``cellctl`` line → ``twin`` scene →
``drivers`` robots).

Pure data, no pybullet. Unknown keys are errors, because a misspelt key silently falling back to a
default is how a robot ends up somewhere unexpected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, model_validator

Vec3 = tuple[float, float, float]
Quat = tuple[float, float, float, float]


@dataclass(frozen=True)
class Problem:
    """One config problem: the key path, what was expected, what was found."""

    loc: tuple
    expected: str
    found: object

    def path(self) -> str:
        return ".".join(str(k) for k in self.loc) or "(top level)"


@dataclass(frozen=True)
class RobotModel:
    """Defaults for one robot model from pybullet_data. URDF velocity limits are often
    placeholders (kuka_iiwa's say 10 rad/s) and URDFs carry no acceleration limits, so the
    motion limits come from the makers' data sheets, reduced for a twin that tracks well."""

    urdf: str
    joints: tuple[str, ...]
    tcp_link: str
    tcp_offset: Vec3
    max_velocity: tuple[float, ...]
    max_acceleration: tuple[float, ...]
    home: tuple[float, ...]


MODELS: dict[str, RobotModel] = {
    "kuka_iiwa": RobotModel(
        urdf="kuka_iiwa/model.urdf",
        joints=tuple(f"lbr_iiwa_joint_{i}" for i in range(1, 8)),
        tcp_link="lbr_iiwa_link_7",
        tcp_offset=(0.0, 0.0, 0.05),
        max_velocity=(1.71, 1.71, 1.75, 2.27, 2.44, 3.14, 3.14),  # LBR iiwa 7 R800: 98..180 deg/s
        max_acceleration=(5.0,) * 7,
        home=(0.0, 0.5, 0.0, -1.2, 0.0, 1.4, 0.0),
    ),
    "franka_panda": RobotModel(
        urdf="franka_panda/panda.urdf",
        joints=tuple(f"panda_joint{i}" for i in range(1, 8)),
        tcp_link="panda_grasptarget",
        tcp_offset=(0.0, 0.0, 0.0),
        max_velocity=(2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61),  # Franka docs
        max_acceleration=(7.5, 3.75, 5.0, 6.25, 7.5, 10.0, 10.0),  # half of Franka's documented
        home=(0.0, -0.3, 0.0, -2.2, 0.0, 2.0, 0.785),
    ),
    "xarm": RobotModel(
        urdf="xarm/xarm6_robot.urdf",
        joints=tuple(f"joint{i}" for i in range(1, 7)),
        tcp_link="link6",
        tcp_offset=(0.0, 0.0, 0.05),
        max_velocity=(2.0,) * 6,  # xArm6: 180 deg/s max, reduced
        max_acceleration=(6.0,) * 6,
        home=(0.0, -0.3, -0.9, 0.0, 1.2, 0.0),
    ),
}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PoseConfig(Strict):
    position: Vec3
    orientation: Quat = (0.0, 0.0, 0.0, 1.0)


class TcpConfig(Strict):
    link: str
    offset: Vec3 = (0.0, 0.0, 0.0)


class BoxConfig(Strict):
    min: Vec3
    max: Vec3

    @model_validator(mode="after")
    def _ordered(self) -> BoxConfig:
        if any(a >= b for a, b in zip(self.min, self.max)):
            raise ValueError(f"min {list(self.min)} must be below max {list(self.max)} on every axis")
        return self


class RobotConfig(Strict):
    model: Literal["kuka_iiwa", "franka_panda", "xarm"]
    base: PoseConfig
    tcp: TcpConfig | None = None
    max_velocity: list[PositiveFloat] | None = Field(None, description="rad/s per joint; default from the model")
    max_acceleration: list[PositiveFloat] | None = Field(None, description="rad/s² per joint; default from the model")
    workspace: BoxConfig | None = None
    home: list[float] | None = None
    io: dict[str, bool] = Field(default_factory=dict, description="named digital IO and initial values")

    def problems(self, name: str) -> list[Problem]:
        """Per-joint lists must match the model's joint count (a schema cannot say so)."""
        n = len(MODELS[self.model].joints)
        return [
            Problem(("robots", name, key), f"{n} values (one per joint of {self.model})", len(value))
            for key in ("max_velocity", "max_acceleration", "home")
            if (value := getattr(self, key)) is not None and len(value) != n
        ]

    # Resolved values: the config's where given, else the model's.
    @property
    def spec(self) -> RobotModel:
        return MODELS[self.model]

    @property
    def tcp_link(self) -> str:
        return self.tcp.link if self.tcp else self.spec.tcp_link

    @property
    def tcp_offset(self) -> Vec3:
        return self.tcp.offset if self.tcp else self.spec.tcp_offset

    @property
    def velocity_limits(self) -> tuple[float, ...]:
        return tuple(self.max_velocity) if self.max_velocity else self.spec.max_velocity

    @property
    def acceleration_limits(self) -> tuple[float, ...]:
        return tuple(self.max_acceleration) if self.max_acceleration else self.spec.max_acceleration

    @property
    def home_position(self) -> tuple[float, ...]:
        return tuple(self.home) if self.home else self.spec.home

    @property
    def workspace_box(self) -> BoxConfig:
        """Default: 1.5 m around the base in x and y, from 5 cm below it to 2 m above it."""
        if self.workspace:
            return self.workspace
        x, y, z = self.base.position
        return BoxConfig(min=(x - 1.5, y - 1.5, z - 0.05), max=(x + 1.5, y + 1.5, z + 2.0))
