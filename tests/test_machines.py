"""Machines in the twin behind the machine contract: a printer makes its part on its bed after its
job time, a CNC turns the blank in its fixture into a machined part, each refuses what a machine
would refuse with why, and scenario faults (an alarm, offline and back, a pause at the machine)
behave as the contract says. ``check_machine`` passes for both over the twin's API."""

from __future__ import annotations

import time

import pytest

from cellctl.config.loader import ConfigError, load_config
from cellctl.drivers.machine import MachineCheck, MachineError, MachineStatus, check_machine
from cellctl.twin.world import World
from tests.conftest import CONFIGS

CONFIG = CONFIGS / "machines.yaml"


@pytest.fixture
def world():
    w = World(load_config(CONFIG))
    yield w
    w.close()


def _run(world: World, seconds: float) -> None:
    for _ in range(int(round(seconds / world.dt))):
        world.step()


def test_a_printer_makes_its_part_after_its_job_time(world):
    m = world.machines
    event = m.start("printer1", "part-7", world.time)
    assert event["event"] == "started"
    _run(world, 2.0)
    state = m.get("printer1").state(world.time)
    assert state["status"] == "running" and 0.45 < state["progress"] < 0.55 and "part-7" not in world.parts.by_id
    with pytest.raises(MachineError, match="machine printer1 refuses job part-8: it runs job part-7"):
        m.start("printer1", "part-8", world.time)
    _run(world, 2.5)
    assert m.get("printer1").state(world.time)["status"] == "done"
    assert world.parts.by_id["part-7"].type == "box" and world.occupied("bed")
    assert [e["event"] for e in world.feeds.log] == ["spawned"]  # a part in, counted as a feed's
    with pytest.raises(MachineError, match="job part-7's part waits on bed: clear it first"):
        m.start("printer1", "part-8", world.time)
    m.clear("printer1", world.time)
    m.start("printer1", "part-8", world.time)  # the bed is not clear: a printer cannot see that...
    _run(world, 4.5)
    state = m.get("printer1").state(world.time)  # ...and the print collides
    assert (state["status"], state["reason"]) == ("fault", "print part-8 collided with part-7 on bed")


def test_a_cnc_works_only_on_the_blank_in_its_fixture_behind_its_door(world):
    m = world.machines
    with pytest.raises(MachineError, match=r"refuses job blank-1: no blank in its fixture on vice \(found nothing\)"):
        m.start("cnc1", "blank-1", world.time)
    world.parts.spawn("blank-1", "blank", world.config.stations["vice"].position)
    _run(world, 0.5)
    m.set_door("cnc1", True)
    with pytest.raises(MachineError, match="its door is open: close it first"):
        m.start("cnc1", "blank-1", world.time)
    m.set_door("cnc1", False)
    with pytest.raises(MachineError, match="the part in its fixture is blank-1, not blank-2"):
        m.start("cnc1", "blank-2", world.time)
    m.start("cnc1", "blank-1", world.time)
    with pytest.raises(MachineError, match="the door stays shut while job blank-1 runs"):
        m.set_door("cnc1", True)
    _run(world, 3.5)
    assert m.get("cnc1").state(world.time)["status"] == "done"
    assert world.parts.by_id["blank-1"].type == "machined" and world.occupied("vice")
    assert world.feeds.log == []  # the same part: nothing entered the line


def test_scenario_faults_an_alarm_offline_and_back_a_pause_at_the_machine(world):
    m = world.machines
    m.start("printer1", "p-1", world.time)
    _run(world, 1.0)
    m.fault("printer1", "pause", "", world.time)
    _run(world, 5.0)  # paused: no work done
    state = m.get("printer1").state(world.time)
    assert state["status"] == "paused" and state["reason"] == "paused at the machine" and state["progress"] < 0.3
    m.fault("printer1", "resume", "", world.time)
    m.fault("printer1", "offline", "network cable", world.time)
    with pytest.raises(MachineError, match="it is offline"):
        m.start("printer1", "p-2", world.time)
    _run(world, 5.0)
    m.fault("printer1", "online", "", world.time)
    assert m.get("printer1").state(world.time)["status"] == "running"  # back to what it was doing
    _run(world, 3.5)
    assert m.get("printer1").state(world.time)["status"] == "done"
    m.clear("printer1", world.time)
    world.parts.remove("p-1")
    m.start("printer1", "p-2", world.time)
    m.fault("printer1", "fail", "nozzle clogged", world.time)
    state = m.get("printer1").state(world.time)
    assert (state["status"], state["job"], state["reason"]) == ("fault", "p-2", "nozzle clogged")
    _run(world, 5.0)
    assert "p-2" not in world.parts.by_id  # a failed print makes nothing


def test_a_machine_config_mistake_is_named(tmp_path):
    text = CONFIG.read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("cnc1: {kind: cnc, station: vice, job_time: 3.0, takes: blank,",
                                "cnc1: {kind: cnc, station: bed, job_time: 3.0,"))
    with pytest.raises(ConfigError) as caught:
        load_config(bad)
    assert [line.removeprefix(f"{bad}: ") for line in caught.value.lines] == [
        "machines.cnc1.station: expected a station no other machine has (machine printer1 has it), found 'bed'",
        "machines.cnc1.takes: expected the part type the cnc works on (a blank), found None"]


@pytest.mark.process
@pytest.mark.parametrize("machine", ["printer1", "cnc1"])
def test_check_machine_passes_for_the_twins_printer_and_cnc(twin_factory, machine):
    from cellctl.drivers.twin_client import TwinClient
    from cellctl.drivers.twin_machine import TwinMachine

    twin = twin_factory(CONFIG)
    with TwinMachine(twin.endpoint, machine) as m, TwinClient(twin.endpoint, client="loader") as loader:
        def load() -> str:  # a robot loading a blank into the CNC's fixture, in this test
            loader.request("spawn_part", id="blank-9", type="blank", station="vice")
            time.sleep(0.3)
            return "blank-9"

        passed = check_machine(MachineCheck(m, load if machine == "cnc1" else None), job_timeout=30)
        assert m.state().status == MachineStatus.IDLE
    expected = ["describe", "idle", "busy", "job", "clear"] + (["stop"] if machine == "printer1" else ["door"])
    assert passed == expected
