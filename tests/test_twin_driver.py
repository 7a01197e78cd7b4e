"""The twin driver against a real twin server in its own process."""

from __future__ import annotations

import numpy as np
import pytest

from cellctl.drivers.conformance import check_driver
from cellctl.drivers.errors import ConnectionLost, LimitViolation, Unreachable
from cellctl.drivers.geometry import facing
from cellctl.drivers.twin import TwinDriver
from cellctl.drivers.types import GripperCommand, MotionStatus, Pose
from cellctl.drivers.wait import wait
from tests.conftest import CONFIGS

pytestmark = pytest.mark.process  # starts twins, cells, launchers or bridges

GAP, HOVER = 0.005, 0.10  # suction cup above the part top; approach height


@pytest.mark.parametrize("config,robot", [("kuka.yaml", "press"), ("panda.yaml", "arm")])
def test_check_driver_passes(twin_factory, config, robot):
    twin = twin_factory(CONFIGS / config)
    with TwinDriver(twin.endpoint, robot, timeout=1.0) as driver:
        passed = check_driver(driver, break_link=twin.kill)
    assert passed == ["describe", "small move", "cancel", "limits", "gripper", "io", "now", "connection lost"]


def _pose(driver: TwinDriver, xyz, dz: float) -> Pose:
    home = driver.kinematics.fk(driver.describe().home)
    pos = (xyz[0], xyz[1], xyz[2] + dz)
    return Pose(pos, facing(home, driver.describe().base, pos))


def _part(driver: TwinDriver, part_id: str) -> dict:
    return next(p for p in driver.request("list_parts") if p["id"] == part_id)


def test_pick_and_place_carries_the_part(twin_factory):
    """In lockstep: the TCP and the part are read between two grants, so both readings are of the
    same sim instant however busy the machine is."""
    twin = twin_factory(CONFIGS / "kuka_lockstep.yaml")
    with TwinDriver(twin.endpoint, "press") as kuka:
        _carry(kuka)


def _carry(kuka: TwinDriver) -> None:
    src, dst, grip = (0.55, -0.35, 0.3), (0.55, 0.35, 0.3), 0.04 + GAP
    assert wait(kuka.move_pose([_pose(kuka, src, grip + HOVER)])) is MotionStatus.SUCCEEDED
    assert wait(kuka.move_pose([_pose(kuka, src, grip)], speed=0.5)) is MotionStatus.SUCCEEDED
    assert wait(kuka.gripper(GripperCommand.CLOSE)) is MotionStatus.SUCCEEDED
    state = kuka.gripper_state()
    assert state.part_present and state.part_id == "part-1"
    assert wait(kuka.move_pose([_pose(kuka, src, grip + HOVER)], speed=0.5)) is MotionStatus.SUCCEEDED

    motion = kuka.move_pose([_pose(kuka, dst, grip + HOVER)], speed=0.3)
    samples = []
    while not motion.status.done:
        tcp = kuka.kinematics.fk(kuka.joint_state().positions).position
        samples.append((np.asarray(tcp), np.asarray(_part(kuka, "part-1")["position"])))
        kuka.clock.advance()  # one control period passes between samples, none during one
    assert motion.status is MotionStatus.SUCCEEDED
    ys = [part[1] for _, part in samples]
    mid = [part for _, part in samples if -0.25 < part[1] < 0.25]
    assert mid, "no sample caught the part between the stations: it was not carried"
    assert all(b >= a - 1e-3 for a, b in zip(ys, ys[1:])), "the part jumped backwards"
    for tcp, part in samples:  # the part hangs under the suction cup all the way
        assert np.linalg.norm(tcp - (part + [0, 0, 0.02])) < 0.015

    assert wait(kuka.move_pose([_pose(kuka, dst, grip)], speed=0.5)) is MotionStatus.SUCCEEDED
    assert wait(kuka.gripper(GripperCommand.OPEN)) is MotionStatus.SUCCEEDED
    assert wait(kuka.move_pose([_pose(kuka, dst, grip + HOVER)])) is MotionStatus.SUCCEEDED
    part = _part(kuka, "part-1")
    assert part["held_by"] is None
    assert np.allclose(part["position"], [dst[0], dst[1], dst[2] + 0.02], atol=0.01)
    assert kuka.request("faults") == []


def test_gripper_5cm_away_does_not_attach(kuka):
    src = (0.55, -0.35, 0.3)
    assert wait(kuka.move_pose([_pose(kuka, src, 0.04 + 0.05)])) is MotionStatus.SUCCEEDED
    assert wait(kuka.gripper(GripperCommand.CLOSE)) is MotionStatus.SUCCEEDED
    state = kuka.gripper_state()
    assert state.state == "closed" and not state.part_present and state.part_id is None


def test_out_of_reach_raises_unreachable_before_any_motion(kuka):
    before = kuka.request("request_log")
    with pytest.raises(Unreachable, match="no joint solution for TCP at"):
        kuka.move_pose([Pose((1.4, 0.0, 0.3), (0, 1, 0, 0))])  # in the workspace box, out of reach
    log = kuka.request("request_log", since=before[-1]["seq"])
    assert [r["op"] for r in log if r["op"] in ("execute", "move_joints", "move_pose")] == []
    assert kuka.commands_sent == 0


def test_workspace_box_is_checked_along_the_path(twin_factory, tmp_path):
    config = (CONFIGS / "kuka.yaml").read_text().replace(
        "io: {lamp: false}", "io: {lamp: false}\n    workspace: {min: [-1, -1, 0.25], max: [1, 1, 1.5]}")
    path = tmp_path / "boxed.yaml"
    path.write_text(config)
    twin = twin_factory(path)
    with TwinDriver(twin.endpoint, "press") as driver:
        with pytest.raises(LimitViolation, match="not within the workspace box"):  # the target: before IK
            driver.move_pose([_pose(driver, (0.55, -0.35, 0.0), 0.1)])
        with pytest.raises(LimitViolation, match="TCP leaves the workspace box"):  # the path: FK along it
            driver.move_joints([[0.0, 1.0, 0.0, -1.8, 0.0, 0.0, 0.0]])
        assert driver.commands_sent == 0


def test_driver_recovers_when_the_server_comes_back(twin_factory):
    twin = twin_factory(CONFIGS / "kuka.yaml")  # on a port of its own choosing, read back
    port = int(twin.endpoint.rsplit(":", 1)[1])
    driver = TwinDriver(twin.endpoint, "press", timeout=0.5)
    driver.connect()
    assert driver.joint_state().names[0] == "lbr_iiwa_joint_1"
    twin.kill()
    with pytest.raises(ConnectionLost, match="did not answer 'joint_state' within 0.5s"):
        driver.joint_state()
    twin_factory(CONFIGS / "kuka.yaml", port=port)
    assert driver.joint_state().names[0] == "lbr_iiwa_joint_1"
    driver.close()
