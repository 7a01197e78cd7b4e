"""Pure-data values of the driver contract.

Robot state is data, kept apart from the objects that do I/O (compas_fab's habit), so it can be
logged, compared in tests and sent over any wire unchanged. SI units; quaternions are (x, y, z, w).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

Vec3 = tuple[float, float, float]
Quat = tuple[float, float, float, float]


@dataclass(frozen=True)
class Pose:
    """A pose of the TCP (or of anything) in a named frame: ``world`` or the robot's ``base``."""

    position: Vec3
    orientation: Quat = (0.0, 0.0, 0.0, 1.0)
    frame: str = "world"


@dataclass(frozen=True)
class RobotDescription:
    """What ``describe()`` returns: everything needed to plan and check a motion locally."""

    name: str
    model: str
    urdf: str
    joint_names: tuple[str, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    max_velocity: tuple[float, ...]
    max_acceleration: tuple[float, ...]
    base: Pose
    tcp_link: str
    tcp_offset: Vec3
    workspace_min: Vec3
    workspace_max: Vec3
    home: tuple[float, ...]
    io_names: tuple[str, ...] = ()

    @property
    def dof(self) -> int:
        return len(self.joint_names)

    def to_wire(self) -> dict:
        return {
            **{k: getattr(self, k) for k in self.__dataclass_fields__ if k != "base"},
            "base": {"position": self.base.position, "orientation": self.base.orientation},
        }

    @classmethod
    def from_wire(cls, d: dict) -> RobotDescription:
        tuples = {k: tuple(v) for k, v in d.items() if isinstance(v, list)}
        base = Pose(tuple(d["base"]["position"]), tuple(d["base"]["orientation"]))
        return cls(**{**d, **tuples, "base": base})


@dataclass(frozen=True)
class JointState:
    names: tuple[str, ...]
    positions: tuple[float, ...]
    velocities: tuple[float, ...]
    stamp: float


@dataclass(frozen=True, eq=False)
class Trajectory:
    """A time-parameterised joint path: ``positions[i]`` is reached at ``times[i]`` (s from start).

    Drivers execute it as-is (the twin interpolates between samples, ROS sends them as
    FollowJointTrajectory points), so the limits checked on it are the limits the robot sees.
    """

    joint_names: tuple[str, ...]
    times: np.ndarray  # shape (n,)
    positions: np.ndarray  # shape (n, dof)
    velocities: np.ndarray = field(default=None)  # shape (n, dof); finite differences if None

    def __post_init__(self) -> None:
        if self.velocities is None:
            object.__setattr__(self, "velocities", _finite_velocities(self.times, self.positions))

    @property
    def duration(self) -> float:
        return float(self.times[-1])

    @property
    def goal(self) -> np.ndarray:
        return self.positions[-1]

    def to_wire(self) -> dict:
        return {
            "joint_names": list(self.joint_names),
            "times": self.times.tolist(),
            "positions": self.positions.tolist(),
            "velocities": self.velocities.tolist(),
        }

    @classmethod
    def from_wire(cls, d: dict) -> Trajectory:
        vel = d.get("velocities")
        return cls(
            tuple(d["joint_names"]),
            np.asarray(d["times"], dtype=float),
            np.asarray(d["positions"], dtype=float),
            None if vel is None else np.asarray(vel, dtype=float),
        )


def _finite_velocities(times: np.ndarray, positions: np.ndarray) -> np.ndarray:
    if len(times) < 2:
        return np.zeros_like(positions)
    return np.gradient(positions, times, axis=0)


class MotionStatus(str, enum.Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def done(self) -> bool:
        return self is not MotionStatus.RUNNING


class GripperCommand(str, enum.Enum):
    OPEN = "open"
    CLOSE = "close"


@dataclass(frozen=True)
class GripperState:
    """``state`` is open / closed / opening / closing; ``part_id`` is set where the backend
    knows which part it holds (the twin does; a real vacuum sensor only knows ``part_present``)."""

    state: str
    part_present: bool
    part_id: str | None = None
