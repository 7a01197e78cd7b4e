"""The line keeps running through ordinary cell faults, injected from outside the processes as an
operator's bad day would bring them: a pause longer than the twin's silence timeout (SIGSTOP), a
receiver killed while its neighbour places a part on the shared station, a cell killed mid-motion
(SIGKILL). Each run must finish, with every part delivered once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = [pytest.mark.process, pytest.mark.slow, pytest.mark.timeout(300)]

PARTS = 3


def _events(run_dir: Path) -> list[dict]:
    path = run_dir / "events.jsonl"
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            pass  # a line being written
    return events


def _pid(events: list[dict], cell: str) -> int | None:
    started = [e["pid"] for e in events if e["kind"] == "process" and e.get("cell") == cell and e["event"] == "started"]
    return started[-1] if started else None


def _run_with_fault(tmp_path: Path, when: Callable[[list[dict]], bool], fault: Callable[[int], None],
                    cell: str) -> dict:
    run_dir = tmp_path / "run"
    demo = subprocess.Popen([sys.executable, "-m", "cellctl", "demo", "--parts", str(PARTS), "--json", "--run-dir",
                             str(run_dir), "--timeout", "240"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 120
    while True:
        assert demo.poll() is None, demo.communicate()
        assert time.monotonic() < deadline, "the fault's moment never came"
        events = _events(run_dir)
        if when(events):
            break
        time.sleep(0.005)
    fault(_pid(events, cell))
    out, err = demo.communicate(timeout=240)
    assert demo.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["parts_in"] == summary["parts_out"] == PARTS, summary
    assert summary["lost"] == summary["duplicated"] == 0, summary
    return summary


def _skill(events: list[dict], robot: str, skill: str, dest: str) -> bool:
    return any(e["kind"] == "skill" and e.get("robot") == robot and e["skill"] == skill and e["dest"] == dest
               for e in events)


def test_a_pause_longer_than_the_silence_timeout(tmp_path):
    """SIGSTOP for 5 s (the demo's silence timeout is 3 s): the twin drops the cell, the others go
    on; on SIGCONT the cell joins again and the line finishes."""
    def pause(pid: int) -> None:
        os.kill(pid, signal.SIGSTOP)
        time.sleep(5.0)
        os.kill(pid, signal.SIGCONT)

    summary = _run_with_fault(tmp_path, lambda ev: _skill(ev, "pack", "pick", "approach"), pause, "pack")
    assert summary["restarts"] == {}  # it carried on: nothing had to be restarted


def test_receiver_killed_while_its_neighbour_places(tmp_path):
    """Once a deadlock: the restarted receiver resynced while the sender was still placing; the
    sender committed IN_TRANSIT outside Transporting and nobody announced it."""
    summary = _run_with_fault(tmp_path, lambda ev: _skill(ev, "press", "place", "descend"),
                              lambda pid: os.kill(pid, signal.SIGKILL), "pack")
    assert summary["restarts"] == {"pack": 1}


def test_cell_killed_mid_motion(tmp_path):
    """Once an Abort: the restarted cell's homing was refused while the dead one's motion ran."""
    summary = _run_with_fault(tmp_path, lambda ev: _skill(ev, "press", "pick", "approach"),
                              lambda pid: os.kill(pid, signal.SIGKILL), "press")
    assert summary["restarts"] == {"press": 1}
