"""Robot entries of a config, as validated data (pydantic): which model (URDF), where its base is,
its TCP, its motion limits, workspace box, home and IO. They live beside the robot description
(``drivers/description.py``) because every driver needs them and the twin only reads them: the
config schema is one section per owner, reachable one way (``cellctl`` line → ``twin`` scene →
``drivers`` robots).

Pure data, no pybullet. Unknown keys are errors, because a misspelt key silently falling back to a
default is how a robot ends up somewhere unexpected.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, ValidationInfo, field_validator, model_validator

from cellctl.drivers.urdf_chain import UrdfError, read_arm, resolve

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


def _per_joint(value: float | Sequence[float], n: int) -> tuple[float, ...]:
    """A limit given once for every joint, or per joint."""
    return (float(value),) * n if isinstance(value, (int, float)) else tuple(value)


@functools.lru_cache(maxsize=64)
def _urdf_model(urdf: str, tcp_link: str, tcp_offset: Vec3, joints: tuple[str, ...],
                acceleration: float | tuple[float, ...]) -> RobotModel:
    arm = read_arm(urdf, tcp_link)
    chain = {j.name: j for j in arm.chain}
    if joints:
        unknown = [j for j in joints if j not in chain]
        if unknown:
            raise UrdfError(f"{urdf}: joints {', '.join(unknown)} are not movable joints between the root and "
                            f"{tcp_link} (those are: {', '.join(chain)})")
    names = joints or tuple(chain)
    home = tuple(0.0 if chain[n].lower <= 0.0 <= chain[n].upper else (chain[n].lower + chain[n].upper) / 2
                 for n in names)
    velocity = tuple(chain[n].velocity if chain[n].velocity > 0 else 1.0 for n in names)
    return RobotModel(urdf, names, tcp_link, tcp_offset, velocity, _per_joint(acceleration, len(names)), home)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PoseConfig(Strict):
    position: Vec3 = Field(description="m, world frame", examples=[[0.0, 0.0, 0.0]])
    orientation: Quat = Field((0.0, 0.0, 0.0, 1.0), description="quaternion x, y, z, w")


class TcpConfig(Strict):
    link: str = Field(description="the URDF link the tool is mounted on (the flange)", examples=["tool0"])
    offset: Vec3 = Field((0.0, 0.0, 0.0), description="m, in that link's frame: the tool's tip (the suction cup's "
                                                      "face); find it with `cellctl probe --pose`", examples=[[0.0, 0.0, 0.12]])


class BoxConfig(Strict):
    min: Vec3 = Field(description="m, world frame: the lowest corner")
    max: Vec3 = Field(description="m, world frame: the highest corner")

    @model_validator(mode="after")
    def _ordered(self) -> BoxConfig:
        if any(a >= b for a, b in zip(self.min, self.max)):
            raise ValueError(f"min {list(self.min)} must be below max {list(self.max)} on every axis")
        return self


Preset = Literal["twin", "ur", "franka", "kuka_lbr"]


class RosNamesConfig(Strict):
    """ROS names of one robot: a preset's, with any of them replaced. A name left out keeps the
    preset's; a topic or service set to ``null`` is switched off (the driver neither reads nor
    probes it): e.g. ``robot_mode: null`` on a UR whose dashboard topics are not bridged."""

    preset: Preset = Field(
        "twin", description="the names a common ROS 2 driver serves (docs/ros.md has the table)")
    joint_states: str | None = Field(None, description="sensor_msgs/msg/JointState topic (cannot be switched off)",
                                     examples=["/joint_states"])
    trajectory_action: str | None = Field(
        None, description="control_msgs/action/FollowJointTrajectory action (cannot be switched off)",
        examples=["/scaled_joint_trajectory_controller/follow_joint_trajectory"])
    gripper_action: str | None = Field(None, description="control_msgs/action/GripperCommand action; null: no gripper "
                                                         "action (a suction gripper on IO)")
    part_present: str | None = Field(None, description="std_msgs/msg/Bool topic: a part is in the gripper")
    stop_service: str | None = Field(None, description="std_srvs/srv/Trigger service that halts the arm; null: halt "
                                                       "with a holding goal")
    ready: str | None = Field(None, description="std_msgs/msg/Bool: the controller accepts goals")
    robot_mode: str | None = Field(None, description="ur_dashboard_msgs/msg/RobotMode topic; null: not read")
    safety_mode: str | None = Field(None, description="ur_dashboard_msgs/msg/SafetyMode topic; null: not read")
    io: dict[str, tuple[str, str]] | None = Field(None, description="IO name -> [state topic, set topic]")
    ur_io: dict[str, tuple[Literal["in", "out"], int]] | None = Field(
        None, description="UR IO: name -> [in|out, pin], read from ur_io_states (ur_msgs/msg/IOStates), outputs "
                          "set through ur_set_io (ur_msgs/srv/SetIO)")
    ur_io_states: str | None = Field(None, description="ur_msgs/msg/IOStates topic")
    ur_set_io: str | None = Field(None, description="ur_msgs/srv/SetIO service")
    gripper_open: float | None = Field(None, description="GripperCommand position that opens (Franka: 0.04, half "
                                                         "the finger width; Robotiq 2F: 0.0)")
    gripper_closed: float | None = Field(None, description="GripperCommand position that closes (Robotiq 2F-85: 0.8)")
    joint_states_throttle: int | None = Field(None, ge=0, le=1000, description="ms between joint states asked of "
                                                                               "the bridge (UR publishes at 500 Hz)")

    @model_validator(mode="after")
    def _required_names(self) -> RosNamesConfig:
        off = [k for k in ("joint_states", "trajectory_action") if k in self.model_fields_set and getattr(self, k) is None]
        if off:
            raise ValueError(f"a topic name for {' and '.join(off)}: a robot cannot run without it (null switches "
                             f"off optional names only)")
        return self

    def switched_off(self) -> set[str]:
        """The optional names this config sets to null: off, whatever the preset says."""
        return {k for k in SWITCHABLE if k in self.model_fields_set and getattr(self, k) is None}


# the names a config may switch off with null (the others keep the preset's when null or left out)
SWITCHABLE = ("gripper_action", "part_present", "stop_service", "ready", "robot_mode", "safety_mode",
              "ur_io_states", "ur_set_io")


class RosDriverConfig(Strict):
    """A robot reached through a rosbridge server (v2 protocol, ROS 2): its URL, the names it serves
    (a preset or a map), its clock, and the bridge's joint names where they differ from the URDF's."""

    url: str = Field(description="ws://HOST:PORT or wss://HOST:PORT")
    # a preset's name alone is read as {preset: NAME}: at run time ``names`` is always a RosNamesConfig
    names: RosNamesConfig | Preset = Field(RosNamesConfig(), description="a preset's name, or a map of names (with "
                                                                          "preset:)")
    clock: Literal["wall", "sim"] = Field("wall", description="sim: the robot's time is /clock")
    joints: dict[str, str] = Field(default_factory=dict, description="URDF joint name -> the bridge's joint name")
    ca: str | None = Field(None, description="wss only: a CA file to check the bridge's certificate with")
    accept_timeout: float = Field(3.0, gt=0, le=60, description="s a goal may go without feedback or a result "
                                                                 "before it fails as not served or rejected")

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        if not re.fullmatch(r"wss?://[^/:\s]+:\d{1,5}/?", url):
            raise ValueError("a rosbridge URL, ws://HOST:PORT or wss://HOST:PORT")
        return url.rstrip("/")

    @field_validator("names", mode="before")
    @classmethod
    def _preset(cls, names: object) -> object:
        return {"preset": names} if isinstance(names, str) else names


class DriverConfig(Strict):
    """How the robot is reached: the twin (default, no keys) or ``ros``."""

    ros: RosDriverConfig | None = Field(None, description="a real robot (or the twin's) behind a rosbridge server; "
                                                             "left out: the twin's own API")


class RobotConfig(Strict):
    """A robot: one of the known ``model``s, or any serial arm given by ``urdf:`` (a file, relative to
    the config file or in pybullet_data) with its ``tcp: {link, offset}``, ``max_acceleration`` and
    optionally ``joints`` (default: the movable joints from the URDF's root to the TCP link),
    ``max_velocity`` (default: the URDF's limits) and ``home`` (default: every joint at 0, or
    mid-range where 0 is outside its limits)."""

    model: Literal["kuka_iiwa", "franka_panda", "xarm"] | None = Field(None, description="a known arm (or give urdf)")
    urdf: str | None = Field(None, description="any serial arm: a URDF file, relative to the config or in "
                                               "pybullet_data (needs tcp and max_acceleration)", examples=["ur5e.urdf"])
    joints: list[str] | None = Field(None, description="urdf robots: the arm's joints, base to tip")
    driver: DriverConfig = Field(DriverConfig(), description="how the robot is reached: the twin (default) or ros")
    base: PoseConfig = Field(description="where its base stands in the world")
    tcp: TcpConfig | None = Field(None, description="the tool: its link and offset; default: the model's")
    max_velocity: PositiveFloat | list[PositiveFloat] | None = Field(
        None, description="rad/s: one value for every joint, or a list with one per joint; default: the model's "
                          "(the URDF's limits)", examples=[2.0, [2.0, 2.0, 3.0, 3.0, 3.0, 3.0]])
    max_acceleration: PositiveFloat | list[PositiveFloat] | None = Field(
        None, description="rad/s²: one value for every joint, or a list with one per joint; default: the model's "
                          "(required with urdf: URDFs carry no acceleration limits)", examples=[5.0])
    workspace: BoxConfig | None = Field(None, description="the safety envelope the TCP must stay in; default: 1.5 m "
                                                          "around the base, 5 cm below to 2 m above it")
    home: list[float] | None = Field(None, description="rad per joint: where Reset sends the arm; default: 0, or "
                                                       "mid-range")
    io: dict[str, bool] = Field(default_factory=dict, description="named digital IO and initial values")

    @model_validator(mode="before")
    @classmethod
    def _resolve_urdf(cls, data: object, info: ValidationInfo) -> object:
        if isinstance(data, dict) and isinstance(data.get("urdf"), str):
            base = (info.context or {}).get("base_dir")
            data = {**data, "urdf": resolve(data["urdf"], Path(base) if base else None)}
        return data

    @model_validator(mode="after")
    def _one_kind(self) -> RobotConfig:
        if (self.model is None) == (self.urdf is None):
            raise ValueError("exactly one of model (kuka_iiwa, franka_panda, xarm) or urdf (a file)")
        if self.urdf is not None and (self.tcp is None or self.max_acceleration is None):
            raise ValueError("tcp: {link, offset} and max_acceleration with urdf (URDFs carry no acceleration limits)")
        if self.model is not None and self.joints is not None:
            raise ValueError("joints only with urdf (a model's joints are known)")
        return self

    def problems(self, name: str) -> list[Problem]:
        """Per-joint lists must match the arm's joint count (a schema cannot say so); a URDF must
        be readable and hold the TCP link and the joints named."""
        try:
            spec = self.spec
        except UrdfError as exc:
            return [Problem(("robots", name, "urdf"), "a readable URDF with the TCP link", str(exc))]
        n, what = len(spec.joints), self.model or Path(spec.urdf).name
        found = [
            Problem(("robots", name, key), f"{n} values (one per joint of {what})", len(value))
            for key in ("max_velocity", "max_acceleration", "home")
            if isinstance(value := getattr(self, key), list) and len(value) != n
        ]
        if self.urdf is not None and not spec.joints:
            found.append(Problem(("robots", name, "tcp", "link"), "a link with movable joints between it and the root",
                                 self.tcp.link))
        ros = self.driver.ros
        for joint in (ros.joints if ros else {}):
            if joint not in spec.joints:
                found.append(Problem(("robots", name, "driver", "ros", "joints", joint),
                                     f"a joint of {what} ({', '.join(spec.joints)})", joint))
        if ros and ros.ca and not ros.url.startswith("wss://"):
            found.append(Problem(("robots", name, "driver", "ros", "ca"), "a CA file only with a wss:// url", ros.url))
        return found

    # Resolved values: the config's where given, else the model's.
    @property
    def spec(self) -> RobotModel:
        """The model's data, or the same read from the URDF (UrdfError if it cannot be)."""
        if self.model is not None:
            return MODELS[self.model]
        acceleration = self.max_acceleration
        return _urdf_model(self.urdf, self.tcp.link, tuple(self.tcp.offset), tuple(self.joints or ()),
                           tuple(acceleration) if isinstance(acceleration, list) else acceleration)

    @property
    def kind(self) -> str:
        """The model's name, or the URDF file's."""
        return self.model or Path(self.urdf).stem

    @property
    def tcp_link(self) -> str:
        return self.tcp.link if self.tcp else self.spec.tcp_link

    @property
    def tcp_offset(self) -> Vec3:
        return self.tcp.offset if self.tcp else self.spec.tcp_offset

    @property
    def velocity_limits(self) -> tuple[float, ...]:
        spec = self.spec
        return _per_joint(self.max_velocity, len(spec.joints)) if self.max_velocity else spec.max_velocity

    @property
    def acceleration_limits(self) -> tuple[float, ...]:
        spec = self.spec
        return _per_joint(self.max_acceleration, len(spec.joints)) if self.max_acceleration else spec.max_acceleration

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
