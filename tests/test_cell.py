"""One cell on the twin in lockstep: parts from a feed to a sink, faults to Held and back, and the
PackML commands over the control socket."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from cellctl.cell.control import request
from cellctl.drivers.twin import TwinDriver
from tests.conftest import CONFIGS

pytestmark = pytest.mark.process  # starts twins, cells, launchers or bridges

CONFIG = CONFIGS / "one_cell.yaml"


def _cell(twin, tmp_path, *extra: str, config=CONFIG) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cellctl", "cell", "run", str(config), "--cell", "press",
                             "--twin", twin.endpoint, "--run-dir", str(tmp_path), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _endpoint(tmp_path, proc, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    path = tmp_path / "control-press.json"
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the cell did not open its control socket"
        time.sleep(0.05)
    return json.loads(path.read_text())["endpoint"]


def _until(endpoint: str, predicate, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = request(endpoint, "status")["result"]
        if predicate(status):
            return status
        time.sleep(0.01)
    raise AssertionError(f"cell never reached the expected status; last: {status}")


def _part_log(twin) -> list[tuple[str, str]]:
    with TwinDriver(twin.endpoint, "press") as driver:
        return [(e["event"], e["part"]) for e in driver.request("part_log")]


def test_one_cell_moves_five_parts_from_feed_to_sink(twin_factory, tmp_path):
    twin = twin_factory(CONFIG)
    proc = _cell(twin, tmp_path, "--start", "--exit-when-complete")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "press: Completing -> Complete" in out
    log = _part_log(twin)
    spawned = [p for e, p in log if e == "spawned"]
    consumed = [p for e, p in log if e == "consumed"]
    assert spawned == consumed == [f"part-{i}" for i in range(1, 6)]
    with TwinDriver(twin.endpoint, "press") as driver:
        assert driver.request("list_parts") == []
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [e["part"] for e in events if e["kind"] == "part_done"] == spawned
    states = [e["dest"] for e in events if e["kind"] == "packml"]
    assert states == ["Resetting", "Idle", "Starting", "Execute", "Completing", "Complete"]
    assert all(e["schema"] == 1 for e in events)


def test_fault_holds_unhold_resumes_abort_clear_reset(twin_factory, tmp_path):
    twin = twin_factory(CONFIG)
    proc = _cell(twin, tmp_path, "--start")
    try:
        endpoint = _endpoint(tmp_path, proc)
        status = _until(endpoint, lambda s: s["skill"] == "place")  # carrying part-1
        part = status["part"]
        with TwinDriver(twin.endpoint, "press") as driver:
            driver.request("inject_fault", robot="press", reason="servo overcurrent")
        held = _until(endpoint, lambda s: s["state"] == "Held")
        assert held["state_number"] == 11 and "drive fault: servo overcurrent" in held["fault"]
        assert (held["fault_kind"], held["fault_source"]) == ("skill_failed", "recipe")
        assert held["part"] == part
        refused = request(endpoint, "command", command="Start")
        assert refused["ok"] is False and refused["error"]["message"] == \
            "Start is not allowed in state Held; allowed: Unhold, Stop, Abort"
        assert request(endpoint, "command", command="Unhold")["ok"]
        _until(endpoint, lambda s: s["parts_done"] >= 1)
        assert ("consumed", part) in _part_log(twin)  # the part still arrived, once
        for command, state in (("Abort", "Aborted"), ("Clear", "Stopped"), ("Reset", "Idle")):
            assert request(endpoint, "command", command=command)["ok"]
            _until(endpoint, lambda s, state=state: s["state"] == state)
    finally:
        proc.terminate()
        time.sleep(0.05)
        proc.terminate()  # a second SIGTERM (a supervisor's, a process group's) lands in the stop: ignored
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "press: Stopping -> Stopped" in out and "Traceback" not in err  # SIGTERM stops cleanly


def test_cli_status_and_cmd(twin_factory, tmp_path):
    twin = twin_factory(CONFIG)
    proc = _cell(twin, tmp_path)  # no --start: the cell waits in Stopped
    try:
        endpoint = _endpoint(tmp_path, proc)
        cli = [sys.executable, "-m", "cellctl"]
        status = subprocess.run([*cli, "status", str(tmp_path)], capture_output=True, text=True, timeout=30)
        assert status.stdout.strip() == "press: Stopped (2), skill -, parts done 0/5, part -"
        refused = subprocess.run([*cli, "cmd", endpoint, "Start"], capture_output=True, text=True, timeout=30)
        assert refused.returncode == 2
        assert refused.stderr.strip() == "cellctl cmd: Start is not allowed in state Stopped; allowed: Reset, Abort"
        status_socket = json.loads((tmp_path / "control-press.json").read_text())["status"]
        assert status_socket != endpoint
        read_only = subprocess.run([*cli, "cmd", status_socket, "Reset"], capture_output=True, text=True, timeout=30)
        assert read_only.returncode == 2
        assert read_only.stderr.strip() == ("cellctl cmd: this is the cell's status socket: commands go to its "
                                            "control socket")
        assert request(status_socket, "status")["result"]["state"] == "Stopped"  # the Reset did not happen
        ok = subprocess.run([*cli, "cmd", endpoint, "Reset"], capture_output=True, text=True, timeout=30)
        assert ok.returncode == 0
        _until(endpoint, lambda s: s["state"] == "Idle")
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


@pytest.mark.parametrize("cell,message", [("ghost", "no cell 'ghost'; cells: ['press']")])
def test_cell_run_unknown_cell(cell, message):
    result = subprocess.run([sys.executable, "-m", "cellctl", "cell", "run", str(CONFIG), "--cell", cell],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and message in result.stderr


def test_a_part_of_a_type_the_cell_does_not_work_on_holds_it(twin_factory, tmp_path):
    config = tmp_path / "typed.yaml"
    config.write_text(CONFIG.read_text().replace(", feed: {every: 2.0, count: 5, prefix: part}", "")
                      .replace("    parts: 5", "    parts: 5\n    part_types: [box]")
                      .replace("robots:", "part_types: {box: {}, disc: {}}\nparts: [{id: d1, type: disc, "
                                          "station: infeed}]\nrobots:"))
    twin = twin_factory(config)
    proc = _cell(twin, tmp_path, "--start", config=config)
    try:
        status = _until(_endpoint(tmp_path, proc), lambda s: s["state"] == "Held")
        # a part the cell cannot tell to be one of its types (no feed says so) is not taken
        assert status["fault"] == "part d1 is of type '?'; this cell works on ['box']"
        assert status["fault_kind"] == "wrong_part"
        assert status["parts_done"] == 0
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_cell_waiting_for_its_lockstep_grant_still_answers_status(twin_factory, tmp_path):
    """The twin's start barrier waits for a participant that never comes: the cell's grant does not
    come either, yet an operator sees its status at once, and a command is queued (or refused at once
    with the PackML reason), never answered "busy"."""
    config = tmp_path / "barrier.yaml"
    config.write_text(CONFIG.read_text().replace("silence_timeout: 3.0}", "silence_timeout: 3.0, expect: [press, "
                                                                          "ghost]}"))
    twin = twin_factory(config)
    proc = _cell(twin, tmp_path, "--start", config=config)
    try:
        endpoint = _endpoint(tmp_path, proc)
        time.sleep(1.0)  # inside its first wait for a grant by now
        for _ in range(3):
            started = time.monotonic()
            status = request(endpoint, "status", timeout=2.0)["result"]
            assert time.monotonic() - started < 1.0, "status waited for the grant"
            assert status["state"] == "Resetting"  # homing needs sim time, which the barrier holds back
        queued = request(endpoint, "command", timeout=2.0, command="Stop")  # never "busy": queued for its next tick
        assert queued["ok"] and queued["result"] == {"cell": "press", "queued": "Stop", "state": "Resetting"}, queued
        refused = request(endpoint, "command", timeout=2.0, command="Unhold")  # one the state forbids: at once
        assert refused["error"] == {"code": "refused",
                                    "message": "Unhold is not allowed in state Resetting; allowed: Stop, Abort"}
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


@pytest.mark.timeout(180)
def test_a_cell_that_lost_its_twin_in_a_tick_resumes_when_the_same_twin_answers_again(twin_factory, tmp_path):
    """A realtime twin paused for longer than a request's timeout while the cell is moving. The loss
    is noticed by whichever request times out first (a motion's in a tick, or the time query); the
    cell run on its own (no launcher) answers status meanwhile, is Held for it, and resumes by itself
    once the same twin answers. Before, a loss noticed in a tick left the cell Held for good."""
    config = tmp_path / "realtime.yaml"
    config.write_text(CONFIG.read_text().replace("twin: {mode: lockstep, period_steps: 5, silence_timeout: 3.0}",
                                                 "twin: {mode: realtime, rate: 4.0}"))
    twin = twin_factory(config)
    proc = _cell(twin, tmp_path, "--start", "--exit-when-complete", "--parts", "2", config=config)
    try:
        endpoint = _endpoint(tmp_path, proc)
        _until(endpoint, lambda s: s["state"] == "Execute" and s["skill"] == "pick")
        twin.proc.send_signal(signal.SIGSTOP)
        try:
            deadline = time.monotonic() + 60
            while True:  # the cell blocks in its timed-out request for up to 5 s: asked with patience
                status = request(endpoint, "status", timeout=10.0)["result"]
                if status["state"] in ("Holding", "Held") and status["fault_kind"] == "twin_lost":
                    break
                assert time.monotonic() < deadline, status
                time.sleep(0.1)
        finally:
            twin.proc.send_signal(signal.SIGCONT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    assert "press: Held -> Unholding" in out and "Complete, 2 parts done" in out
