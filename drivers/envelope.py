"""The safety envelope: every trajectory is checked here before it leaves the process.

This is a guard against mistakes (a typo in a via-point, a wrong frame), **not a safety
function**: real safety stays with the robot controller and the cell's hardware.
Checks: joint names, position limits, velocity and acceleration limits (on the sampled
trajectory, so on what the robot will actually be asked to do), and the TCP staying inside the
workspace box (FK along the sampled path).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from drivers.errors import LimitViolation
from drivers.types import Pose, RobotDescription, Trajectory

_POS_TOL = 1e-6
_RATE_TOL = 1.02  # sampled finite differences overshoot analytic limits by rounding only


def check_trajectory(
    desc: RobotDescription, traj: Trajectory, fk: Callable[[Sequence[float]], Pose] | None = None
) -> None:
    """Raise LimitViolation naming the first broken limit (joint, sample time, value, limit)."""
    if tuple(traj.joint_names) != desc.joint_names:
        raise LimitViolation(f"joint names {list(traj.joint_names)} do not match the robot's {list(desc.joint_names)}")
    times, pos = traj.times, traj.positions
    if pos.ndim != 2 or pos.shape != (len(times), desc.dof):
        raise LimitViolation(f"positions must be {len(times)}x{desc.dof}, got {list(pos.shape)}")
    if not np.all(np.isfinite(pos)) or not np.all(np.isfinite(times)):
        raise LimitViolation("trajectory contains NaN or infinite values")
    if len(times) > 1 and np.any(np.diff(times) <= 0):
        raise LimitViolation("trajectory times must be strictly increasing")
    lower, upper = np.asarray(desc.lower), np.asarray(desc.upper)
    _first_violation(pos < lower - _POS_TOL, pos, lower, times, desc, "below its lower limit")
    _first_violation(pos > upper + _POS_TOL, pos, upper, times, desc, "above its upper limit")
    if len(times) > 1:
        dt = np.diff(times)[:, None]
        vel = np.diff(pos, axis=0) / dt
        vmax = np.asarray(desc.max_velocity)
        _first_violation(np.abs(vel) > vmax * _RATE_TOL + 1e-9, vel, vmax, times[1:], desc, "faster than its velocity limit")
        if len(times) > 2:
            mid = 0.5 * (dt[1:] + dt[:-1])
            acc = np.diff(vel, axis=0) / mid
            amax = np.asarray(desc.max_acceleration)
            _first_violation(np.abs(acc) > amax * _RATE_TOL + 1e-9, acc, amax, times[1:-1], desc,
                             "beyond its acceleration limit")
    if fk is not None:
        check_workspace(desc, pos, times, fk)


def check_workspace(desc: RobotDescription, positions: np.ndarray, times: np.ndarray,
                    fk: Callable[[Sequence[float]], Pose]) -> None:
    lo, hi = np.asarray(desc.workspace_min), np.asarray(desc.workspace_max)
    for t, q in zip(times, positions):
        p = np.asarray(fk(q).position)
        if np.any(p < lo) or np.any(p > hi):
            raise LimitViolation(
                f"TCP leaves the workspace box at t={t:.2f}s: {np.round(p, 3).tolist()} "
                f"not within {list(desc.workspace_min)}..{list(desc.workspace_max)}"
            )


def _first_violation(mask: np.ndarray, values: np.ndarray, limit: np.ndarray, times: np.ndarray,
                     desc: RobotDescription, what: str) -> None:
    if not mask.any():
        return
    i, j = np.argwhere(mask)[0]
    raise LimitViolation(
        f"joint {desc.joint_names[j]} {what} at t={times[i]:.2f}s: {values[i, j]:.4f} (limit {limit[j]:.4f})"
    )
