"""ACME's tests of its stamping cell, as its CI runs them: `pip install cellctl .` and `pytest`.
The fixtures (cellctl_line, cellctl_cell, cellctl_twin) come from cellctl's pytest plugin;
FakeDriver and FakeCell from cellctl itself."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import cellctl
from cellctl.config.loader import load_config
from cellctl.testkit.harness import FakeCell
from cellctl.drivers.fake import FakeDriver
from cellctl.drivers.fake_world import FakeWorld
from cellctl.skills.context import SkillContext
from cellctl.skills.registry import create
from cellctl.skills.runner import run

HERE = Path(__file__).resolve().parent.parent
LINE, CELL = HERE / "acme_line.yaml", HERE / "acme_cell.yaml"


def test_cellctl_is_the_installed_package_not_a_source_tree():
    assert Path(cellctl.__file__).is_relative_to(sysconfig.get_paths()["purelib"]), cellctl.__file__


def test_our_own_skills_and_drivers_packages_import_beside_cellctls():
    """cellctl adds one top-level name: our `skills` and `drivers` are ours, its are `cellctl.*`."""
    import drivers.stamper
    import skills.stamp

    import cellctl.drivers.errors
    import cellctl.skills.sequence

    purelib = Path(sysconfig.get_paths()["purelib"])
    for ours in (skills.stamp, drivers.stamper):
        assert Path(ours.__file__).is_relative_to(purelib / ours.__name__.split(".")[0]), ours.__file__
    for theirs in (cellctl.skills.sequence, cellctl.drivers.errors):
        assert Path(theirs.__file__).is_relative_to(purelib / "cellctl"), theirs.__file__
    assert not any(name.split(".")[0] == "twin" for name in sys.modules)


def test_cellctl_check_accepts_our_line_with_the_stamp_skill_from_our_entry_point():
    result = subprocess.run([sys.executable, "-m", "cellctl", "check", str(LINE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# -- unit tests on the fake driver: milliseconds, no twin ----------------------------------------
@pytest.fixture
def stamper():
    config = load_config(CELL)
    robot = FakeDriver.from_config("stamper", config.robots["stamper"], FakeWorld.from_config(config))
    yield robot, SkillContext.create(robot)
    robot.close()


def test_stamp_fires_the_output_for_its_dwell_then_releases_it(stamper):
    robot, ctx = stamper
    skill = create("stamp", ctx, {"dwell": 0.4})
    start = robot.now()
    assert skill.tick() is None and robot.read_io("stamper") is True
    result = run(skill)
    assert result.ok and robot.read_io("stamper") is False
    assert robot.now() - start == pytest.approx(0.4, abs=0.05)


def test_stamp_on_a_robot_without_the_output_fails_its_precondition(stamper):
    _, ctx = stamper
    result = run(create("stamp", ctx, {"io": "glue_gun"}))
    assert not result.ok and "glue_gun" in result.reason


def test_the_stamping_cell_logic_finishes_its_work_order_on_the_fake(tmp_path):
    fake = FakeCell(CELL, "stamping", tmp_path / "ledger.sqlite")
    fake.run_until("Complete")
    assert fake.cell.parts_done == 2
    stamps = [e for e in fake.events.events if e["kind"] == "skill" and e["skill"] == "stamp" and e["dest"] == "succeeded"]
    assert len(stamps) == 2


# -- process-level tests in the real twin ---------------------------------------------------------
def test_the_line_stamps_and_packs_every_part_once(cellctl_line):
    result = cellctl_line(LINE, parts=3)
    s = result.summary
    assert result.returncode == 0 and s["finished"], result.stderr[-2000:]
    assert s["parts_in"] == s["parts_out"] == 3 and s["lost"] == s["duplicated"] == s["stranded"] == 0, s
    result.assert_never(None, "Held")
    result.assert_never(None, "Aborted")
    for part in ("blank-1", "blank-2", "blank-3"):
        result.assert_visited(part, ["infeed", "handoff", "outfeed"])
    assert result.states("stamping")[-1] == "Complete"
    stamped = [e for e in result.events if e["kind"] == "skill" and e["skill"] == "stamp" and e["dest"] == "succeeded"]
    assert len(stamped) == 3


def test_an_operator_can_hold_and_resume_the_stamping_cell(cellctl_cell):
    cell = cellctl_cell(CELL, "stamping", parts=2)
    cell.command("Reset")
    cell.wait_state("Idle")
    cell.command("Start")
    cell.wait_state("Execute")
    cell.command("Hold")
    cell.wait_state("Held")
    cell.command("Unhold")
    assert cell.wait_state("Complete", timeout=120)["parts_done"] == 2


def test_the_twin_serves_our_robot_with_its_stamper_output(cellctl_twin):
    twin = cellctl_twin(CELL)
    with twin.driver("stamper") as robot:
        assert "stamper" in robot.describe().io_names
        robot.write_io("stamper", True)
        assert robot.read_io("stamper") is True
