"""The safety envelope: every trajectory is checked here before it leaves the process.

This is a guard against mistakes (a typo in a via-point, a wrong frame), **not a safety
function**: real safety stays with the robot controller and the cell's hardware.
Checks: joint names, position limits, velocity and acceleration limits (on the sampled
trajectory and on the velocities sent with it, so on what the robot will actually be asked to
do), and the TCP staying inside the workspace box (FK along the sampled path). The cheap checks
(positions, Cartesian targets) also run *before* planning, so an absurd target costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from cellctl.drivers.errors import LimitViolation
from cellctl.drivers.types import RobotDescription, Trajectory

_POS_TOL = 1e-6
_RATE_TOL = 1.02  # sampled finite differences overshoot analytic limits by rounding only


def check_trajectory(
    desc: RobotDescription, traj: Trajectory, tcp_positions: Callable[[np.ndarray], np.ndarray] | None = None
) -> None:
    """Raise LimitViolation naming the first broken limit (joint, sample time, value, limit).
    ``tcp_positions`` (``Kinematics.tcp_positions``: the TCP for every sample at once) adds the
    workspace check."""
    if tuple(traj.joint_names) != desc.joint_names:
        raise LimitViolation(f"joint names {list(traj.joint_names)} do not match the robot's {list(desc.joint_names)}")
    times, pos = traj.times, traj.positions
    if pos.ndim != 2 or pos.shape != (len(times), desc.dof):
        raise LimitViolation(f"positions must be {len(times)}x{desc.dof}, got {list(pos.shape)}")
    if not np.all(np.isfinite(pos)) or not np.all(np.isfinite(times)):
        raise LimitViolation("trajectory contains NaN or infinite values")
    if len(times) > 1 and np.any(np.diff(times) <= 0):
        raise LimitViolation("trajectory times must be strictly increasing")
    check_positions(desc, pos, times)
    vmax = np.asarray(desc.max_velocity)
    if len(times) > 1:
        dt = np.diff(times)[:, None]
        vel = np.diff(pos, axis=0) / dt
        _first_violation(np.abs(vel) > vmax * _RATE_TOL + 1e-9, vel, vmax, times[1:], desc, "faster than its velocity limit")
        if len(times) > 2:
            mid = 0.5 * (dt[1:] + dt[:-1])
            acc = np.diff(vel, axis=0) / mid
            amax = np.asarray(desc.max_acceleration)
            _first_violation(np.abs(acc) > amax * _RATE_TOL + 1e-9, acc, amax, times[1:-1], desc,
                             "beyond its acceleration limit")
    given = traj.velocities  # what the controller is told to follow: the limits apply to it too
    if given is not None:
        if given.shape != pos.shape or not np.all(np.isfinite(given)):
            raise LimitViolation(f"velocities must be {len(times)}x{desc.dof} finite values")
        _first_violation(np.abs(given) > vmax * _RATE_TOL + 1e-9, given, vmax, times, desc,
                         "given a velocity beyond its limit")
    if tcp_positions is not None:
        check_workspace(desc, pos, times, tcp_positions)


def check_positions(desc: RobotDescription, pos: np.ndarray, times: np.ndarray | None = None) -> None:
    """Joint position limits: cheap, so it runs before anything expensive (planning, sampling).
    ``times`` None: ``pos`` are via-points."""
    lower, upper = np.asarray(desc.lower), np.asarray(desc.upper)
    _first_violation(pos < lower - _POS_TOL, pos, lower, times, desc, "below its lower limit")
    _first_violation(pos > upper + _POS_TOL, pos, upper, times, desc, "above its upper limit")


def check_point(desc: RobotDescription, position: Sequence[float], what: str) -> None:
    """A Cartesian target inside the workspace box (before IK: a target outside it can only fail)."""
    p = np.asarray(position, dtype=float)
    lo, hi = np.asarray(desc.workspace_min), np.asarray(desc.workspace_max)
    if p.shape != (3,) or not np.all(np.isfinite(p)) or np.any(p < lo) or np.any(p > hi):
        raise LimitViolation(f"{what} {np.round(p, 3).tolist()} is not within the workspace box "
                             f"{list(desc.workspace_min)}..{list(desc.workspace_max)}")


def check_workspace(desc: RobotDescription, positions: np.ndarray, times: np.ndarray,
                    tcp_positions: Callable[[np.ndarray], np.ndarray]) -> None:
    lo, hi = np.asarray(desc.workspace_min), np.asarray(desc.workspace_max)
    tcp = tcp_positions(positions)
    outside = np.flatnonzero(np.any((tcp < lo) | (tcp > hi), axis=1))
    if len(outside):
        i = outside[0]
        raise LimitViolation(
            f"TCP leaves the workspace box at t={times[i]:.2f}s: {np.round(tcp[i], 3).tolist()} "
            f"not within {list(desc.workspace_min)}..{list(desc.workspace_max)}"
        )


def _first_violation(mask: np.ndarray, values: np.ndarray, limit: np.ndarray, times: np.ndarray | None,
                     desc: RobotDescription, what: str) -> None:
    """``times`` None: the rows are via-points, named by their number."""
    if not mask.any():
        return
    i, j = np.argwhere(mask)[0]
    where = f"via-point {i + 1}" if times is None else f"t={times[i]:.2f}s"
    raise LimitViolation(f"joint {desc.joint_names[j]} {what} at {where}: {values[i, j]:.4f} (limit {limit[j]:.4f})")
