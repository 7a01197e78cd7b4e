"""What `cellctl status` and `cmd` say about a cell that does not answer, read from the run's files:
not started, restarting, exited, a secured line asked without keys, a finished run."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cellctl.cli.cells import CellAddress, TargetError, finished, resolve, why_silent
from cellctl.rundir import ControlFile, RunDir


def _run(tmp_path, security: bool = False) -> RunDir:
    run = RunDir(tmp_path)
    run.line_config.write_text("cells: {press: {}, pack: {}}\n" + ("security: {keys: keys}\n" if security else ""))
    return run


def _exited(run: RunDir, cell: str, code: int) -> None:
    with run.events.open("a") as f:
        f.write(json.dumps({"schema": 1, "kind": "process", "sim_time": None, "wall_time": time.time(),
                            "source": "launcher", "cell": cell, "event": "exited", "code": code}) + "\n")


def test_cells_by_name_from_a_run_directory(tmp_path):
    run = _run(tmp_path)
    run.write_control(ControlFile("press", "tcp://127.0.0.1:1", "tcp://127.0.0.1:2"))
    addresses, found = resolve(str(tmp_path), None)
    assert found == run and [a.cell for a in addresses] == ["press", "pack"]
    assert addresses[0] == CellAddress("press", "tcp://127.0.0.1:1", "tcp://127.0.0.1:2")
    assert addresses[1] == CellAddress("pack", None, None)
    with pytest.raises(TargetError, match="no cell 'weld'; cells: press, pack"):
        resolve(str(tmp_path), "weld")
    with pytest.raises(TargetError, match="expected a run directory, a line config or an endpoint"):
        resolve(str(tmp_path / "nowhere"), None)


def test_a_cell_that_never_started_says_so(tmp_path):
    run = _run(tmp_path)
    assert why_silent(run, CellAddress("pack", None, None), False) == \
        f"cell pack: not started (it has announced no control socket in {tmp_path})"


def test_a_secured_line_asked_without_keys_says_which_keys(tmp_path):
    run = _run(tmp_path, security=True)
    assert why_silent(run, CellAddress("press", "tcp://x:1", "tcp://x:2"), False) == \
        "cell press: no answer: this line uses CURVE keys: give --keys DIR --as NAME"


def test_a_cell_that_died_with_no_launcher_left_names_its_end_and_last_log_line(tmp_path):
    run = _run(tmp_path)
    _exited(run, "press", -9)
    run.cell_log("press").write_text("starting\ncell press: fault (driver): Timeout: no answer\n")
    assert why_silent(run, CellAddress("press", "tcp://x:1", "tcp://x:2"), True) == \
        "cell press: exited (signal 9); last log line: cell press: fault (driver): Timeout: no answer"
    _exited(run, "pack", 0)
    assert why_silent(run, CellAddress("pack", "tcp://x:1", "tcp://x:2"), True) == \
        "cell pack: done: its work order is complete and it has exited"


@pytest.mark.process
def test_a_cell_the_launcher_is_restarting_says_so(tmp_path):
    run = _run(tmp_path)
    launcher = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "cellctl-launcher-stand-in"])
    try:
        cmdline = Path(f"/proc/{launcher.pid}/cmdline")
        while b"stand-in" not in cmdline.read_bytes():  # exec'd: its command line is its own
            time.sleep(0.01)
        run.write_json(run.pids, {"launcher": launcher.pid, "cells": {}})
        _exited(run, "press", -9)
        _exited(run, "press", -9)
        assert why_silent(run, CellAddress("press", "tcp://x:1", "tcp://x:2"), True) == \
            "cell press: restarting (exited with signal 9; restart 2)"
        run.write_json(run.summary, {"parts_in": 3, "parts_out": 3})
        assert finished(run) is None  # its launcher still runs: not finished
    finally:
        launcher.kill()
        launcher.wait()


def test_a_finished_run_answers_from_its_files(tmp_path):
    run = _run(tmp_path)
    run.write_json(run.summary, {"ended": "done", "parts_in": 3, "parts_out": 3, "lost": 0, "stranded": 0})
    line = finished(run)
    assert line.startswith("run finished at ") and line.endswith(f"(done): 3/3 parts out, lost 0, stranded 0; "
                                                                 f"see {run.summary}")
