"""The in-process FakeDriver (drivers/fake.py): the driver contract without a twin or a socket,
for unit tests of skills and cells in milliseconds. It passes the same conformance checks as the
real drivers; skills and a whole cell run on it unchanged. These add to the process-level tests
on the real twin, they do not replace them."""

from __future__ import annotations

import time

import pytest

from cellctl.config.loader import load_config
from cellctl.custody.ledger import DELIVERED, Ledger
from cellctl.config.paths import CONFIG_DIR
from cellctl.testkit.harness import FakeCell
from cellctl.drivers.conformance import check_driver
from cellctl.drivers.errors import ConnectionLost, LimitViolation
from cellctl.drivers.fake import FakeDriver
from cellctl.drivers.fake_world import FakeWorld
from cellctl.drivers.types import GripperCommand, MotionStatus
from cellctl.drivers.wait import wait
from cellctl.skills.context import SkillContext
from cellctl.skills.registry import create
from cellctl.skills.runner import run
from tests.conftest import CONFIGS

ONE_CELL = CONFIGS / "one_cell.yaml"


@pytest.fixture
def world_and_robot():
    config = load_config(CONFIG_DIR / "demo_cell.yaml")
    world = FakeWorld.from_config(config)
    robot = FakeDriver.from_config("press", config.robots["press"], world)
    stations = {n: s.position for n, s in config.stations.items()}
    yield world, robot, SkillContext.create(robot, stations=stations, locate=world.locate)
    robot.close()


def test_the_fake_driver_passes_the_conformance_checks_in_virtual_time(world_and_robot):
    world, robot, _ = world_and_robot
    wall = time.monotonic()
    passed = check_driver(robot, break_link=robot.break_link)
    assert passed == ["describe", "small move", "cancel", "limits", "gripper", "io", "now", "connection lost"]
    assert robot.commands_sent == 2  # the out-of-limit target never left the process
    assert time.monotonic() - wall < 5.0  # no sleeping: virtual time jumps to each motion's end
    with pytest.raises(ConnectionLost):
        robot.joint_state()


def test_pick_and_place_carry_the_part_between_stations(world_and_robot):
    world, robot, ctx = world_and_robot
    assert world.occupant("infeed") == "part-1" and world.occupant("outfeed") is None
    assert run(create("pick", ctx, {"station": "infeed"})).ok
    assert robot.gripper_state().part_id == "part-1" and world.occupant("infeed") is None
    assert run(create("place", ctx, {"station": "outfeed"})).ok
    assert world.occupant("outfeed") == "part-1" and not robot.gripper_state().part_present
    assert world.dropped == []


def test_a_pick_from_an_empty_station_fails_with_a_reason(world_and_robot):
    world, robot, ctx = world_and_robot
    del world.parts["part-1"]
    result = run(create("pick", ctx, {"station": "infeed"}))
    assert not result.ok and "no part attached" in result.reason


def test_a_target_outside_the_limits_is_refused_before_it_is_sent(world_and_robot):
    _, robot, _ = world_and_robot
    beyond = list(robot.describe().home)
    beyond[0] = robot.describe().upper[0] + 0.5
    with pytest.raises(LimitViolation):
        robot.move_joints([beyond])
    assert robot.commands_sent == 0


def test_a_cancelled_motion_stops_where_it_was(world_and_robot):
    _, robot, _ = world_and_robot
    goal = list(robot.describe().home)
    goal[0] += 1.0
    motion = robot.move_joints([goal], speed=0.3)
    robot.clock.advance(robot.now() + 0.5)
    motion.cancel()
    stopped = robot.joint_state().positions
    robot.clock.advance(robot.now() + 5.0)
    assert motion.status is MotionStatus.CANCELLED
    assert robot.joint_state().positions == stopped and max(map(abs, robot.joint_state().velocities)) == 0.0


def test_a_broken_link_fails_the_skill_in_flight_never_succeeds_it(world_and_robot):
    _, robot, ctx = world_and_robot
    skill = create("pick", ctx, {"station": "infeed"})
    assert skill.tick() is None  # approach under way
    robot.break_link()
    result = run(skill)
    assert not result.ok and result.link_lost, result
    robot.restore_link()
    assert wait(robot.gripper(GripperCommand.OPEN)) is MotionStatus.SUCCEEDED


def test_a_cell_finishes_its_work_order_from_feed_to_sink_in_milliseconds(tmp_path):
    """The real Cell (PackML, skill sequence, custody in SQLite) on the fake: 5 parts, one config."""
    wall = time.monotonic()
    fake = FakeCell(ONE_CELL, "press", tmp_path / "ledger.sqlite")
    fake.run_until("Complete")
    assert fake.cell.parts_done == 5
    assert [e["part"] for e in fake.world.log if e["event"] == "consumed"] == [f"part-{i}" for i in range(1, 6)]
    assert Ledger(tmp_path / "ledger.sqlite").count(DELIVERED) == 5
    states = [e["dest"] for e in fake.events.events if e["kind"] == "packml"]
    assert states == ["Resetting", "Idle", "Starting", "Execute", "Completing", "Complete"]
    assert fake.world.clock.now() > 5 * 2.0 - 2.0  # the feed's schedule (a part every 2 s) was kept
    assert time.monotonic() - wall < 20.0


def test_a_cell_whose_robot_link_breaks_is_held_and_says_why(tmp_path):
    fake = FakeCell(ONE_CELL, "press", tmp_path / "ledger.sqlite")
    fake.run_until("Execute")
    for _ in range(20):  # into its first part
        fake.cell.tick()
        fake.world.clock.advance(fake.cell.wake_hint())
    fake.driver.break_link()
    fake.run_until("Held", start=False)
    status = fake.cell.status()
    assert "lost" in status["fault"] and status["fault_kind"] == "twin_lost" and status["fault_source"] == "twin"
