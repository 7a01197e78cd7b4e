"""The print line (configs/print_line.yaml): a printer prints a blank, a robot cell takes it off the
bed and loads a CNC, the CNC machines it, the cell takes it out and hands it on, a second robot
puts it on the outfeed. Real processes in lockstep: every part out once, the ledger rows of a part
through both machines, the tending cell SIGKILLed mid-print and mid-cycle (the machines' own record
shows no job started twice), the printer's alarm (Held with its reason; Unhold runs the print
again), and a machine paused, offline and stalled (Suspended with the reason, back by itself;
Held past the job's deadline), and the twin killed while the CNC runs (its checkpoint keeps the
job)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cellctl.config.paths import CONFIG_DIR
from cellctl.rundir import EventTail
from cellctl.testkit.harness import read_events

pytestmark = pytest.mark.process  # starts the launcher, a twin and two cells per run

LINE = CONFIG_DIR / "print_line.yaml"
SCENARIOS = CONFIG_DIR / "scenarios"
ONCE = {m: {f"printer1-{i}": 1 for i in (1, 2, 3)} for m in ("printer1", "cnc1")}


def _cellctl(*args: object, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cellctl", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def _journal(run_dir: Path, cell: str, part: str) -> list[tuple[str, str | None]]:
    db = sqlite3.connect(run_dir / f"ledger-{cell}.sqlite")
    try:
        return db.execute("SELECT state, peer FROM journal WHERE part=? ORDER BY seq", (part,)).fetchall()
    finally:
        db.close()


def _scenario(tmp_path: Path, scenario: Path) -> tuple[dict, Path]:
    proc = _cellctl("test", scenario, "--run-dir", tmp_path / "runs", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [result] = json.loads(proc.stdout.strip().splitlines()[-1])["results"]
    run_dir = Path(result["run_dir"])
    return json.loads((run_dir / "summary.json").read_text()), run_dir


def _tend(run_dir: Path, *kinds: str) -> list[dict]:
    return [e for e in read_events(run_dir) if e.get("cell") == "tend" and e["kind"] in kinds]


def test_the_print_line_makes_three_parts_and_each_passes_both_machines_once(tmp_path):
    proc = _cellctl("run", LINE, "--run-dir", tmp_path / "run", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert (summary["parts_in"], summary["parts_out"], summary["lost"], summary["duplicated"], summary["stranded"]) \
        == (3, 3, 0, 0, 0) and summary["finished"]
    assert summary["machine_jobs"] == ONCE
    assert _journal(tmp_path / "run", "tend", "printer1-2") == [
        ("IN_MACHINE", "printer1"), ("job:started", "printer1"), ("job:done", "printer1"), ("OWNED", None),
        ("job:unloaded", "printer1"), ("IN_MACHINE", "cnc1"), ("job:started", "cnc1"), ("job:done", "cnc1"),
        ("OWNED", None), ("job:unloaded", "cnc1"), ("IN_TRANSIT", "pack"), ("GIVEN", None)]
    assert _journal(tmp_path / "run", "pack", "printer1-2") == [("OWNED", None), ("DELIVERED", None)]
    custody = [(e["part"], e["state"], e["station"]) for e in _tend(tmp_path / "run", "custody")][:4]
    assert custody == [("printer1-1", "IN_MACHINE", "bed"), ("printer1-1", "OWNED", None),
                       ("printer1-1", "IN_MACHINE", "vice"), ("printer1-1", "OWNED", None)]


@pytest.mark.parametrize("name, machine", [("print_line_kill_mid_print", "printer1"),
                                           ("print_line_kill_in_cnc", "cnc1")])
def test_the_tending_cell_killed_mid_job_finds_its_job_and_never_starts_it_twice(tmp_path, name, machine):
    summary, run_dir = _scenario(tmp_path, SCENARIOS / f"{name}.yaml")
    assert summary["machine_jobs"] == ONCE  # the machines' own record: each job started once
    [kill] = [e for e in read_events(run_dir) if e["kind"] == "scenario"]
    jobs = [(e["part"], e["state"], e["sim_time"]) for e in _tend(run_dir, "machine_job") if e["machine"] == machine]
    started = max(t for p, s, t in jobs if p == "printer1-2" and s == "started")
    done = min(t for p, s, t in jobs if p == "printer1-2" and s == "done")
    assert started < kill["at"] < done  # the kill landed while the machine ran the part's job
    [reconciled] = _tend(run_dir, "reconciled")
    assert reconciled["in_machines"] == {machine: "printer1-2"}


def test_a_printer_alarm_holds_the_cell_with_its_reason_and_unhold_prints_the_part_again(tmp_path):
    summary, run_dir = _scenario(tmp_path, SCENARIOS / "print_line_printer_fault.yaml")
    [fault] = [e for e in _tend(run_dir, "fault") if e["fault_kind"] == "machine_fault"]
    assert fault["reason"] == ("part printer1-2: step 1 (wait_job) failed: machine printer1: alarm during job "
                               "printer1-2: nozzle clogged") and fault["source"] == "machine printer1"
    assert summary["machine_jobs"]["printer1"]["printer1-2"] == 2  # the failed print, then the one that made it
    assert summary["machine_jobs"]["cnc1"] == ONCE["cnc1"]


def test_a_machine_paused_offline_or_stalled_suspends_or_holds_the_cell_with_the_machine_s_reason(tmp_path):
    scenario = tmp_path / "unavailable.yaml"
    scenario.write_text(f"""version: 1
line: {LINE}
parts: 3
seed: 1
faults:
  - {{at: 2.0, machine_fault: printer1, fault: pause, reason: filament change}}
  - {{at: 5.0, machine_fault: printer1, fault: resume}}
  - {{at: 17.0, machine_fault: cnc1, fault: offline, reason: controller rebooting}}
  - {{at: 19.0, machine_fault: cnc1, fault: online}}
  - {{at: 42.0, machine_fault: cnc1, fault: stall}}
  - {{at: 64.0, machine_fault: cnc1, fault: fail, reason: spindle overload}}
  - {{at: 64.0, command: {{cell: tend, send: [Unhold], when: Held}}}}
expect: {{parts_out: 3, lost: 0, duplicated: 0, stranded: 0, never: [Aborted]}}
""")
    summary, run_dir = _scenario(tmp_path, scenario)
    events = _tend(run_dir, "fault", "packml")
    faults = [(e["fault_kind"], e["reason"]) for e in events if e["kind"] == "fault"]
    assert faults == [
        ("machine_unavailable", "part printer1-1: machine printer1: job printer1-1 paused at the machine (filament "
                                "change)"),
        ("machine_unavailable", "part printer1-1: machine cnc1 is offline (controller rebooting)"),
        ("machine_fault", "part printer1-2: step 5 (wait_job) failed: machine cnc1: job printer1-2 not done after "
                          "16 s running (expected 4 s; progress 40%)")]
    states = [e["dest"] for e in events if e["kind"] == "packml" and e["dest"] in ("Suspended", "Held", "Execute")]
    assert states == ["Execute", "Suspended", "Execute", "Suspended", "Execute", "Held", "Execute"]
    assert summary["machine_jobs"]["cnc1"]["printer1-2"] == 2


def test_the_twin_killed_while_the_cnc_runs_restores_the_job_and_it_is_not_started_again(tmp_path):
    """The twin's checkpoint holds the machines' jobs: a twin SIGKILLed while the CNC machines a part
    comes back with the job where it was, the tending cell (Held for the lost twin) resumes and
    waits for that job — the CNC's own record shows every job started once."""
    run_dir = tmp_path / "run"
    line = subprocess.Popen([sys.executable, "-m", "cellctl", "run", LINE, "--run-dir", run_dir],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed_at, tail, seen = None, EventTail(run_dir / "events.jsonl"), []
    try:
        deadline = time.monotonic() + 120
        while killed_at is None and line.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
            seen += tail.read()
            started = [e for e in seen if e["kind"] == "machine_job" and e["machine"] == "cnc1"
                       and e["part"] == "printer1-2" and e["state"] == "started"]
            if started:
                os.kill(json.loads((run_dir / "pids.json").read_text())["twin"], signal.SIGKILL)
                killed_at = started[0]["sim_time"]
        assert line.wait(240) == 0
    finally:
        line.kill()
    assert killed_at is not None, "the CNC never started printer1-2's job"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["parts_out"] == 3 and summary["lost"] == summary["duplicated"] == summary["stranded"] == 0
    assert summary["machine_jobs"] == ONCE
    events = read_events(run_dir)
    assert any(e["kind"] == "process" and e.get("component") == "twin" and e["event"] == "exited" for e in events)
    done = [e["sim_time"] for e in _tend(run_dir, "machine_job") if (e["machine"], e["part"], e["state"]) ==
            ("cnc1", "printer1-2", "done")]
    assert len(done) == 1 and done[0] > killed_at

