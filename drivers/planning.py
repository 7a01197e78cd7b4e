"""From user via-points to a checked trajectory: the part every driver (and the twin's own
move ops) shares, so a command is planned and checked the same way whatever executes it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cellctl.drivers import trajectory
from cellctl.drivers.envelope import check_point, check_positions, check_trajectory
from cellctl.drivers.errors import LimitViolation
from cellctl.drivers.kinematics import Kinematics
from cellctl.drivers.types import Pose, RobotDescription, Trajectory


def kinematics_for(desc: RobotDescription) -> Kinematics:
    return Kinematics(desc.urdf, desc.base, desc.tcp_link, desc.tcp_offset, desc.joint_names, desc.lower, desc.upper)


def joint_motion(desc: RobotDescription, kin: Kinematics, start: Sequence[float],
                 waypoints: Sequence[Sequence[float]], speed: float = 1.0) -> Trajectory:
    """Plan start → via-points → goal and check it against the whole envelope."""
    if not 0.0 < speed <= 1.0:
        raise LimitViolation(f"speed must be in (0, 1], got {speed}")
    try:
        wp = np.asarray(waypoints, dtype=float).reshape(-1, desc.dof)
    except ValueError:
        raise LimitViolation(f"each via-point needs {desc.dof} joint values ({', '.join(desc.joint_names)})") from None
    if not np.all(np.isfinite(wp)):
        raise LimitViolation("via-points contain NaN or infinite values")
    check_positions(desc, wp)  # before planning: a typo of 1e5 rad must not become a huge plan
    try:
        traj = trajectory.plan(desc.joint_names, np.vstack([np.asarray(start, dtype=float), wp]),
                               desc.max_velocity, desc.max_acceleration, speed)
    except ValueError as exc:
        raise LimitViolation(str(exc)) from None
    check_trajectory(desc, traj, kin.tcp_positions)
    return traj


def pose_motion(desc: RobotDescription, kin: Kinematics, start: Sequence[float],
                poses: Sequence[Pose], speed: float = 1.0) -> Trajectory:
    """Solve each Cartesian via-point by IK (seeded by the previous one), then as joint_motion."""
    for i, pose in enumerate(poses):
        check_point(desc, kin.to_world(pose).position, f"TCP target {i + 1}")  # before IK: nothing to solve
    q = np.asarray(start, dtype=float)
    solutions = []
    for pose in poses:
        q = kin.ik(pose, q)
        solutions.append(q)
    return joint_motion(desc, kin, start, solutions, speed)
