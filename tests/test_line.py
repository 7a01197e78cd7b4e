"""Whole lines: the demo line and line3 deliver every part; crash points are survived; broken line
configs are refused with exact messages."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cellctl.config.paths import CONFIG_DIR

pytestmark = pytest.mark.process  # starts twins, cells, launchers or bridges

CLI = [sys.executable, "-m", "cellctl"]


def _run(args: list[str], tmp_path, timeout: float = 240) -> tuple[int, dict, str]:
    result = subprocess.run([*CLI, *args, "--json", "--run-dir", str(tmp_path / "run")],
                            capture_output=True, text=True, timeout=timeout)
    return result.returncode, json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


def _events(tmp_path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]


def test_demo_line_delivers_ten_parts(tmp_path):
    code, summary, err = _run(["demo", "--parts", "10"], tmp_path)
    assert code == 0, err
    assert summary["parts_in"] == summary["parts_out"] == 10
    assert summary["lost"] == summary["duplicated"] == 0
    assert summary["cells"] == {"press": {"state": "Complete", "parts_done": 10},
                                "pack": {"state": "Complete", "parts_done": 10}}
    assert summary["sim_s"] > 0 and summary["wall_s"] > 0
    events = _events(tmp_path)
    handoff = [e["type"] for e in events if e["kind"] == "handoff" and e["cell"] == "press" and e["direction"] == "send"]
    assert handoff.count("TransportFinished") == 10 and handoff.count("BoardAvailable") == 10
    report = (tmp_path / "run" / "report.md").read_text()  # every run writes its report
    assert "- parts in / out: 10 / 10; lost 0, duplicated 0" in report
    assert "| pack | 10 |" in report and "| press | 10 |" in report
    assert (tmp_path / "run" / "timeline.png").read_bytes()[:4] == b"\x89PNG"
    # the same --run-dir again: refused before anything starts (its ledgers would say the parts
    # were delivered), the first run's events untouched
    before = (tmp_path / "run" / "events.jsonl").read_bytes()
    again = subprocess.run([*CLI, "demo", "--run-dir", str(tmp_path / "run")], capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "holds a run already (line.yaml, launch.json, events.jsonl, twin.sqlite, " \
                                     "ledger-pack.sqlite, ledger-press.sqlite)" in again.stderr, again.stderr
    assert f"cellctl run --resume {tmp_path / 'run'}" in again.stderr.replace("\n", "")
    assert (tmp_path / "run" / "events.jsonl").read_bytes() == before
    custody = [(e["cell"], e["state"]) for e in events if e["kind"] == "custody" and e["part"] == "part-4"]
    assert custody == [("press", "OWNED"), ("press", "IN_TRANSIT"), ("pack", "OWNED"), ("press", "GIVEN"),
                       ("pack", "DELIVERED")] or custody == [("press", "OWNED"), ("press", "IN_TRANSIT"),
                                                             ("pack", "OWNED"), ("pack", "DELIVERED"), ("press", "GIVEN")]


def test_line3_with_three_robot_models(tmp_path):
    code, summary, err = _run(["run", str(CONFIG_DIR / "line3.yaml"), "--parts", "3"], tmp_path)
    assert code == 0, err
    assert summary["parts_in"] == summary["parts_out"] == 3 and summary["lost"] == summary["duplicated"] == 0
    assert set(summary["cells"]) == {"press", "weld", "pack"}


# End to end at one crash point (a real SIGKILL, the launcher's restart, reconcile, resync); every
# crash point, crashes of both cells and random kills are tested in-process in virtual time
# (tests/test_line_logic.py: test_a_crash_at_any_crash_point_loses_and_duplicates_nothing and after).
@pytest.mark.parametrize("point", ["sender_after_in_transit_commit", "receiver_after_transport_finished_before_commit"])
def test_crash_point_every_part_delivered_once(tmp_path, point):
    cell = "pack" if point.startswith("receiver") else "press"
    code, summary, err = _run(["demo", "--parts", "3", "--crash", f"{cell}:{point}"], tmp_path)
    assert summary["restarts"] == {cell: 1}, err  # it really crashed there, once
    assert code == 0, err
    assert summary["parts_in"] == summary["parts_out"] == 3
    assert summary["lost"] == summary["duplicated"] == 0
    events = _events(tmp_path)
    reconciled = [e for e in events if e["kind"] == "reconciled" and e["cell"] == cell]
    assert len(reconciled) == 1  # the restarted cell reconciled its ledger before Reset
    peer = "press" if cell == "pack" else "pack"
    peer_states = [e["dest"] for e in events if e["kind"] == "packml" and e["cell"] == peer]
    if point in ("sender_after_place_before_commit", "sender_after_in_transit_commit"):
        # the receiver waits on the sender there: Suspended while it is gone, then resumed
        assert "Suspended" in peer_states
    assert peer_states[-1] == "Complete"


BASE = (CONFIG_DIR / "demo_line.yaml").read_text()


@pytest.mark.parametrize("change,message", [
    (("downstream: pack", "downstream: packer"), "cells.press.downstream: expected one of the cells ['pack', 'press'], "
                                                 "found 'packer'"),
    (("give: handoff", "give: outfeed"), "cells.press.give: expected the station pack takes from ('handoff'), "
                                         "found 'outfeed'"),
    (("take: infeed", "take: infeed\n    upstream: pack"), "cells.pack.downstream: expected 'press' (its upstream "
                                                           "names it), found None"),
    (("    parts: 3\n  pack:", "    parts: 3\n    part_types: [box, disc]\n  pack:\n    part_types: [box]"),
     "cells.pack.part_types: expected to accept every type press gives ['box', 'disc'], found ['box']"),
    (("handoff: {position: [0.45, 0.45, 0.3]}", "handoff: {position: [1.6, 0.45, 0.3]}"),
     "cells.press.give: expected a station robot press can reach, found handoff: no joint solution"),
])
def test_broken_line_configs(tmp_path, change, message):
    path = tmp_path / "line.yaml"
    assert change[0] in BASE
    path.write_text(BASE.replace(change[0], change[1], 1))
    result = subprocess.run([*CLI, "check", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"{path}: {message}" in result.stderr, result.stderr


def test_a_cell_is_not_its_own_neighbour(tmp_path):
    path = tmp_path / "line.yaml"
    path.write_text(BASE.replace("    upstream: press\n", "    upstream: pack\n"))
    result = subprocess.run([*CLI, "check", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"{path}: cells.pack.upstream: expected another cell's name (a cell is not its own neighbour), " \
           f"found 'pack'" in result.stderr, result.stderr


def test_run_refuses_what_check_refuses(tmp_path):
    """The reach check runs before a line starts: exit 2 at once, not a Held line 20 s later."""
    path = tmp_path / "line.yaml"
    path.write_text(BASE.replace("handoff: {position: [0.45, 0.45, 0.3]}", "handoff: {position: [1.6, 0.45, 0.3]}"))
    result = subprocess.run([*CLI, "run", str(path), "--run-dir", str(tmp_path / "run")], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert "cells.press.give: expected a station robot press can reach, found handoff" in result.stderr
    assert not (tmp_path / "run").exists()


def test_cycle_is_refused(tmp_path):
    path = tmp_path / "cycle.yaml"
    text = BASE.replace("    downstream: pack\n", "    downstream: pack\n    upstream: pack\n")
    text = text.replace("    upstream: press\n", "    upstream: press\n    downstream: press\n")
    path.write_text(text)
    result = subprocess.run([*CLI, "check", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "cells.press.downstream: expected a line without cycles, found 'press -> pack -> press'" in result.stderr


def test_report_cli(tmp_path):
    missing = subprocess.run([*CLI, "report", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no events.jsonl here" in missing.stderr


def test_demo_line_cell_by_cell(twin_factory, tmp_path):
    """The demo config run as a pilot site would, one `cellctl cell run` per cell (here on one
    machine, sharing a run directory where each cell announces its handoff inbox)."""
    twin = twin_factory(CONFIG_DIR / "demo_line.yaml")
    procs = [subprocess.Popen([*CLI, "cell", "run", str(CONFIG_DIR / "demo_line.yaml"), "--cell", name, "--twin",
                               twin.endpoint, "--run-dir", str(tmp_path), "--parts", "1", "--start",
                               "--exit-when-complete"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in ("pack", "press")]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "Complete, 1 parts done" in out
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert not [e for e in events if e["kind"] == "packml" and e["dest"] == "Held"]


def _trace(run_dir) -> list[str]:
    """What the cells did, in sim time: every event but wall-clock liveness (CheckAlive)."""
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    return sorted(json.dumps({k: v for k, v in e.items() if k != "wall_time"}, sort_keys=True) for e in events
                  if e["sim_time"] is not None and e.get("type") != "CheckAlive")


def test_the_lockstep_demo_runs_the_same_way_every_time(tmp_path):
    """Links are connected before sim time starts and everything the cells act on is delivered
    causally: two runs make the same events at the same sim times."""
    traces, sims = [], []
    for run in ("a", "b"):
        code, summary, err = _run(["demo", "--parts", "3"], tmp_path / run)
        assert code == 0, err
        traces.append(_trace(tmp_path / run / "run"))
        sims.append(summary["sim_s"])
    assert sims[0] == sims[1]
    assert traces[0] == traces[1]


@pytest.mark.timeout(300)
def test_an_operators_hold_longer_than_the_watchdog_never_ends_the_run(tmp_path):
    """`cellctl cmd RUN_DIR --cell pack Hold` mid-run, held past the 10 s watchdog: the run waits for
    the operator (an `operator_wait` event), Unhold, and every part comes out once."""
    import time

    run = tmp_path / "run"
    line = subprocess.Popen([*CLI, "demo", "--parts", "3", "--watchdog", "10", "--json", "--run-dir", str(run)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120

        def events() -> list[dict]:
            path = run / "events.jsonl"
            return [json.loads(x) for x in path.read_text().splitlines() if x.endswith("}")] if path.exists() else []

        def wait_for(predicate) -> None:
            while not predicate(events()):
                assert line.poll() is None and time.monotonic() < deadline, line.communicate()[1][-3000:]
                time.sleep(0.05)

        wait_for(lambda ev: any(e["kind"] == "custody" and e["state"] == "OWNED" and e["cell"] == "pack" for e in ev))
        hold = subprocess.run([*CLI, "cmd", str(run), "--cell", "pack", "Hold"], capture_output=True, text=True,
                              timeout=30)
        assert hold.returncode == 0 and hold.stdout.startswith("pack: Hold queued"), hold.stderr
        wait_for(lambda ev: any(e["kind"] == "operator_wait" for e in ev))
        status = subprocess.run([*CLI, "status", str(run), "--cell", "pack"], capture_output=True, text=True,
                                timeout=30)
        assert "pack: Held (11)" in status.stdout and "operator: Hold by the operator (cli) (since " in status.stdout
        unhold = subprocess.run([*CLI, "cmd", str(run), "--cell", "pack", "Unhold"], capture_output=True, text=True,
                                timeout=30)
        assert unhold.returncode == 0, unhold.stderr
        out, err = line.communicate(timeout=240)
    finally:
        if line.poll() is None:
            line.kill()
    summary = json.loads(out.strip().splitlines()[-1])
    assert line.returncode == 0 and summary["finished"] and summary["ended"] == "done", err[-3000:]
    assert summary["parts_out"] == 3 and summary["lost"] == summary["duplicated"] == 0
    wait = next(e for e in events() if e["kind"] == "operator_wait")
    assert wait["cells"] == ["pack"] and "Hold by the operator (cli)" in wait["reasons"][0]
