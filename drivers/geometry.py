"""Small quaternion helpers (x, y, z, w) in numpy, so skills can build poses without pybullet."""

from __future__ import annotations

import math
from collections.abc import Sequence

from cellctl.drivers.types import Pose, Quat


def quat_multiply(a: Sequence[float], b: Sequence[float]) -> Quat:
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return (
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
        aw * bw - ax * bx - ay * by - az * bz,
    )


def yaw_quat(yaw: float) -> Quat:
    return (0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2))


def facing(reference: Pose, base: Pose, target: Sequence[float]) -> Quat:
    """The reference TCP orientation (e.g. at home, tool pointing down) turned about the world
    z axis so that it faces ``target`` from the robot's base as it faced the reference position.
    Keeps the wrist near its home angle wherever the target is, instead of one fixed yaw that
    drives the last joint to its limit on one side of the robot."""
    bx, by = base.position[0], base.position[1]
    ref_yaw = math.atan2(reference.position[1] - by, reference.position[0] - bx)
    yaw = math.atan2(target[1] - by, target[0] - bx)
    return quat_multiply(yaw_quat(yaw - ref_yaw), reference.orientation)
