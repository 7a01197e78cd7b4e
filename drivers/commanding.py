"""``move_joints`` and ``move_pose`` for every driver, written once.

A driver mixes this in and supplies ``describe()``, ``joint_state()`` and ``execute(trajectory)``.
Planning, IK and the safety envelope run here, in the caller's process, so a command outside the
envelope raises ``LimitViolation`` (or ``Unreachable``) before a byte reaches the robot.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cellctl.drivers.contract import Motion
from cellctl.drivers.kinematics import Kinematics
from cellctl.drivers.planning import joint_motion, kinematics_for, pose_motion
from cellctl.drivers.types import JointState, Pose, RobotDescription, Trajectory


class CommandingMixin:
    _kin: Kinematics | None = None
    commands_sent: int = 0  # trajectories that left the process (check_driver asserts on it)

    def describe(self) -> RobotDescription: ...

    def joint_state(self) -> JointState: ...

    def execute(self, trajectory: Trajectory) -> Motion:
        """Send a trajectory that has already passed the envelope."""
        raise NotImplementedError

    @property
    def kinematics(self) -> Kinematics:
        if self._kin is None:
            self._kin = kinematics_for(self.describe())
        return self._kin

    def close_kinematics(self) -> None:
        if self._kin is not None:
            self._kin.close()
            self._kin = None

    def move_joints(self, waypoints: Sequence[Sequence[float]], speed: float = 1.0) -> Motion:
        def plan() -> Trajectory:
            return joint_motion(self.describe(), self.kinematics, self.joint_state().positions, waypoints, speed)
        return self._send(plan(), plan)

    def move_pose(self, poses: Sequence[Pose], speed: float = 1.0) -> Motion:
        def plan() -> Trajectory:
            return pose_motion(self.describe(), self.kinematics, self.joint_state().positions, poses, speed)
        return self._send(plan(), plan)

    def _send(self, traj: Trajectory, replan: Callable[[], Trajectory] | None = None) -> Motion:
        """``replan`` plans the same motion again from where the arm is then: a driver that holds a
        goal before sending it (the ROS driver, behind a stop) plans it again when it lets it go."""
        self.commands_sent += 1
        return self.execute(traj)
