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


SLIDER_URDF = """<robot name="slider">
  <link name="base"><inertial><origin xyz="0.1 0 0.05"/><mass value="2"/><inertia ixx="0.1" iyy="0.1" izz="0.1" ixy="0" ixz="0" iyz="0"/></inertial></link>
  <link name="carriage"><inertial><mass value="1"/><inertia ixx="0.01" iyy="0.01" izz="0.01" ixy="0" ixz="0" iyz="0"/></inertial></link>
  <link name="arm"><inertial><origin xyz="0 0.1 0"/><mass value="1"/><inertia ixx="0.01" iyy="0.01" izz="0.01" ixy="0" ixz="0" iyz="0"/></inertial></link>
  <link name="wrist"><inertial><mass value="0.5"/><inertia ixx="0.01" iyy="0.01" izz="0.01" ixy="0" ixz="0" iyz="0"/></inertial></link>
  <link name="tool"><inertial><mass value="0.1"/><inertia ixx="0.001" iyy="0.001" izz="0.001" ixy="0" ixz="0" iyz="0"/></inertial></link>
  <joint name="slide" type="prismatic"><parent link="base"/><child link="carriage"/>
    <origin xyz="0 0 0.2" rpy="0 0.3 0"/><axis xyz="2 0 0"/><limit lower="-0.5" upper="0.5" effort="100" velocity="1"/></joint>
  <joint name="turn" type="continuous"><parent link="carriage"/><child link="arm"/>
    <origin xyz="0.1 0 0.1" rpy="0.2 0 -0.4"/><axis xyz="0 1 1"/></joint>
  <joint name="bend" type="revolute"><parent link="arm"/><child link="wrist"/>
    <origin xyz="0 0.3 0"/><limit lower="-2" upper="2" effort="10" velocity="1"/></joint>
  <joint name="flange" type="fixed"><parent link="wrist"/><child link="tool"/><origin xyz="0.05 0 0.1" rpy="0 0 0.7"/></joint>
</robot>"""


@pytest.mark.parametrize("model", ["kuka_iiwa", "franka_panda", "xarm", "slider"])
def test_tcp_positions_in_numpy_are_pybullets_forward_kinematics(model, tmp_path):
    """The envelope checks every sample's TCP with ``tcp_positions`` (the URDF's frames multiplied
    out in numpy): the same points as PyBullet's own FK, on a turned, shifted base with a TCP
    offset, for the shipped arms and a chain with a prismatic, a continuous and a fixed joint."""
    if model == "slider":
        (tmp_path / "slider.urdf").write_text(SLIDER_URDF)
        urdf, tip, joints, lower, upper = str(tmp_path / "slider.urdf"), "tool", ("slide", "turn", "bend"), \
            (-0.5, -3.1, -2.0), (0.5, 3.1, 2.0)
    else:
        m = MODELS[model]
        urdf, tip, joints, lower, upper = m.urdf, m.tcp_link, m.joints, (-2.0,) * len(m.joints), (2.0,) * len(m.joints)
    base = Pose((1.0, -2.0, 0.3), (0.0499792, -0.0978434, 0.8337, 0.5411))  # roughly rpy (0.1, -0.2, 2.0)
    base = Pose(base.position, tuple(np.asarray(base.orientation) / np.linalg.norm(base.orientation)))
    k = Kinematics(urdf, base, tip, (0.01, 0.02, 0.1), joints, lower, upper)
    try:
        qs = np.random.default_rng(3).uniform(lower, upper, (100, len(joints)))
        expected = np.array([k.fk(q).position for q in qs])
        assert np.abs(k.tcp_positions(qs) - expected).max() < 1e-6
    finally:
        k.close()


def test_the_workspace_check_names_the_first_sample_outside(kin):
    times = np.array([0.0, 10.0, 20.0])  # slow: only the workspace can be broken
    positions = np.array([KUKA.home, 0.5 * np.asarray(KUKA.home), np.zeros(7)])  # to upright, its TCP 1.2 m up
    tight = RobotDescription(**{**DESC.__dict__, "workspace_max": (1.5, 1.5, 1.0)})
    with pytest.raises(LimitViolation, match=r"TCP leaves the workspace box at t=10.00s: \[0\.535, 0\.0, 1\.034\] "
                                             r"not within \[-1.5, -1.5, -0.05\]..\[1.5, 1.5, 1.0\]"):  # the first one out
        check_trajectory(tight, Trajectory(KUKA.joints, times, positions), kin.tcp_positions)
    check_trajectory(DESC, Trajectory(KUKA.joints, times, positions), kin.tcp_positions)
