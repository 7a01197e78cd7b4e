"""The line's logic in one process, in virtual time (``cellctl.testkit.fake_line``): real Cells,
real ledgers, real handoff links over an in-memory wire, on FakeDrivers in one FakeWorld. Crashes
at every crash point, restarts, lost ledgers, silent neighbours, cut links — and the custody
invariants (never OWNED in two ledgers, never delivered twice) checked after every round."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cellctl.cell.packml import State
from cellctl.config.paths import CONFIG_DIR
from cellctl.line.watchdog import diagnose
from cellctl.processes import crash
from cellctl.testkit.fake_line import FakeLine

DEMO, LINE3 = CONFIG_DIR / "demo_line.yaml", CONFIG_DIR / "line3.yaml"
PARTS = 3
EVERY = [f"part-{i}" for i in range(1, PARTS + 1)]


@pytest.fixture(autouse=True)
def _disarmed():
    yield
    crash.disarm()


def _check(line: FakeLine) -> None:
    line.check_custody()


def _finish(line: FakeLine) -> None:
    line.run_until(FakeLine.complete, check=_check)
    assert line.delivered() == EVERY
    assert all(s == "DELIVERED" for by_cell in line.custody().values() for s in by_cell.values() if s != "GIVEN")


def _wait(line: FakeLine, seconds: float) -> None:
    until = line.now() + seconds
    line.run_until(lambda l: l.now() >= until, check=_check)


@pytest.mark.parametrize("config", [DEMO, LINE3], ids=["demo_line", "line3"])
def test_a_line_delivers_every_part_once(config, tmp_path):
    line = FakeLine(config, tmp_path, parts=PARTS)
    _finish(line)
    states = [e["dest"] for e in line.events.events if e["kind"] == "packml" and e["cell"] == "press"]
    assert states[-1] == State.COMPLETE
    line.close()
    assert line.delivered() == EVERY  # the ledger files stay


@pytest.mark.parametrize("sensors", ["ids", "presence"])
@pytest.mark.parametrize("restart_after", [0.0, 4.0, 12.0])
@pytest.mark.parametrize("point", crash.POINTS)
def test_a_crash_at_any_crash_point_loses_and_duplicates_nothing(point, restart_after, sensors, tmp_path):
    """The process dies at the point; it comes back after ``restart_after`` s (past the link's
    5 s liveness timeout for the longer ones): reconcile, resync, and every part comes out once —
    with sensors that read part ids, and with light barriers that see presence only."""
    line = FakeLine(DEMO, tmp_path, parts=PARTS, presence_only=sensors == "presence")
    crash.arm(point)
    line.run_until(lambda l: l.crashes, check=_check)
    name, reached, _ = line.crashes[0]
    assert reached == point
    _wait(line, restart_after)
    line.start(name)
    line.run_until(FakeLine.complete, check=_check)
    consumed = [e["part"] for e in line.world.log if e["event"] == "consumed"]
    assert sorted(consumed) == sorted(set(consumed)) and len(consumed) == PARTS  # every part out, once
    assert line.summary().duplicated == 0
    assert any(e["kind"] == "reconciled" and e["cell"] == name for e in line.events.events)


@pytest.mark.parametrize("point", crash.POINTS)
def test_both_cells_crash_and_come_back_in_either_order(point, tmp_path):
    line = FakeLine(DEMO, tmp_path, parts=PARTS)
    crash.arm(point)
    line.run_until(lambda l: l.crashes, check=_check)
    first = line.crashes[0][0]
    other = "pack" if first == "press" else "press"
    line.crash(other)
    _wait(line, 1.0)
    line.start(other)
    _wait(line, 2.0)
    line.start(first)
    _finish(line)


def test_a_neighbour_that_lost_its_ledger_is_resynchronised(tmp_path):
    """pack dies holding nothing and comes back with an empty ledger (a new disk): press resyncs
    with it and the line still delivers every part once."""
    line = FakeLine(DEMO, tmp_path, parts=PARTS)
    line.run_until(lambda l: "part-1" in l.delivered(), check=_check)
    line.run_until(lambda l: l.cell("pack").state == State.EXECUTE and l.cell("pack").part is None, check=_check)
    line.crash("pack")
    line.ledger_path("pack").unlink()
    _wait(line, 3.0)
    line.start("pack")
    line.run_until(lambda l: l.cell("press").state == State.COMPLETE and l.delivered() == ["part-2", "part-3"]
                   and not l.cell("press").ledger.with_state("IN_TRANSIT"), check=_check)
    assert line.custody()["part-1"] == {"press": "GIVEN"}  # its record went with the lost disk; no part twice
    assert [e["part"] for e in line.world.log if e["event"] == "consumed"] == EVERY  # all out, once each
    assert line.cell("pack").status()["parts_done"] == 2  # its work order counts its own ledger: an operator's call


def test_a_silent_neighbour_suspends_then_holds_and_the_line_resumes_when_it_is_back(tmp_path):
    line = FakeLine(DEMO, tmp_path, parts=PARTS)
    line.run_until(lambda l: l.cell("press").status()["parts_done"] == 1, check=_check)
    line.crash("pack")
    press = line.cell("press")
    line.run_until(lambda l: press.state == State.SUSPENDED, check=_check)
    line.run_until(lambda l: press.state == State.HELD, check=_check)
    status = press.status()
    assert status["fault_kind"] == "neighbour_lost" and status["fault_source"] == "neighbour pack"
    waited = next(e for e in line.events.events if e["kind"] == "waiting" and e["cell"] == "press")
    held = next(e for e in line.events.events if e["kind"] == "fault" and e["cell"] == "press")
    # judged on the wall clock, which is the virtual clock here: no test sleeps
    assert press.cfg.hold_after <= held["sim_time"] - waited["sim_time"] < press.cfg.hold_after + 1.5
    line.start("pack")
    _finish(line)


def test_a_cut_link_holds_messages_back_and_mends(tmp_path):
    line = FakeLine(DEMO, tmp_path, parts=PARTS)
    line.run_until(lambda l: l.members["pack"].links["press"].connected, check=_check)
    line.cell("press").cut_link("pack", 3.0)
    line.cell("pack").cut_link("press", 3.0)
    _wait(line, 4.0)
    links = [e["state"] for e in line.events.events if e["kind"] == "handoff_link"]
    assert "cut" in links and "mended" in links
    _finish(line)


def test_the_watchdog_diagnoses_several_cells_at_once(tmp_path):
    line = FakeLine(LINE3, tmp_path, parts=PARTS)
    line.run_until(lambda l: l.cell("weld").status()["parts_done"] == 1, check=_check)
    line.crash("pack")
    line.run_until(lambda l: l.cell("weld").state == State.SUSPENDED, check=_check)
    statuses = {name: line.cell(name).status() if name in line.members else None for name in line.config.cells}
    lines = diagnose(statuses)
    assert len(lines) == len(line.config.cells)
    assert lines[0].startswith("press: ")
    assert lines[1].startswith("weld: Suspended") and "waits for pack (link" in lines[1]
    assert lines[2] == "pack: not answering on its control socket (dead, paused or restarting)"


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["press", "weld", "pack"]), st.floats(0.2, 8.0), st.floats(0.0, 7.0),
                          st.sampled_from([None, *crash.POINTS])), min_size=1, max_size=4))
def test_random_kills_restarts_and_delays_never_break_custody(tmp_path_factory, faults):
    """Each fault: run ``wait`` s, then kill the cell (or arm a crash point and let it die there),
    leave it down ``down`` s, restart it. After every round: never OWNED twice, never delivered
    twice; at the end every part out once."""
    line = FakeLine(LINE3, tmp_path_factory.mktemp("line"), parts=PARTS)
    for cell, wait, down, point in faults:
        if line.complete():
            break
        _wait(line, wait)
        if point is not None:
            crash.arm(point)
            deadline = line.now() + 20.0
            line.run_until(lambda l: l.crashes or l.now() > deadline or l.complete(), check=_check)
            crash.disarm()
            victims = [c for c, _, _ in line.crashes if c not in line.members]
        else:
            victims = [cell] if cell in line.members else []
            for victim in victims:
                line.crash(victim)
        _wait(line, down)
        for victim in victims:
            line.start(victim)
        line.crashes.clear()
    _finish(line)


# -- what a run leaves: the summary, the report, the watchdog's view --------------------------------
def test_the_summary_counts_a_line_that_had_a_crash_as_every_part_out_once(tmp_path):
    line = FakeLine(DEMO, tmp_path, parts=PARTS)
    crash.arm("sender_after_in_transit_commit")
    line.run_until(lambda l: l.crashes, check=_check)
    line.start("press")
    _finish(line)
    counts = line.summary()
    assert (counts.parts_in, counts.parts_out, counts.lost, counts.duplicated, counts.stranded) == (3, 3, 0, 0, 0)


def test_the_summary_names_a_stranded_part_with_its_ledger_and_a_lost_one(tmp_path):
    line = FakeLine(DEMO, tmp_path, parts=PARTS)
    line.run_until(lambda l: l.cell("pack").part is not None and l.drivers["pack"].gripper_state().part_present,
                   check=_check)
    assert line.cell("pack").part == "part-1"
    line.crash("pack")  # part-1 stays in its gripper
    line.run_until(lambda l: l.cell("press").state == State.SUSPENDED, check=_check)
    assert line.world.occupant("infeed") == "part-3"
    del line.world.parts["part-3"]  # taken off the line by hand
    counts = line.summary()
    stranded = {s.part: (s.where, s.ledger, s.state) for s in counts.stranded_parts}
    assert stranded["part-1"] == ("gripper of pack", "pack", "OWNED")
    assert counts.lost_parts == ["part-3"] and counts.duplicated == 0


def test_the_report_of_a_run_explains_its_stops(tmp_path):
    """An operator's Hold of pack, then Unhold: the report lists the fault (cell, kind, reason) and
    the commands, and its per-cell counts are the events' own."""
    from cellctl.cell.packml import Command
    from cellctl.line.report import write_report
    from cellctl.rundir import RunDir

    line = FakeLine(DEMO, tmp_path, parts=PARTS)
    line.run_until(lambda l: l.cell("pack").state == State.EXECUTE, check=_check)
    line.cell("pack").queue(Command.HOLD, "cli")
    line.run_until(lambda l: l.cell("pack").state == State.HELD, check=_check)
    _wait(line, 5.0)
    line.cell("pack").queue(Command.UNHOLD, "page")
    _finish(line)
    run = RunDir(tmp_path)
    run.events.write_text("".join(json.dumps(e) + "\n" for e in line.events.events) + "{\"torn")
    run.write_json(run.summary, {**line.summary().to_json(), "finished": True, "ended": "done", "sim_s": line.now(),
                                 "wall_s": 1.0, "restarts": {}, "diagnosis": [], "config": "demo_line.yaml"})
    text = write_report(tmp_path)
    assert "- parts in / out: 3 / 3; lost 0, duplicated 0, stranded 0" in text
    done = {c: sum(1 for e in line.events.events if e["kind"] == "part_done" and e["cell"] == c) for c in ("press", "pack")}
    for cell in ("press", "pack"):
        row = next(r for r in text.splitlines() if r.startswith(f"| {cell} |"))
        assert row.split(" | ")[1] == str(done[cell])
    pack = next(r for r in text.splitlines() if r.startswith("| pack |"))
    assert "operator 5." in pack  # time lost to the operator's Hold, about 5 s
    faults = text[text.index("## Faults"):].splitlines()
    assert any("| pack | operator | operator cli | Hold by the operator (cli) |" in r for r in faults)
    commands = text[text.index("## Commands"):].splitlines()
    assert [r.split(" | ")[2:] for r in commands if r.startswith("| ") and "| pack |" in r] == \
        [["pack", "Hold", "cli |"], ["pack", "Unhold", "page |"]]
    assert run.timeline.read_bytes()[:4] == b"\x89PNG" and run.report.read_text() == text


def test_the_watchdog_judges_progress_on_its_clock():
    from cellctl.line.watchdog import Watchdog

    now = [0.0]
    dog = Watchdog(10.0, lambda: now[0])
    now[0] = 6.0
    dog.saw([{"kind": "handoff"}, {"kind": "packml"}])  # talk is not progress
    assert not dog.stalled()
    now[0] = 10.5
    assert dog.stalled() and dog.quiet_for() == 10.5
    dog.saw([{"kind": "custody"}])
    assert not dog.stalled() and dog.quiet_for() == 0.0


def test_a_cell_whose_neighbour_takes_nothing_is_blocked_and_resumes(tmp_path):
    from cellctl.cell.packml import Command

    line = FakeLine(DEMO, tmp_path, parts=PARTS)
    line.run_until(lambda l: l.cell("pack").state == State.EXECUTE, check=_check)
    line.cell("pack").queue(Command.HOLD, "cli")
    press = line.cell("press")
    line.run_until(lambda l: press.state == State.SUSPENDED, check=_check)
    assert (press.status()["fault_kind"], press.status()["fault"]) == ("blocked", "blocked: pack not ready")
    line.cell("pack").queue(Command.UNHOLD, "cli")
    _finish(line)
    assert press.status()["alarm_history"][-1]["fault_kind"] == "blocked"


def test_fifty_commands_at_random_moments_are_each_applied_or_refused_with_a_reason(tmp_path):
    """None is ever "busy": a command the state allows is queued and at the next tick either
    applied (a `command` event) or refused (`command_refused`, the state having changed); one it
    forbids is refused at once with the PackML reason. In the order they were sent."""
    import random

    from cellctl.cell.packml import COMMANDS, CommandRefused

    rng = random.Random(7)
    line = FakeLine(DEMO, tmp_path, parts=PARTS)
    sent, refused_at_once = [], []
    for _ in range(50):
        for _ in range(rng.randint(1, 40)):
            line.round()
            line.check_custody()
        name = rng.choice(["press", "pack"])
        command = rng.choice(COMMANDS)
        try:
            line.cell(name).queue(command, "cli")
            sent.append((name, command))
        except CommandRefused as exc:
            assert str(exc).startswith(f"{command} is not allowed in state ")
            refused_at_once.append((name, command))
    for _ in range(5):
        line.round()
    outcome = [(e["cell"], e["command"]) for e in line.events.events
               if e["kind"] in ("command", "command_refused") and e["by"] == "cli"]
    assert outcome == sent  # every queued one accounted for, in order
    later = [e for e in line.events.events if e["kind"] == "command_refused"]
    assert all(e["reason"].startswith(f"{e['command']} is not allowed in state ") for e in later)
    assert len(sent) + len(refused_at_once) == 50 and sent and refused_at_once


def test_a_cell_held_past_its_upstreams_exit_completes_its_order_after_unhold(tmp_path):
    """press finished its order and exited while weld was held by an operator: after Unhold, weld
    finishes its own order; it does not wait for the neighbour it no longer needs."""
    from cellctl.cell.packml import Command

    line = FakeLine(LINE3, tmp_path, parts=PARTS)
    line.run_until(lambda l: l.cell("press").state == State.COMPLETE and not l.cell("press").ledger.with_state(
        "IN_TRANSIT") and l.cell("weld").part is not None, check=_check)
    line.cell("weld").queue(Command.HOLD, "cli")
    line.run_until(lambda l: l.cell("weld").state == State.HELD, check=_check)
    line.crash("press")  # done and gone, as `--exit-when-complete` does
    _wait(line, 20.0)  # past the link's liveness timeout and hold_after
    line.cell("weld").queue(Command.UNHOLD, "cli")
    line.run_until(lambda l: all(l.cell(c).state == State.COMPLETE for c in ("weld", "pack")), check=_check)
    assert line.delivered() == EVERY
    assert not [e for e in line.events.events if e["kind"] == "fault" and e["cell"] == "weld"
                and e["fault_kind"] != "operator"]


def test_a_part_the_ledger_holds_that_is_nowhere_is_marked_missing_with_a_fault(tmp_path):
    """press dies having placed part-1 on the handoff station, before it committed IN_TRANSIT; while
    it is down the part is taken off the station by hand: its reconcile marks the part MISSING and
    says so (fault kind part_missing)."""
    line = FakeLine(DEMO, tmp_path, parts=PARTS)
    crash.arm("sender_after_place_before_commit")
    line.run_until(lambda l: l.crashes, check=_check)
    assert line.world.occupant("handoff") == "part-1"
    del line.world.parts["part-1"]
    line.start("press")
    missing = [e for e in line.events.events if e["kind"] == "fault" and e["cell"] == "press"]
    assert [(e["fault_kind"], e["reason"]) for e in missing] == [
        ("part_missing", "part part-1 is in the ledger but nowhere to be found")]
    assert line.custody()["part-1"] == {"press": "MISSING"}


def test_the_diagnosis_names_state_phase_part_skill_fault_and_the_awaited_link():
    lines = diagnose({
        "press": {"state": "Execute", "phase": "deliver", "part": "part-2", "skill": "place", "fault": None,
                  "waiting_for": "pack", "links": {"sender": {"peer": "pack", "state": "BoardAvailable",
                                                              "connected": True}}},
        "pack": {"state": "Held", "phase": None, "part": None, "skill": None, "fault": "Hold by the operator (cli)",
                 "waiting_for": None, "links": {}},
        "weld": {"state": "Execute", "phase": None, "part": None, "skill": None, "fault": None, "waiting_for": None},
        "ship": None,
    })
    assert lines == [
        "press: Execute, phase deliver, part part-2, skill place; waits for pack (link BoardAvailable, connected)",
        "pack: Held, fault: Hold by the operator (cli)",
        "weld: Execute; waits for a part on its take station",
        "ship: not answering on its control socket (dead, paused or restarting)",
    ]
