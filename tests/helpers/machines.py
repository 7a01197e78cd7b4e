"""Waiting on a real machine's state in a test (its own time: a real printer or CNC)."""

from __future__ import annotations

import time

from cellctl.drivers.machine import MachineDriver, MachineState, MachineStatus


def until_status(machine: MachineDriver, status: MachineStatus, seconds: float = 60.0) -> MachineState:
    deadline = time.monotonic() + seconds
    while (state := machine.state()).status != status:
        assert time.monotonic() < deadline, f"still {state} after {seconds}s"
        time.sleep(0.1)
    return state
