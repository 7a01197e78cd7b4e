"""The line's restart policy on a virtual clock: backoff in a crash loop, giving up past the hourly
limit, and a backoff in progress that never holds up the watchdog or the twin check."""

from __future__ import annotations

import subprocess
import sys

import pytest
from rich.console import Console

from cellctl.line.launcher import Line
from cellctl.line.restart import RestartPolicy
from tests.conftest import CONFIGS


class VirtualTime:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_crash_loop_backs_off_doubling_up_to_the_cap():
    clock = VirtualTime()
    policy = RestartPolicy(clock=clock)
    delays = []
    for _ in range(8):
        delays.append(policy.schedule("press") - clock.now)
        clock.now += 1.0  # each restart dies a second later
    assert delays == [0.0, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    assert policy.restarts["press"] == 8


def test_restarts_far_apart_start_at_once():
    clock = VirtualTime()
    policy = RestartPolicy(clock=clock)
    for _ in range(5):
        assert policy.schedule("press") == clock.now
        clock.now += 60.0  # outside the burst window


def test_past_the_hourly_limit_it_gives_up_and_an_hour_later_it_may_again():
    clock = VirtualTime()
    policy = RestartPolicy(max_per_hour=3, clock=clock)
    for _ in range(3):
        assert policy.schedule("twin") is not None
        clock.now += 100.0
    assert policy.schedule("twin") is None
    assert policy.schedule("press") is not None  # per process
    clock.now += 3600.0
    assert policy.schedule("twin") is not None


@pytest.fixture
def line(tmp_path, cellctl_twin):
    """A line on a virtual clock whose twin is a real one, and whose cell 'press' just died."""
    clock = VirtualTime()
    line = Line.create(str(CONFIGS / "one_cell.yaml"), tmp_path / "run", 1, Console(quiet=True), watchdog_s=5.0,
                       clock=clock)
    twin = cellctl_twin(line.effective)
    line.keeper.twin = twin
    dead = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    dead.wait()
    line.procs["press"] = dead
    for _ in range(4):  # a crash loop so far: the next restart is 4 s away
        line.policy.schedule("press")
    yield line, clock, twin
    line.events.close()


def test_a_restart_backoff_does_not_hold_up_the_watchdog(line):
    line, clock, _ = line
    started = clock.now
    assert line.step(started, timeout=3600) is None
    assert line.due["press"] == clock.now + 8.0 and "press" not in line.procs  # waiting, not started
    clock.now += 6.0  # past the watchdog's 5 s, before the restart is due
    outcome = line.step(started, timeout=3600)
    assert outcome is not None and outcome.ended == "stalled"
    assert "press" in line.due  # still waiting for its backoff when the watchdog spoke


def test_a_restart_backoff_does_not_hold_up_the_twin_check(line):
    line, clock, twin = line
    assert line.step(clock.now, timeout=3600) is None  # press is backing off
    twin.kill()
    twin.proc.wait()
    line.step(clock.now, timeout=3600)
    events = [e for e in line.tail.read() if e["kind"] == "process" and e.get("component") == "twin"]
    assert [e["event"] for e in events][:2] == ["exited", "started"]  # noticed and restarted at once
    assert line.keeper.alive() and line.keeper.twin is not twin
    line.keeper.twin.stop()
