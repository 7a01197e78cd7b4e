"""Scenario files and ``cellctl test``: every expectation type passing and failing with what was
expected and found, malformed files named key by key (malformed wins over failed), JUnit XML that
validates, reproducible fault-free runs, faults landing at their sim times, and campaigns giving
the same verdicts on 1 worker, 2 workers and a Ray cluster."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import xmlschema
import zmq
from junitparser import JUnitXml

from benchmarks.campaign import phases
from cellctl.cell.controller import Cell, CellSetup
from cellctl.config.loader import load_config
from cellctl.cell.control import ControlServer
from cellctl.handoff.link import HandoffLink
from cellctl.custody.ledger import Ledger
from cellctl.config.paths import CONFIG_DIR
from cellctl.testkit.reproducible import canonical_events
from cellctl.testkit.harness import read_events
from cellctl.drivers.fake import FakeDriver
from cellctl.drivers.fake_world import FakeWorld
from cellctl.drivers.twin_wire import pack, unpack
from cellctl.skills.events import ListSink
from tests.helpers.ci_log import to_ci_log

pytestmark = pytest.mark.process  # starts twins, cells, launchers or bridges

CLI = [sys.executable, "-m", "cellctl", "test"]
DEMO = CONFIG_DIR / "demo_line.yaml"
SCENARIOS = CONFIG_DIR / "scenarios"
JUNIT_XSD = Path(__file__).parent / "data" / "junit.xsd"


def _scenario(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"version: 1\nline: {DEMO}\n{text}")
    return path


def _test(*args: object, timeout: float = 600) -> tuple[int, dict, str]:
    proc = subprocess.run([*CLI, *map(str, args), "--json"], capture_output=True, text=True, timeout=timeout)
    lines = proc.stdout.strip().splitlines()
    return proc.returncode, json.loads(lines[-1]) if lines else {}, proc.stdout + proc.stderr


def _checks(result: dict) -> dict[str, dict]:
    return {c["name"]: c for c in result["checks"]}


def test_every_expectation_type_passes_and_fails_with_expected_and_found(tmp_path):
    passing = _scenario(tmp_path, "all_pass", "parts: 2\nexpect: {parts_out: 2, lost: 0, duplicated: 0, stranded: 0, "
                                              "within: 60, never: [Held, Aborted], throughput_min: 100}\n")
    failing = _scenario(tmp_path, "all_fail", "parts: 2\nexpect: {parts_out: 3, lost: 1, duplicated: 1, stranded: 1, "
                                              "within: 5, never: [Execute], throughput_min: 5000}\n")
    code, out, text = _test(passing, failing, "--workers", 2, "--run-dir", tmp_path / "runs",
                            "--junit", tmp_path / "junit.xml")
    assert code == 1, text
    good, bad = out["results"]
    assert good["passed"] and all(c["ok"] for c in good["checks"]) and len(good["checks"]) == 8, good["checks"]
    assert not bad["passed"] and not any(c["ok"] for c in bad["checks"]), bad["checks"]
    checks = _checks(bad)
    assert (checks["parts_out"]["expected"], checks["parts_out"]["found"]) == ("3", "2")
    assert (checks["lost"]["expected"], checks["lost"]["found"]) == ("1", "0")
    assert (checks["duplicated"]["expected"], checks["duplicated"]["found"]) == ("1", "0")
    assert (checks["stranded"]["expected"], checks["stranded"]["found"]) == ("1", "0")
    assert checks["within"]["expected"] == "finished by 5 s of sim time"
    assert checks["within"]["found"].startswith("finished at ")
    assert checks["never Execute"]["found"].startswith(("press entered Execute at 0.06 s",
                                                        "pack entered Execute at 0.06 s"))
    assert checks["throughput_min"]["expected"] == ">= 5000 parts/h of sim time"
    assert checks["throughput_min"]["found"].endswith("parts/h")
    # the table names each failed expectation with what was expected and what was found
    assert "parts_out: expected 3, found 2" in text and "lost: expected 1, found 0" in text
    xml = tmp_path / "junit.xml"
    xmlschema.XMLSchema(JUNIT_XSD).validate(xml)
    suite = next(iter(JUnitXml.fromfile(str(xml))))
    assert (suite.tests, suite.failures, suite.errors) == (2, 1, 0)
    cases = {case.name: case for case in suite}
    assert cases["all_pass"].is_passed
    assert cases["all_fail"].result[0].message == "parts_out: expected 3, found 2"


MALFORMED = {
    "unknown_fault": ("parts: 2\nfaults: [{at: 3.0, explode: press}]\nexpect: {}\n",
                      "faults.0: expected one of kill, robot_fault, command, cut_link or machine_fault (with at)"),
    "unknown_cell": ("parts: 2\nfaults: [{at: 3.0, kill: weld}]\nexpect: {}\n",
                     "faults.0: expected a cell of the line (press, pack), found 'weld'"),
    "bad_command": ("parts: 2\nfaults: [{at: 3.0, command: {cell: pack, send: [Jump]}}]\nexpect: {}\n",
                    "faults.0.command.command.send: expected PackML commands"),
    "bad_state": ("parts: 2\nexpect: {never: [Broken]}\n", "expect.never: expected PackML states"),
    "negative_time": ("parts: 2\nfaults: [{at: -1, kill: press}]\nexpect: {}\n",
                      "faults.0.kill.at: expected greater than or equal to 0, found -1"),
    "no_expect": ("parts: 2\n", "expect: expected a value (required key), found nothing"),
    "typo": ("parts: 2\nexpect: {parts_ot: 2}\n", "expect.parts_ot: expected only keys of the schema"),
    "not_neighbours": ("parts: 2\nfaults: [{at: 3.0, cut_link: [press, press], for: 2}]\nexpect: {}\n",
                       "faults.0.cut_link: expected two neighbours"),
}


def test_malformed_scenarios_are_named_key_by_key_and_win_over_a_failure(tmp_path):
    paths = [_scenario(tmp_path, name, text) for name, (text, _) in MALFORMED.items()]
    missing_line = tmp_path / "missing_line.yaml"
    missing_line.write_text("version: 1\nline: nowhere.yaml\nparts: 1\nexpect: {}\n")
    broken_line = tmp_path / "broken_line.yaml"
    (tmp_path / "line.yaml").write_text("version: 1\ntwin: {mode: lockstep, physics_hz: -5}\n")
    broken_line.write_text("version: 1\nline: line.yaml\nparts: 1\nexpect: {}\n")
    realtime = tmp_path / "realtime.yaml"
    realtime.write_text(f"version: 1\nline: {Path(__file__).parent / 'configs' / 'kuka.yaml'}\nparts: 1\nexpect: {{}}\n")
    failing = _scenario(tmp_path, "fails", "parts: 1\nexpect: {parts_out: 7}\n")
    code, out, text = _test(*paths, missing_line, broken_line, realtime, failing, "--run-dir", tmp_path / "runs")
    assert code == 2, text
    by_name = {r["name"]: r for r in out["results"]}
    for name, (_, message) in MALFORMED.items():
        lines = by_name[name]["malformed"]
        assert any(line.startswith(f"{tmp_path / name}.yaml: {message}") for line in lines), (name, lines)
    assert by_name["missing_line"]["malformed"] == [f"{tmp_path / 'nowhere.yaml'}: cannot read the file: "
                                                    "No such file or directory"]
    assert any(line.startswith(f"{tmp_path / 'line.yaml'}: twin.physics_hz: expected")
               for line in by_name["broken_line"]["malformed"])
    assert "expected a line config in lockstep" in by_name["realtime"]["malformed"][0]
    assert not by_name["fails"]["passed"] and not by_name["fails"]["malformed"]  # the valid one still ran
    assert _checks(by_name["fails"])["parts_out"]["found"] == "1"


def test_a_fault_free_run_is_the_same_run_twice(tmp_path):
    """Same config, parts and seed, no process faults: the same events at the same sim times."""
    code, out, text = _test(SCENARIOS / "demo_clean.yaml", SCENARIOS / "demo_clean.yaml", "--workers", 2,
                            "--run-dir", tmp_path)
    assert code == 0, text
    first, second = out["results"]
    runs = [canonical_events(read_events(Path(r["run_dir"]))) for r in (first, second)]
    assert len(runs[0]) > 150 and runs[0] == runs[1]
    assert first["fingerprint"] == second["fingerprint"] and first["end_s"] == second["end_s"]
    run = Path(first["run_dir"])  # a campaign draws no timeline (matplotlib's ~0.4 s a scenario): the report says how
    assert "`cellctl report" in (run / "report.md").read_text() and not (run / "timeline.png").exists()
    # the same --run-dir again: refused before anything starts, the first campaign's runs untouched
    events = (run / "events.jsonl").read_bytes()
    code, _, text = _test(SCENARIOS / "demo_clean.yaml", "--run-dir", tmp_path)
    assert code == 2 and f"run directory {tmp_path} holds runs already (001-demo_clean, 002-demo_clean)" in text
    assert (run / "events.jsonl").read_bytes() == events


def test_faults_land_at_their_sim_times(tmp_path):
    code, out, text = _test(SCENARIOS / "demo_robot_fault.yaml", SCENARIOS / "demo_kill_press.yaml",
                            "--workers", 2, "--run-dir", tmp_path)
    assert code == 0, text
    fault, kill = out["results"]
    assert [(f["fault"], f["applied_at"]) for f in fault["faults"]] == [("RobotFault", 20.0), ("CommandFault", 25.0)]
    assert fault["faults"][1]["result"] == "command {'command': 'Unhold', 'by': 'scenario'}: queued"
    held = [e for e in read_events(Path(fault["run_dir"])) if e.get("kind") == "packml" and e["cell"] == "pack"
            and e["dest"] in ("Held", "Execute")]
    assert [e["dest"] for e in held][-2:] == ["Held", "Execute"] and 20.0 <= held[-2]["sim_time"] <= 25.0
    assert [(f["fault"], f["applied_at"]) for f in kill["faults"]] == [("KillFault", 12.0)]
    assert kill["summary"]["restarts"] == {"press": 1}


def test_a_ray_address_where_no_cluster_answers_is_one_clear_line_not_a_wait(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    proc = subprocess.run([*CLI, str(SCENARIOS / "demo_clean.yaml"), "--ray", f"127.0.0.1:{port}",
                           "--run-dir", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert f"--ray 127.0.0.1:{port}: no Ray head answers there" in " ".join(proc.stderr.split())


def test_sigterm_stops_every_running_scenario_and_leaves_no_process(tmp_path):
    runs = tmp_path / "runs"
    proc = subprocess.Popen([*CLI, str(SCENARIOS / "demo_kill_press.yaml"), str(SCENARIOS / "demo_cut_link.yaml"),
                             "--workers", "2", "--run-dir", str(runs)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 60
    while len(list(runs.glob("*/pids.json"))) < 2:  # both lines are up
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 1 and "stopped (interrupted): no verdict" in err
    for pids in runs.glob("*/pids.json"):
        started = json.loads(pids.read_text())
        for pid in [started["twin"], *started["cells"].values()]:
            cmdline = Path(f"/proc/{pid}/cmdline")
            assert not (cmdline.exists() and str(runs).encode() in cmdline.read_bytes()), f"pid {pid} still runs"
        assert json.loads((pids.parent / "summary.json").read_text())["ended"] == "interrupted"


# -- campaigns ----------------------------------------------------------------------------------------
CAMPAIGN = {  # name -> scenario body: passing, failing, with and without faults
    "clean": "parts: 2\nexpect: {parts_out: 2, lost: 0, never: [Held]}\n",
    "clean_3": "parts: 3\nexpect: {parts_out: 3, within: 60}\n",
    "kill_press": "parts: 3\nfaults: [{at: 8.0, kill: press}]\nexpect: {parts_out: 3, lost: 0, duplicated: 0}\n",
    "kill_pack": "parts: 3\nfaults: [{at: 14.0, kill: pack}]\nexpect: {parts_out: 3, stranded: 0}\n",
    "robot_fault": ("parts: 3\nfaults: [{at: 10.0, robot_fault: press}, {at: 10.0, command: {cell: press, "
                    "send: [Unhold], when: Held}}]\nexpect: {parts_out: 3, never: [Aborted]}\n"),
    "cut_link": "parts: 3\nfaults: [{at: 6.0, cut_link: [press, pack], for: 4.0}]\nexpect: {parts_out: 3, lost: 0}\n",
    "too_slow": "parts: 2\nexpect: {within: 5}\n",
    "held_is_seen": ("parts: 2\nfaults: [{at: 5.0, robot_fault: pack}, {at: 5.0, command: {cell: pack, "
                     "send: [Unhold], when: Held}}]\nexpect: {never: [Held]}\n"),
}


def _verdicts(out: dict) -> dict[str, tuple[bool, list[str]]]:
    return {r["name"]: (r["passed"], sorted(c["name"] for c in r["checks"] if not c["ok"])) for r in out["results"]}


@pytest.fixture
def ray_cluster():
    """A local Ray head (``ray start --head``), stopped after the test. Its temp dir is short
    (``/tmp/rayXXXX``): Ray's socket paths must stay under the 107 bytes of an AF_UNIX address,
    which a pytest-xdist worker's tmp path would exceed."""
    ray = shutil.which("ray", path=os.path.dirname(sys.executable))
    assert ray, "ray is a test dependency (pyproject.toml's test extra)"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    env = {**os.environ, "RAY_TMPDIR": temp}
    start = subprocess.run([ray, "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
                            "--disable-usage-stats"], capture_output=True, text=True, timeout=180, env=env)
    assert start.returncode == 0, start.stdout + start.stderr
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True, timeout=120, env=env)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.serial
@pytest.mark.timeout(1500)
def test_a_campaign_gives_the_same_verdicts_on_1_and_2_workers_and_on_ray(tmp_path, ray_cluster, pytestconfig):
    paths = [_scenario(tmp_path, name, body) for name, body in CAMPAIGN.items()]
    verdicts, rates, overheads = {}, {}, {}
    for label, args in (("1 worker", ["--workers", 1]), ("2 workers", ["--workers", 2]), ("ray", ["--ray", ray_cluster])):
        code, out, text = _test(*paths, *args, "--run-dir", tmp_path / label.replace(" ", "_"), timeout=1200)
        assert code == 1, text  # too_slow and held_is_seen fail as they should
        verdicts[label] = _verdicts(out)
        rates[label] = round(len(paths) / out["wall_s"] * 3600)
        if label != "ray":  # the lines' run directories are here: the campaign's wall ÷ their ticking
            ticking = sum(phases(r)["ticking"] for r in out["results"])
            overheads[label] = round(out["wall_s"] / ticking, 2)
    assert verdicts["1 worker"] == verdicts["2 workers"] == verdicts["ray"], verdicts
    expected_failures = {name for name, (passed, _) in verdicts["1 worker"].items() if not passed}
    assert expected_failures == {"too_slow", "held_is_seen"}, verdicts["1 worker"]
    assert verdicts["1 worker"]["held_is_seen"][1] == ["never Held"]
    to_ci_log(pytestconfig, f"campaign of {len(paths)} scenarios, scenarios per hour: {rates}; campaign overhead "
                            f"(wall ÷ the lines' ticking): {overheads}")


# -- the cut_link fault on the cell's control socket ------------------------------------------------
def _ask(server: ControlServer, endpoint: str, op: str, **args: object) -> dict:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(endpoint)
        sock.send(pack({"id": 1, "op": op, "args": args}))
        for _ in range(200):  # the cell serves between its ticks
            server.serve_pending()
            if sock.poll(10):
                return unpack(sock.recv())
        raise AssertionError(f"no answer to {op}")
    finally:
        sock.close(0)


def test_cut_link_holds_the_links_messages_back_until_it_mends_and_is_refused_where_it_must_be(tmp_path):
    """In-process (FakeDriver, a real HandoffLink and control socket): the link is silent while cut,
    what was sent meanwhile goes out in order when it mends; bad arguments, the status socket and a
    real robot's cell are refused."""
    config = load_config(DEMO)
    world = FakeWorld.from_config(config)
    driver = FakeDriver.from_config("pack", config.robots["pack"], world)
    wire: list[dict] = []
    link = HandoffLink("receiver", "pack", "press", lambda peer, msg, **kw: wire.append(msg), 1, lambda *a, **k: None)
    cell = Cell(CellSetup.from_config(config, "pack", driver, world, Ledger(tmp_path / "ledger.sqlite"), ListSink(),
                                      upstream=link))
    server = ControlServer(cell)
    try:
        for args in ({"peer": "weld", "seconds": 5}, {"peer": "press", "seconds": 0}, {"peer": "press", "seconds": True},
                     {"peer": "press"}, {"peer": "press", "seconds": 5, "extra": 1}):
            reply = _ask(server, server.endpoint, "cut_link", **args)
            assert reply["error"]["code"] == "bad_args" and "one of ['press']" in reply["error"]["message"], args
        reply = _ask(server, server.status_endpoint, "cut_link", peer="press", seconds=5)
        assert reply["error"]["code"] == "read_only"
        assert _ask(server, server.endpoint, "cut_link", peer="press", seconds=5)["ok"]
        assert link.cut_until == pytest.approx(driver.now() + 5)
        before = len(wire)
        link.send_extra("Resync", received=[])
        link.send_extra("Resync", received=["part-9"])
        assert len(wire) == before  # silent while cut
        world.clock.advance(driver.now() + 5.0)
        cell.tick()
        assert link.cut_until is None
        assert [m.get("received") for m in wire[before:] if m["type"] == "Resync"] == [[], ["part-9"]]
        cell.simulated = False  # a real robot's cell: a network fault is a real one
        reply = _ask(server, server.endpoint, "cut_link", peer="press", seconds=5)
        assert reply["error"]["code"] == "refused" and "real" in reply["error"]["message"]
    finally:
        server.close()
        driver.close()


def test_machine_faults_land_at_their_sim_times_and_a_scenario_names_an_unknown_machine(tmp_path):
    """A printer beside the demo line: its scenario faults (its own operator's pause, offline and
    back, an alarm) reach the twin's machine at their sim times; the line runs on untouched."""
    import yaml

    line = yaml.safe_load(DEMO.read_text())
    line["stations"]["bed"] = {"position": [0.3, -0.7, 0.3]}
    line["machines"] = {"printer1": {"kind": "printer", "station": "bed", "job_time": 5.0, "makes": "box"}}
    line_path = tmp_path / "demo_printer.yaml"
    line_path.write_text(yaml.safe_dump(line))
    faults = ("faults:\n  - {at: 4.0, machine_fault: printer1, fault: offline, reason: cable}\n"
              "  - {at: 6.0, machine_fault: printer1, fault: online}\n"
              "  - {at: 8.0, machine_fault: printer1, fault: fail, reason: nozzle clogged}\n")
    scenario = tmp_path / "printer.yaml"
    scenario.write_text(f"version: 1\nline: {line_path}\nparts: 1\n{faults}expect: {{parts_out: 1, lost: 0}}\n")
    code, out, text = _test(scenario, "--run-dir", tmp_path / "runs")
    assert code == 0, text
    [result] = out["results"]
    assert [(f["fault"], f["applied_at"], f["result"]) for f in result["faults"]] == [
        ("MachineFault", 4.0, "offline: machine offline (cable)"), ("MachineFault", 6.0, "online: machine idle"),
        ("MachineFault", 8.0, "fail: machine fault (nozzle clogged)")]
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(f"version: 1\nline: {line_path}\nparts: 1\nfaults:\n"
                       f"  - {{at: 4.0, machine_fault: cnc9, fault: fail}}\nexpect: {{parts_out: 1}}\n")
    code, _, text = _test(unknown, "--run-dir", tmp_path / "runs2")
    assert code == 2 and "faults.0.machine_fault: expected a machine of the line (printer1), found 'cnc9'" in text
