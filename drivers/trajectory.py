"""Time-parameterisation of joint via-points under per-joint velocity and acceleration limits.

Each segment between via-points is a synchronised trapezoidal velocity profile: every joint
starts and stops together, at rest at each via-point. The acceleration fraction of the profile is
chosen per segment to give the shortest duration that keeps *every* joint inside its limits
(a common-shape profile, so no joint is ever scaled past its own limit). Motion planning around
obstacles is a non-goal: users give via-points.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cellctl.drivers.types import Trajectory

SAMPLE_DT = 0.02
MAX_DURATION = 600.0  # s: a longer motion is a mistake (a tiny speed factor), refused before sampling
_ALPHAS = np.linspace(0.05, 0.5, 46)  # candidate accel fractions of a segment's duration


def segment_duration(delta: np.ndarray, vmax: np.ndarray, amax: np.ndarray) -> tuple[float, float]:
    """Shortest duration and its accel fraction for a rest-to-rest move of ``delta``.

    With accel time ``alpha*T``, the peak velocity is d/((1-alpha)T) and the acceleration
    d/(alpha(1-alpha)T^2); each joint's limits give a lower bound on T."""
    d = np.abs(delta)[:, None]
    a = _ALPHAS[None, :]
    t_vel = d / (vmax[:, None] * (1 - a))
    t_acc = np.sqrt(d / (amax[:, None] * a * (1 - a)))
    t_needed = np.maximum(t_vel, t_acc).max(axis=0)
    best = int(np.argmin(t_needed))
    return float(t_needed[best]), float(_ALPHAS[best])


def _profile(tau: np.ndarray, alpha: float) -> np.ndarray:
    """Normalised trapezoid s(tau), tau and s in [0, 1]."""
    vp = 1.0 / (1.0 - alpha)
    acc = vp / alpha
    s = np.where(
        tau < alpha,
        0.5 * acc * tau**2,
        np.where(
            tau <= 1 - alpha,
            0.5 * acc * alpha**2 + vp * (tau - alpha),
            1.0 - 0.5 * acc * (1 - tau) ** 2,
        ),
    )
    return np.clip(s, 0.0, 1.0)


def _profile_rate(tau: np.ndarray, alpha: float) -> np.ndarray:
    """ds/dtau of the same trapezoid."""
    vp = 1.0 / (1.0 - alpha)
    return np.where(tau < alpha, vp * tau / alpha, np.where(tau <= 1 - alpha, vp, vp * (1 - tau) / alpha))


def plan(
    joint_names: Sequence[str],
    waypoints: np.ndarray,
    max_velocity: Sequence[float],
    max_acceleration: Sequence[float],
    speed: float = 1.0,
    dt: float = SAMPLE_DT,
) -> Trajectory:
    """Trajectory through ``waypoints`` (first row = start). ``speed`` scales velocity by speed
    and acceleration by speed², so a slower move keeps the same shape."""
    if not 0.0 < speed <= 1.0:
        raise ValueError(f"speed must be in (0, 1], got {speed}")
    wp = np.asarray(waypoints, dtype=float)
    vmax = np.asarray(max_velocity, dtype=float) * speed
    amax = np.asarray(max_acceleration, dtype=float) * speed**2
    times, positions, velocities = [np.zeros(1)], [wp[:1]], [np.zeros((1, wp.shape[1]))]
    t0 = 0.0
    for start, end in zip(wp[:-1], wp[1:]):
        delta = end - start
        if not np.any(np.abs(delta) > 1e-9):
            continue
        duration, alpha = segment_duration(delta, vmax, amax)
        if t0 + duration > MAX_DURATION:
            raise ValueError(f"the motion would last over {MAX_DURATION:.0f}s at speed {speed}")
        n = max(1, int(np.ceil(duration / dt)))
        tau = np.arange(1, n + 1) / n
        times.append(t0 + tau * duration)
        positions.append(start + np.outer(_profile(tau, alpha), delta))
        velocities.append(np.outer(_profile_rate(tau, alpha), delta) / duration)
        t0 += duration
    if t0 == 0.0:  # already there: a one-sample hold keeps every motion a real trajectory
        times.append(np.array([dt]))
        positions.append(wp[-1:])
        velocities.append(np.zeros((1, wp.shape[1])))
    return Trajectory(
        tuple(joint_names), np.concatenate(times), np.vstack(positions), np.vstack(velocities)
    )
