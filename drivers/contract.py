"""The driver contract: the only thing skills and cells see of a robot.

Every call returns at once. Motions return a :class:`Motion` handle that the caller polls from
its tick (``status``) or cancels; nothing here blocks for the length of a motion. Errors come
from :mod:`cellctl.drivers.errors`. Commands outside the robot's envelope raise ``LimitViolation``
before anything leaves the process.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from cellctl.drivers.types import GripperCommand, GripperState, JointState, MotionStatus, Pose, RobotDescription


@runtime_checkable
class Motion(Protocol):
    """Handle on something the robot is doing (a trajectory or a gripper actuation)."""

    @property
    def status(self) -> MotionStatus: ...

    @property
    def reason(self) -> str | None:
        """Why it failed or was cancelled; None while running or on success."""

    @property
    def link_lost(self) -> bool:
        """It failed because the robot could not be reached: its outcome says nothing about the task."""

    def cancel(self) -> None: ...


class RobotKinematics(Protocol):
    """The robot's kinematics from its URDF and configured TCP (``drivers/kinematics.py``)."""

    def fk(self, positions: Sequence[float]) -> Pose:
        """World pose of the TCP at these joint positions."""

    def ik(self, pose: Pose, seed: Sequence[float]) -> Sequence[float]:
        """Joint positions putting the TCP at ``pose`` (``Unreachable`` when none is found)."""


@runtime_checkable
class RobotDriver(Protocol):
    def connect(self) -> None: ...

    def close(self) -> None: ...

    def describe(self) -> RobotDescription: ...

    @property
    def kinematics(self) -> RobotKinematics:
        """FK/IK for this robot: skills turn poses into approach poses with it."""

    def joint_state(self) -> JointState: ...

    def move_joints(self, waypoints: Sequence[Sequence[float]], speed: float = 1.0) -> Motion:
        """Move through joint-space via-points (the last is the goal), time-parameterised under
        the configured velocity/acceleration limits scaled by ``speed`` (0 < speed <= 1)."""

    def move_pose(self, poses: Sequence[Pose], speed: float = 1.0) -> Motion:
        """Move the TCP through Cartesian via-points; each is solved by IK, then as move_joints."""

    def gripper(self, command: GripperCommand) -> Motion: ...

    def gripper_state(self) -> GripperState: ...

    def read_io(self, name: str) -> bool: ...

    def write_io(self, name: str, value: bool) -> None: ...

    def now(self) -> float:
        """Control time: sim time on the twin, wall or /clock time on a real robot."""

    def stop(self) -> None:
        """Cancel whatever moves and hold position."""
