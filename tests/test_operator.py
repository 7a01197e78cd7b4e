"""The operator's semantics in one process (a real Cell on a FakeDriver, virtual time): commands
are queued for the next tick and never refused as busy, an operator's Hold is the stop's reason,
recovered alarms go to the history, and a new work order runs after Complete without a restart."""

from __future__ import annotations

import pytest

from cellctl.cell.packml import Command, CommandRefused, State
from cellctl.cli.cells import status_line
from cellctl.faults import FaultKind, with_kind
from cellctl.testkit.harness import FakeCell
from tests.conftest import CONFIGS

ONE_CELL = CONFIGS / "one_cell.yaml"


def _tick(fake: FakeCell, times: int = 1) -> None:
    for _ in range(times):
        fake.cell.tick()
        fake.world.clock.advance(fake.cell.wake_hint())


def _events(fake: FakeCell, kind: str) -> list[dict]:
    return [e for e in fake.events.events if e["kind"] == kind]


def test_a_queued_command_applies_at_the_next_tick_and_says_who_sent_it(tmp_path):
    fake = FakeCell(ONE_CELL, "press", tmp_path / "ledger.sqlite")
    fake.run_until("Execute")
    fake.cell.queue(Command.HOLD, "cli")
    assert fake.cell.state == State.EXECUTE  # not yet: at its next tick
    _tick(fake)
    assert fake.cell.state in (State.HOLDING, State.HELD)
    given = _events(fake, "command")[-1]
    assert (given["command"], given["by"]) == ("Hold", "cli")
    status = fake.cell.status()
    assert (status["fault_kind"], status["fault"], status["fault_source"]) == \
        ("operator", "Hold by the operator (cli)", "operator cli")
    assert status["fault_since"]  # ISO wall time


def test_a_command_the_state_forbids_is_refused_at_once_with_the_reason(tmp_path):
    fake = FakeCell(ONE_CELL, "press", tmp_path / "ledger.sqlite")
    with pytest.raises(CommandRefused, match=r"^Start is not allowed in state Stopped; allowed: Reset, Abort$"):
        fake.cell.queue(Command.START, "cli")
    _tick(fake)
    assert fake.cell.state == State.STOPPED


def test_a_queued_command_the_state_no_longer_allows_is_refused_in_an_event(tmp_path):
    fake = FakeCell(ONE_CELL, "press", tmp_path / "ledger.sqlite")
    fake.run_until("Execute")
    fake.cell.queue(Command.HOLD, "page")
    fake.cell.queue(Command.SUSPEND, "page")  # allowed now, not after the Hold
    _tick(fake)
    refused = _events(fake, "command_refused")
    assert [(e["command"], e["by"]) for e in refused] == [("Suspend", "page")]
    assert refused[0]["reason"] == "Suspend is not allowed in state Holding; allowed: Stop, Abort"


def test_unhold_clears_the_alarm_into_the_history(tmp_path):
    fake = FakeCell(ONE_CELL, "press", tmp_path / "ledger.sqlite")
    fake.run_until("Execute")
    fake.cell.queue(Command.HOLD, "cli")
    fake.run_until("Held", start=False)
    fake.cell.queue(Command.UNHOLD, "page")
    fake.run_until("Execute", start=False)
    status = fake.cell.status()
    assert status["fault"] is None and status["fault_kind"] is None
    [entry] = status["alarm_history"]
    assert (entry["fault_kind"], entry["cleared_by"]) == ("operator", "Unhold by page")
    assert entry["raised"] <= entry["cleared"] and entry["raised_sim"] <= entry["cleared_sim"]
    assert _events(fake, "alarm_cleared")[-1]["reason"] == "Hold by the operator (cli)"
    fake.run_until("Complete", start=False)
    assert fake.cell.parts_done == 5


def test_a_new_work_order_after_complete_runs_without_a_restart(tmp_path):
    fake = FakeCell(ONE_CELL, "press", tmp_path / "ledger.sqlite", parts=2)
    fake.run_until("Complete")
    assert fake.cell.parts_done == 2
    fake.run_until("Complete", start=False)  # nothing more happens by itself
    fake.cell.command(Command.RESET, "cli")
    fake.run_until("Idle", start=False)
    assert fake.cell.parts_done == 0  # a new order: counted from here
    fake.cell.command(Command.START, "cli")
    fake.run_until("Complete", start=False)
    assert fake.cell.parts_done == 2 and fake.cell.custody.finished() == 4


def _variant(tmp_path, **feed: object):
    import yaml

    data = yaml.safe_load(ONE_CELL.read_text())
    data["stations"]["infeed"]["feed"].update(feed)
    path = tmp_path / "one_cell.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_dry_feed_suspends_the_cell_for_good_with_the_reason(tmp_path):
    fake = FakeCell(ONE_CELL, "press", tmp_path / "ledger.sqlite", parts=7)  # the feed gives 5
    fake.run_until("Suspended")
    status = fake.cell.status()
    assert (status["fault_kind"], status["fault"]) == ("dry_feed", "starved: infeed empty, 5 of 7 fed")
    assert status["parts_done"] == 5
    assert ", dry_feed: starved: infeed empty, 5 of 7 fed" in status_line(status)  # `cellctl status`
    for _ in range(50):
        _tick(fake)
    assert fake.cell.state == State.SUSPENDED  # nothing comes: it stays, with its reason


def test_a_late_feed_suspends_the_cell_starved_and_it_comes_back_by_itself(tmp_path):
    fake = FakeCell(_variant(tmp_path, every=45.0), "press", tmp_path / "ledger.sqlite", parts=3)
    fake.run_until("Complete")
    states = [e["dest"] for e in _events(fake, "packml")]
    assert states.count("Suspended") == 2 and states.count("Unsuspending") == 2  # between the three parts
    starved = [e for e in _events(fake, "fault") if e["fault_kind"] == "starved"]
    assert [e["reason"] for e in starved] == ["starved: infeed empty"] * 2
    assert with_kind("starved", starved[0]["reason"]) == "starved: infeed empty"  # the kind once, not twice
    assert [e["cleared_by"] for e in _events(fake, "alarm_cleared")] == ["Unsuspend by cell"] * 2


def test_a_real_robots_lost_link_shows_in_status_and_unhold_works_once_it_is_back(tmp_path):
    fake = FakeCell(ONE_CELL, "press", tmp_path / "ledger.sqlite", simulated=False)  # a real robot's cell
    fake.run_until("Execute")
    _tick(fake, 20)  # into its first part
    fake.driver.break_link()
    fake.run_until("Held", start=False)
    status = fake.cell.status()
    assert status["fault_kind"] == "robot_link_lost"
    assert status["links"]["robot"] == {"peer": "press", "state": "lost", "connected": False}
    _tick(fake, 200)
    assert fake.cell.status()["links"]["robot"]["state"] == "lost"  # still looked at, still gone
    fake.driver.restore_link()
    for _ in range(500):
        _tick(fake)
        if fake.cell.status()["links"]["robot"]["state"] == "up":
            break
    assert fake.cell.state == State.HELD  # a real robot moves again only on an operator's Unhold
    assert _events(fake, "robot_link")[-1]["state"] == "up"
    fake.cell.queue(Command.UNHOLD, "cli")
    fake.run_until("Complete", start=False)
    [entry] = fake.cell.status()["alarm_history"]
    assert (entry["fault_kind"], entry["cleared_by"]) == ("robot_link_lost", "Unhold by cli")
    assert fake.cell.status()["fault"] is None


def test_a_simulated_cells_lost_robot_link_resumes_by_itself_once_it_is_back(tmp_path):
    """A cell driving the twin's rosbridge endpoint (simulated, reached like a ROS robot)."""
    fake = FakeCell(ONE_CELL, "press", tmp_path / "ledger.sqlite")
    fake.run_until("Execute")
    _tick(fake, 20)
    fake.driver.break_link()
    fake.cell.world_lost(FaultKind.ROBOT_LINK_LOST, "the bridge went away")
    fake.run_until("Held", start=False)
    fake.driver.restore_link()
    fake.run_until("Complete", start=False)
    assert fake.cell.parts_done == 5


def test_a_link_lost_while_homing_is_one_alarm_and_the_homing_goes_on_once_it_is_back(tmp_path):
    """Reset on a real robot whose bridge goes away mid-homing: the alarm says the robot's link is
    lost (not "homing failed"), stays one alarm while the link is down, and the homing the
    operator asked for runs to Idle once the robot answers again."""
    fake = FakeCell(ONE_CELL, "press", tmp_path / "ledger.sqlite", simulated=False)
    fake.cell.queue(Command.RESET, "cli")
    fake.cell.tick()  # Reset applied, the homing goal sent; no time passes
    fake.cell.tick()
    assert fake.cell.state == State.RESETTING
    fake.driver.break_link()
    _tick(fake, 5)
    status = fake.cell.status()
    assert (fake.cell.state, status["fault_kind"]) == (State.RESETTING, "robot_link_lost"), status
    assert len(_events(fake, "fault")) == 1
    fake.driver.restore_link()
    for _ in range(200):
        _tick(fake)
        if fake.cell.state == State.IDLE:
            break
    assert fake.cell.state == State.IDLE and fake.cell.status()["fault"] is None
    assert [a["fault_kind"] for a in fake.cell.status()["alarm_history"]] == ["robot_link_lost"]
