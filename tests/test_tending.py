"""Machines' custody and the tending cell's config, in-process: a part IN_MACHINE with its jobs in
the ledger (a version 1 ledger upgraded in place), the interlock a tending skill checks before the
robot reaches in, and a print line config's machine mistakes named key by key."""

from __future__ import annotations

import sqlite3

import pytest
import yaml

from cellctl.config.loader import ConfigError, load_config
from cellctl.config.paths import CONFIG_DIR
from cellctl.custody.ledger import HELD, IN_MACHINE, OWNED, JobState, Ledger, LedgerError
from cellctl.drivers.machine import MachineState, MachineStatus


def test_a_part_goes_into_a_machine_and_out_once_with_its_jobs_in_the_ledger(tmp_path):
    ledger = Ledger(tmp_path / "tend.sqlite")
    ledger.in_machine("printer1-1", "printer1", 0.1, part_type="blank")  # a print started for a minted id
    assert ledger.get("printer1-1").state == IN_MACHINE and ledger.in_machines()["printer1"].part == "printer1-1"
    ledger.job("printer1-1", "printer1", JobState.STARTED, 0.2)
    ledger.job("printer1-1", "printer1", JobState.DONE, 6.2)
    ledger.out_of_machine("printer1-1", "blank", 7.0)
    ledger.out_of_machine("printer1-1", "blank", 7.0)  # a repeated commit (a re-plan) changes nothing
    assert ledger.job_state("printer1-1", "printer1") == JobState.UNLOADED and ledger.in_machines() == {}
    ledger.in_machine("printer1-1", "cnc1", 8.0)
    for state in (JobState.STARTED, JobState.FAILED, JobState.STARTED, JobState.DONE):  # an alarm, then a rerun
        ledger.job("printer1-1", "cnc1", state, 9.0)
    assert ledger.job_runs("printer1-1", "cnc1") == 2 and ledger.job_runs("printer1-1", "printer1") == 1
    ledger.out_of_machine("printer1-1", "machined", 15.0)
    c = ledger.get("printer1-1")
    assert (c.state, c.part_type, c.source) == (OWNED, "machined", "printer1") and OWNED in HELD
    with pytest.raises(LedgerError, match="part printer1-9 is unknown here, expected OWNED or IN_MACHINE"):
        ledger.in_machine("printer1-9", "cnc1", 16.0)  # loading a part this cell does not hold
    journal = [r[0] for r in ledger._db.execute("SELECT state FROM journal ORDER BY seq")]
    assert journal[:5] == ["IN_MACHINE", "job:started", "job:done", "OWNED", "job:unloaded"]


def test_a_version_1_ledger_is_upgraded_in_place_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE custody (part TEXT PRIMARY KEY, part_type TEXT NOT NULL, state TEXT NOT NULL,
            source TEXT NOT NULL, peer TEXT, sim_time REAL NOT NULL, wall_time REAL NOT NULL);
        CREATE TABLE journal (seq INTEGER PRIMARY KEY AUTOINCREMENT, part TEXT NOT NULL, state TEXT NOT NULL,
            peer TEXT, sim_time REAL NOT NULL, wall_time REAL NOT NULL);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO custody VALUES ('part-1', 'box', 'OWNED', 'infeed', NULL, 1.0, 1.0);
        PRAGMA user_version=1;""")
    db.close()
    ledger = Ledger(path)
    assert ledger.get("part-1").state == OWNED and ledger._db.execute("PRAGMA user_version").fetchone()[0] == 2
    ledger.job("part-1", "cnc1", JobState.STARTED, 2.0)
    assert ledger.job_state("part-1", "cnc1") == JobState.STARTED


@pytest.mark.parametrize("state, why", [
    (MachineState(MachineStatus.IDLE, door_open=True), None),
    (MachineState(MachineStatus.DONE, "p1", door_open=None), None),
    (MachineState(MachineStatus.IDLE, door_open=False), "its door is shut"),
    (MachineState(MachineStatus.RUNNING, "p1", 0.5, door_open=False), "job p1 running on it"),
    (MachineState(MachineStatus.PAUSED, "p1", 0.5), "job p1 paused on it"),
    (MachineState(MachineStatus.IDLE, door_open=True, spindle=True), "its spindle turns"),
    (MachineState(MachineStatus.IDLE, heater=True), "it heats"),
    (MachineState(MachineStatus.DONE, "p1", door_open=True, clamped=True), "its fixture is clamped"),
    (MachineState(MachineStatus.OFFLINE, reason="cable"), "it is offline (its state is unknown)"),
])
def test_the_interlock_keeps_the_robot_out_while_a_machine_works_or_its_door_is_shut(state, why):
    assert state.keep_out() == why


def _print_line(tmp_path, change) -> str:
    config = yaml.safe_load((CONFIG_DIR / "print_line.yaml").read_text())
    change(config)
    path = tmp_path / "line.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    return str(err.value)


@pytest.mark.parametrize("change, expected", [
    (lambda c: c["cells"]["tend"].update(machines=["cnc1"]),
     "cells.tend.machines: expected to list 'printer1': the take station bed is its printer's station, "
     "found ['cnc1']"),
    (lambda c: c["cells"]["tend"].update(machines=["printer1", "cnc1", "lathe"]),
     "cells.tend.machines.2: expected one of the machines ['cnc1', 'printer1'], found 'lathe'"),
    (lambda c: c["cells"]["pack"].update(machines=["cnc1"]),
     "cells.pack.machines.0: expected a machine no other cell tends (cell tend tends it), found 'cnc1'"),
    (lambda c: c["cells"]["tend"]["recipe"][1]["params"].update(machine="cnc2"),
     "cells.tend.recipe.1.params.machine: expected one of the machines cell tend tends "
     "(cells.tend.machines: ['printer1', 'cnc1']), found 'cnc2'"),
    (lambda c: c["cells"]["tend"].update(take="vice"),
     "cells.tend.take: expected a feed, a neighbour's station or a printer's bed (a CNC's fixture is loaded by "
     "the recipe: load_machine), found 'vice'"),
    (lambda c: c["cells"]["pack"].update(give="bed"),
     "cells.pack.give: expected a station that is no machine's (a machine is loaded by the recipe: load_machine), "
     "found 'bed'"),
    (lambda c: c["cells"]["tend"]["recipe"][2]["params"].update(margin=0.5),
     "cells.tend.recipe.2: expected a valid skill step (wait_job: skill wait_job: parameter margin: Input should "
     "be greater than or equal to 1)"),
])
def test_a_print_line_config_mistake_names_the_key_and_what_was_expected(tmp_path, change, expected):
    assert expected in _print_line(tmp_path, change)
