"""The print line with a real OctoPrint (its Virtual Printer) in place of the twin's printer, and
with a real LinuxCNC in place of its CNC — by their ``driver:`` entries and ``twin.mode: realtime``. The twin follows the real printer (a print
it finishes puts the part on the twin's bed, where the simulated robot takes it). OctoPrint stops
answering mid-print (SIGSTOP: a network outage) → the tending cell Suspended with the reason, back
to Execute by itself; a print cancelled at the printer → Held with the reason, an operator's
Unhold prints the part again. Every part out once."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from cellctl.config.paths import CONFIG_DIR
from cellctl.rundir import EventTail
from cellctl.testkit.harness import read_events
from tests.helpers.linuxcnc import linuxcnc, operator, program, ready
from tests.helpers.octoprint import gcode, start_octoprint

pytestmark = [pytest.mark.process, pytest.mark.slow, pytest.mark.timeout(600)]


def _line(tmp_path: Path, url: str, key_file: Path) -> Path:
    line = yaml.safe_load((CONFIG_DIR / "print_line.yaml").read_text())
    line["twin"] = {"mode": "realtime", "rate": 4.0}
    line["machines"]["printer1"]["driver"] = {"octoprint": {
        "url": url, "api_key_file": str(key_file), "program": str(gcode(tmp_path / "blank.gcode")), "timeout": 1.0}}
    path = tmp_path / "print_line_octoprint.yaml"
    path.write_text(yaml.safe_dump(line, sort_keys=False))
    return path


def _wait(run_dir: Path, what, seconds: float = 120.0) -> dict:
    deadline, tail, seen = time.monotonic() + seconds, EventTail(run_dir / "events.jsonl"), []
    while time.monotonic() < deadline:
        seen += tail.read()
        found = [e for e in seen if what(e)]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no such event within {seconds}s")


def _unhold_and_finish(line: subprocess.Popen, run_dir: Path) -> dict:
    """The operator's Unhold of the tending cell (`cellctl cmd`), then the line to its end: every part
    out once. Returns the run's summary."""
    unhold = subprocess.run([sys.executable, "-m", "cellctl", "cmd", run_dir, "Unhold", "--cell", "tend"],
                            capture_output=True, text=True, timeout=60)
    assert unhold.returncode == 0, unhold.stdout + unhold.stderr
    out, _ = line.communicate(timeout=300)
    assert line.returncode == 0, out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["parts_out"], summary["lost"], summary["duplicated"], summary["stranded"]) == (3, 0, 0, 0), out
    return summary


def _tend(kind: str, **fields: object):
    return lambda e: e.get("cell") == "tend" and e["kind"] == kind and all(e.get(k) == v for k, v in fields.items())


def test_the_print_line_with_octoprint_s_virtual_printer_suspends_holds_and_delivers_every_part_once(tmp_path):
    octo = start_octoprint(tmp_path / "octoprint")
    run_dir = tmp_path / "run"
    line = subprocess.Popen([sys.executable, "-m", "cellctl", "run", _line(tmp_path, octo.url, octo.key_file),
                             "--run-dir", run_dir], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait(run_dir, _tend("machine_job", machine="printer1", part="printer1-2", state="started"))
        time.sleep(1.0)
        octo.pause()  # OctoPrint stops answering mid-print
        suspended = _wait(run_dir, _tend("packml", dest="Suspended"), 60)
        octo.resume()
        back = _wait(run_dir, lambda e: e.get("cell") == "tend" and e["kind"] == "packml" and e["dest"] == "Execute"
                     and e["sim_time"] > suspended["sim_time"], 60)
        _wait(run_dir, _tend("machine_job", machine="printer1", part="printer1-3", state="started"))
        time.sleep(1.0)
        assert octo.api("POST", "/api/job", json={"command": "cancel"}).status_code == 204  # at the printer
        _wait(run_dir, _tend("packml", dest="Held"), 60)
        summary = _unhold_and_finish(line, run_dir)
    finally:
        line.kill()
        octo.stop()
    assert summary["machine_jobs"]["cnc1"] == {f"printer1-{i}": 1 for i in (1, 2, 3)}
    faults = [(e["fault_kind"], e["reason"]) for e in read_events(run_dir) if e.get("cell") == "tend"
              and e["kind"] == "fault"]
    assert faults[0][0] == "machine_unavailable" and faults[0][1].startswith(
        f"part printer1-2: machine printer1 is offline (OctoPrint at {octo.url} does not answer (")
    assert faults[1] == ("machine_fault", "part printer1-3: step 1 (wait_job) failed: machine printer1: alarm during "
                                          "job printer1-3: print printer1-3 ended without finishing (cancelled or "
                                          "failed at the printer)")
    assert back["sim_time"] > suspended["sim_time"]
    runs = [e["runs"] for e in read_events(run_dir) if e.get("cell") == "tend" and e["kind"] == "machine_job"
            and e["machine"] == "printer1" and e["part"] == "printer1-3" and e["state"] == "started"]
    assert runs == [1, 2]  # the cancelled print, then the one that made the part


@pytest.mark.serial  # LinuxCNC's realtime thread: alone
def test_the_print_line_with_a_real_linuxcnc_holds_on_an_e_stop_and_goes_on_after_unhold(tmp_path):
    """The CNC is LinuxCNC's simulator (in a network namespace), by its ``driver: {linuxcnc: ...}``:
    the twin follows it (a program that ran to its end machines the part in the twin's vice). An
    E-stop at the machine mid-program holds the tending cell with LinuxCNC's words; the operator
    releases it, powers the machine on and homes it, Unholds the cell, and the part is machined
    again. Every part out once."""
    with linuxcnc(tmp_path / "linuxcnc") as host:
        ready(host)
        line = yaml.safe_load((CONFIG_DIR / "print_line.yaml").read_text())
        line["twin"] = {"mode": "realtime", "rate": 4.0}
        line["machines"]["cnc1"]["door"] = False  # (LinuxCNC's sim has none)
        line["machines"]["cnc1"]["job_time"] = 4.0
        line["machines"]["cnc1"]["driver"] = {"linuxcnc": {
            "host": host, "program": str(program(tmp_path / "linuxcnc" / "nc" / "O1001.ngc", seconds=3.0))}}
        config = tmp_path / "print_line_linuxcnc.yaml"
        config.write_text(yaml.safe_dump(line, sort_keys=False))
        run_dir = tmp_path / "run"
        proc = subprocess.Popen([sys.executable, "-m", "cellctl", "run", config, "--run-dir", run_dir],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            _wait(run_dir, _tend("machine_job", machine="cnc1", part="printer1-2", state="started"))
            time.sleep(1.0)
            operator(host, "estop on")
            _wait(run_dir, _tend("packml", dest="Held"), 60)
            ready(host)
            _unhold_and_finish(proc, run_dir)
        finally:
            proc.kill()
    faults = [(e["fault_kind"], e["reason"]) for e in read_events(run_dir) if e.get("cell") == "tend"
              and e["kind"] == "fault"]
    # (an E-stop drops the machine's power too: a look between the two may see it powered off first)
    assert all(kind == "machine_unavailable" for kind, _ in faults[:-1])
    assert faults[-1] == ("machine_fault", "part printer1-2: step 5 (wait_job) failed: machine cnc1: alarm during job "
                                           "printer1-2: E-stop on")
    runs = [e["runs"] for e in read_events(run_dir) if e.get("cell") == "tend" and e["kind"] == "machine_job"
            and e["machine"] == "cnc1" and e["part"] == "printer1-2" and e["state"] == "started"]
    assert runs == [1, 2]  # the program the E-stop ended, then the one that machined the part
