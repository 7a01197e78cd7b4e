"""The launcher supervises by state and progress: a killed twin comes back from its checkpoint, a
stuck line ends with a diagnosis, a killed launcher's run is resumed, an orphaned twin exits by
itself, and the summary counts what really happened to the parts."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cellctl.config.loader import load_config
from cellctl.custody.ledger import Ledger
from cellctl.config.paths import CONFIG_DIR
from cellctl.line.summary import count_parts
from cellctl.drivers.twin import TwinDriver
from cellctl.skills.context import SkillContext
from cellctl.skills.registry import create
from cellctl.skills.runner import run
from tests.conftest import CONFIGS
from cellctl.twin.checkpoint import SavedPart, SavedRobot, WorldState


CLI = [sys.executable, "-m", "cellctl"]
DEMO = CONFIG_DIR / "demo_line.yaml"


def _events(run_dir: Path) -> list[dict]:
    path = run_dir / "events.jsonl"
    out = []
    for line in (path.read_text().splitlines() if path.exists() else []):
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def _running(pid: int, run_dir: Path) -> bool:
    """A live process of this run (not a zombie waiting for init, not a reused pid)."""
    try:
        return str(run_dir).encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _world(parts: list[SavedPart], log: list[dict]) -> WorldState:
    robots = {"press": SavedRobot((0.0,) * 7, "open", {}), "pack": SavedRobot((0.0,) * 7, "open", {})}
    return WorldState(2400, tuple(parts), robots, {"infeed": 3}, tuple(log), 1, 0)


def _spawned(*ids: str) -> list[dict]:
    return [{"seq": i, "event": "spawned", "part": p, "station": "infeed", "time": 1.0} for i, p in enumerate(ids, 1)]


def test_a_part_on_the_floor_is_lost_and_one_left_on_a_station_is_stranded(tmp_path):
    config = load_config(DEMO)
    ledger = Ledger(tmp_path / "ledger-press.sqlite")
    ledger.own("part-2", "box", "infeed", 1.0)
    ledger.close()
    log = _spawned("part-1", "part-2", "part-3") + [{"seq": 4, "event": "consumed", "part": "part-1",
                                                     "station": "outfeed", "time": 9.0}]
    floor = SavedPart("part-3", "box", (0.3, 0.3, 0.02), (0, 0, 0, 1), None)  # dropped: still in the twin
    infeed = config.stations["infeed"].position
    on_station = SavedPart("part-2", "box", (infeed[0], infeed[1], infeed[2] + 0.02), (0, 0, 0, 1), None)
    counts = count_parts(config, tmp_path, _world([floor, on_station], log))
    assert (counts.parts_in, counts.parts_out, counts.lost, counts.stranded) == (3, 1, 1, 1)
    assert counts.lost_parts == ["part-3"]
    assert [vars(p) for p in counts.stranded_parts] == [
        {"part": "part-2", "where": "infeed", "ledger": "press", "state": "OWNED"}]


def test_duplicates_are_found_over_time_not_only_in_the_final_state(tmp_path):
    """Two ledgers OWNED the part at the same time, although by the end one of them gave it on."""
    press, pack = Ledger(tmp_path / "ledger-press.sqlite"), Ledger(tmp_path / "ledger-pack.sqlite")
    press.own("part-1", "box", "infeed", 1.0)
    pack.own("part-1", "box", "press", 2.0)  # while press still OWNS it
    press.in_transit("part-1", "pack", 3.0)
    press.given("part-1", 4.0)
    pack.own("part-2", "box", "press", 5.0)  # a clean transfer
    for ledger in (press, pack):
        ledger.close()
    counts = count_parts(load_config(DEMO), tmp_path, _world([], _spawned("part-1")))
    assert counts.duplicated_parts == ["part-1"]


@pytest.mark.process
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_stuck_line_ends_with_a_diagnosis(tmp_path):
    """A cell Held for a part it must not take: no progress for the watchdog's time → the run ends,
    not finished, naming who waits for what."""
    config = tmp_path / "typed.yaml"
    config.write_text((CONFIGS / "one_cell.yaml").read_text()
                      .replace(", feed: {every: 2.0, count: 5, prefix: part}", "")
                      .replace("    parts: 5", "    parts: 5\n    part_types: [box]")
                      .replace("robots:", "part_types: {box: {}, disc: {}}\nparts: [{id: d1, type: disc, "
                                          "station: infeed}]\nrobots:"))
    result = subprocess.run([*CLI, "run", str(config), "--watchdog", "5", "--json", "--run-dir", str(tmp_path / "run")],
                            capture_output=True, text=True, timeout=200)
    assert result.returncode == 1, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["finished"] is False and summary["ended"] == "stalled"
    assert summary["diagnosis"] == ["press: Held, fault: part d1 is of type '?'; this cell works on ['box']"]
    assert summary["stranded_parts"] == [{"part": "d1", "where": "infeed", "ledger": None, "state": None}]
    assert json.loads((tmp_path / "run" / "summary.json").read_text()) == summary
    assert "Diagnosis" in (tmp_path / "run" / "report.md").read_text()


@pytest.mark.process
@pytest.mark.timeout(60)
def test_a_twin_whose_launcher_is_gone_exits_by_itself(tmp_path):
    config = tmp_path / "orphan.yaml"
    config.write_text((CONFIGS / "kuka.yaml").read_text().replace("twin: {", "twin: {orphan_grace: 2, ", 1))
    log = tmp_path / "twin.log"
    # a parent that starts the twin and dies at once, as a killed launcher would
    parent = subprocess.run(["bash", "-c", f"{sys.executable} -m cellctl twin serve {config} --port 0 "
                                           f"--parent $$ > {log} 2>&1 & echo $!"], capture_output=True, text=True, timeout=30)
    pid = int(parent.stdout.strip())
    deadline = time.monotonic() + 40
    while "CELLCTL-TWIN-READY" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)  # started (a busy machine takes a while): only then can it be seen to leave
    while _running(pid, tmp_path) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _running(pid, tmp_path):
        status = Path(f"/proc/{pid}/status").read_text()
        peers = subprocess.run(["ss", "-tnp"], capture_output=True, text=True).stdout
        os.kill(pid, signal.SIGKILL)
        pytest.fail(f"the orphaned twin is still running after 40 s\nlog:\n{log.read_text()}\nstatus:\n{status}\n"
                    f"its TCP peers:\n" + "\n".join(line for line in peers.splitlines() if f"pid={pid}," in line))
    assert "the process that started it is gone and no client has spoken for 2.0s: exiting" in log.read_text()


@pytest.mark.process
@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_killed_launcher_is_resumed(tmp_path):
    """SIGKILL the launcher mid-run: the twin and cells live on as orphans (no broken pipe kills
    them); `cellctl run --resume` stops them, restores the twin and finishes the run."""
    run_dir = tmp_path / "run"
    launcher = subprocess.Popen([*CLI, "demo", "--parts", "30", "--run-dir", str(run_dir)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while sum(1 for e in _events(run_dir) if e["kind"] == "part_done" and e["cell"] == "pack") < 2:
        assert launcher.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    launcher.kill()
    launcher.wait()
    pids = json.loads((run_dir / "pids.json").read_text())
    time.sleep(2.0)  # long enough for a broken pipe to bite
    orphans = [pids["twin"], *pids["cells"].values()]
    assert all(_running(p, run_dir) for p in orphans)
    result = subprocess.run([*CLI, "run", "--resume", str(run_dir), "--json"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["finished"] and summary["parts_in"] == summary["parts_out"] == 30, summary
    assert summary["lost"] == summary["duplicated"] == summary["stranded"] == 0
    assert not any(_running(p, run_dir) for p in orphans)
    resumed = [e for e in _events(run_dir) if e["kind"] == "resumed"]
    assert len(resumed) == 1 and sorted(resumed[0]["stopped"]) == sorted([pids["twin"], *pids["cells"].values()])


@pytest.mark.process
@pytest.mark.timeout(120)
def test_a_restarted_twin_goes_on_from_its_checkpoint(twin_factory, tmp_path):
    """Parts (one in a gripper), joints, feed counters and the part log come back; time does not."""
    checkpoint = tmp_path / "twin.sqlite"
    twin = twin_factory(CONFIGS / "kuka.yaml", extra=["--checkpoint", str(checkpoint)])
    with TwinDriver(twin.endpoint, "press", timeout=10) as robot:
        ctx = SkillContext.create(robot, stations={"infeed": (0.55, -0.35, 0.3)}, locate=robot.locate)
        assert run(create("pick", ctx, {"station": "infeed"})).ok
        joints_before = robot.joint_state().positions
        parts_before = {p["id"]: p["held_by"] for p in robot.request("list_parts")}
        time.sleep(1.0)  # a periodic checkpoint after the part event's
        t_before = robot.now()
    twin.kill()
    restored = twin_factory(CONFIGS / "kuka.yaml", extra=["--checkpoint", str(checkpoint), "--restore",
                                                          "--resume-at", str(t_before + 5.0)])
    assert restored.info["restored"] is True and restored.info["time"] >= t_before + 5.0
    with TwinDriver(restored.endpoint, "press", timeout=10) as robot:
        assert parts_before == {"part-1": "press"}
        assert {p["id"]: p["held_by"] for p in robot.request("list_parts")} == parts_before
        joints = robot.joint_state().positions
        assert max(abs(a - b) for a, b in zip(joints, joints_before)) < 1e-3
        log = robot.request("part_log")
        assert log == []  # nothing entered or left the world (part-1 is the scene's own)
        assert robot.now() >= t_before + 5.0


@pytest.mark.process
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_paused_twin_holds_the_cells_and_they_go_on_when_it_resumes(tmp_path):
    """SIGSTOP of the twin for 8 s (longer than a cell's request timeout): the cells go Held with
    "twin lost", the launcher Unholds them once the same twin answers again, the run finishes."""
    run_dir = tmp_path / "run"
    launcher = subprocess.Popen([*CLI, "demo", "--parts", "4", "--json", "--run-dir", str(run_dir)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(e["kind"] == "part_done" for e in _events(run_dir)):
        assert launcher.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    twin = json.loads((run_dir / "pids.json").read_text())["twin"]
    os.kill(twin, signal.SIGSTOP)
    time.sleep(8.0)
    os.kill(twin, signal.SIGCONT)
    out, err = launcher.communicate(timeout=240)
    assert launcher.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["finished"] and summary["parts_out"] == 4 and summary["restarts"] == {}, summary
    events = _events(run_dir)
    assert any(e["kind"] == "fault" and e["reason"].startswith("twin lost") for e in events)
    assert any(e["kind"] == "unhold" and e["ok"] for e in events)


def test_a_twin_still_starting_when_the_launcher_stops_is_stopped_with_it(tmp_path):
    """The cells start while the twin loads; a Ctrl-C or SIGTERM that lands while the launcher
    waits for the twin's announcement must stop that twin too (it is the keeper's ``starting``
    until it announces itself), and the twin's port is closed."""
    from rich.console import Console

    from cellctl.line.twin_keeper import TwinKeeper
    from cellctl.rundir import RunDir

    run = RunDir(tmp_path)
    (tmp_path / "line.yaml").write_text((CONFIGS / "kuka_lockstep.yaml").read_text())
    keeper = TwinKeeper(run, load_config(str(run.line_config)), None, Console(quiet=True), lambda *a, **k: None)
    keeper.spawn(restore=False)
    endpoint, twin = keeper.endpoint, keeper.starting
    assert keeper.pid == twin.pid
    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt  # what stop_on_sigterm turns a SIGTERM into

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.05)  # the interrupt lands while the twin still imports
    try:
        with pytest.raises(KeyboardInterrupt):
            keeper.wait_ready()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert keeper.starting is twin and twin.alive()
    keeper.stop(5.0)
    assert not twin.alive()
    port = int(endpoint.rsplit(":", 1)[1])
    with pytest.raises(ConnectionRefusedError):  # nobody listens on the twin's port any more
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
