"""Trajectories respect the limits they were planned under; the envelope catches what breaks them;
IK round-trips and refuses what it cannot reach."""

from __future__ import annotations

import numpy as np
import pytest

from cellctl.drivers import trajectory
from cellctl.drivers.envelope import check_trajectory
from cellctl.drivers.errors import LimitViolation, Unreachable
from cellctl.drivers.kinematics import Kinematics
from cellctl.drivers.types import Pose, RobotDescription, Trajectory
from cellctl.drivers.robot_config import MODELS

KUKA = MODELS["kuka_iiwa"]
LOWER = (-2.96, -2.09, -2.96, -2.09, -2.96, -2.09, -3.05)
DESC = RobotDescription(
    name="r", model="kuka_iiwa", urdf=KUKA.urdf, joint_names=KUKA.joints, lower=LOWER,
    upper=tuple(-v for v in LOWER), max_velocity=KUKA.max_velocity, max_acceleration=KUKA.max_acceleration,
    base=Pose((0.0, 0.0, 0.0)), tcp_link=KUKA.tcp_link, tcp_offset=KUKA.tcp_offset,
    workspace_min=(-1.5, -1.5, -0.05), workspace_max=(1.5, 1.5, 2.0), home=KUKA.home,
)


@pytest.fixture(scope="module")
def kin():
    k = Kinematics(DESC.urdf, DESC.base, DESC.tcp_link, DESC.tcp_offset, DESC.joint_names, DESC.lower, DESC.upper)
    yield k
    k.close()


@pytest.mark.parametrize("speed", [1.0, 0.5, 0.1])
def test_planned_trajectory_stays_within_limits(speed):
    rng = np.random.default_rng(7)
    waypoints = np.vstack([KUKA.home, rng.uniform(-1, 1, (3, 7))])
    traj = trajectory.plan(KUKA.joints, waypoints, KUKA.max_velocity, KUKA.max_acceleration, speed)
    check_trajectory(DESC, traj)  # raises if any sample breaks a limit
    for wp in waypoints[1:]:  # passes through every via-point
        assert np.min(np.max(np.abs(traj.positions - wp), axis=1)) < 1e-9
    assert np.allclose(traj.positions[-1], waypoints[-1])
    vel = np.abs(np.diff(traj.positions, axis=0) / np.diff(traj.times)[:, None])
    assert vel.max() <= max(KUKA.max_velocity) * speed * 1.02
    # the slowest joint uses most of its limit: the profile is not needlessly slow
    assert (vel / np.asarray(KUKA.max_velocity)).max() > 0.6 * speed


def test_envelope_rejects_position_and_velocity_violations():
    times = np.array([0.0, 0.1])
    over = np.array([KUKA.home, KUKA.home])
    over[1, 2] = 3.2
    with pytest.raises(LimitViolation, match="lbr_iiwa_joint_3 above its upper limit at t=0.10s"):
        check_trajectory(DESC, Trajectory(KUKA.joints, times, over))
    fast = np.array([KUKA.home, KUKA.home])
    fast[1, 0] += 0.5
    with pytest.raises(LimitViolation, match="lbr_iiwa_joint_1 faster than its velocity limit"):
        check_trajectory(DESC, Trajectory(KUKA.joints, times, fast))
    with pytest.raises(LimitViolation, match="do not match the robot's"):
        check_trajectory(DESC, Trajectory(("a",) * 7, times, np.array([KUKA.home] * 2)))


def test_ik_round_trip_and_unreachable(kin):
    target = kin.fk([0.3, 0.6, -0.2, -1.1, 0.1, 1.2, 0.2])
    q = kin.ik(target, KUKA.home)
    reached = kin.fk(q)
    assert np.linalg.norm(np.subtract(reached.position, target.position)) < 1e-3
    with pytest.raises(Unreachable, match=r"residual \d+\.\d mm"):
        kin.ik(Pose((2.0, 0.0, 0.5), target.orientation), KUKA.home)
    base_frame = kin.to_world(Pose((0.5, 0.0, 0.4), frame="base"))
    assert base_frame.position == pytest.approx((0.5, 0.0, 0.4))
