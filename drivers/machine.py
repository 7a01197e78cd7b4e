"""The machine contract, beside the robot's: a 3D printer or a CNC as a member of a line.

A machine has a station (a printer's bed, a CNC's fixture) where a part rests while it works on
it; it takes a part or none (a printer makes one), runs a job named after the part it is for (a
G-code file or a program, with parameters), reports its state — idle, running with progress, done,
paused, fault with the machine's own reason, offline — and can be stopped. A door, where it has
one, is opened for a robot and closed for a job; a spindle, heater or clamp, where it has one, is
reported so a robot stays out while it works.

What a machine says about its station is only what it can see: a printer does not know whether its
bed is clear; that comes from the custody ledger or a sensor, never from this contract. A stop
through a machine's API is **not a safety function** (docs/machines.md).

``check_machine`` runs a machine through the contract, as ``check_driver`` does a robot.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol

from cellctl.drivers.errors import DriverError

JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # a part id, as the ledgers name parts
# A simulated machine's faults (scenarios, the twin's machine_fault): its alarm, offline and back, a
# pause and resume at its own panel, a job that runs and never gets further.
MachineFaultKind = Literal["fail", "offline", "online", "pause", "resume", "stall"]


class MachineStatus(StrEnum):
    IDLE = "idle"  # ready for a job (a door, where it has one, may be open or closed)
    RUNNING = "running"  # a job runs; ``progress`` says how far
    DONE = "done"  # the job ended well: its part waits on the station until ``clear()``
    PAUSED = "paused"  # by the machine's own operator (its panel): the job goes on when resumed there
    FAULT = "fault"  # the machine's own alarm, with its reason: ``clear()`` once dealt with
    OFFLINE = "offline"  # the machine does not answer for itself (powered off, cable, its server down)


class MachineError(DriverError):
    """A request the machine refused (busy, door open, nothing to work on, offline, a wrong API key),
    with why; ``machine`` names it, so a skill's failure is the machine's (the cell: Held for it)."""

    def __init__(self, message: str = "", machine: str | None = None) -> None:
        super().__init__(message)
        self.machine = machine


@dataclass(frozen=True)
class MachineDescription:
    name: str
    kind: Literal["printer", "cnc"]
    station: str  # its bed or fixture
    makes: str  # the part type a finished job leaves on the station
    takes: str | None  # the part type it works on (None: it makes its part)
    door: bool  # it has a door a robot enters through
    names_jobs: bool = True  # it reports jobs by name (False: LinuxCNC knows programs only; see start_job)


@dataclass(frozen=True)
class MachineState:
    status: MachineStatus
    job: str | None = None  # the job it runs, ran or failed (named after the part)
    progress: float | None = None  # 0..1 while running or paused
    reason: str | None = None  # a fault's or a stop's words, the machine's own
    door_open: bool | None = None  # None: it has no door
    at: float = 0.0  # the machine's time of this reading
    expected: float | None = None  # s the job takes in all, by the machine's own estimate (None: unknown)
    spindle: bool | None = None  # a CNC's spindle turns (None: the machine has none, or does not say)
    heater: bool | None = None  # a printer's hot end or bed heats (None: it has none, or does not say)
    clamped: bool | None = None  # a CNC's vice or fixture clamps its part (None: it has none, or does not say)

    @property
    def busy(self) -> bool:
        return self.status in (MachineStatus.RUNNING, MachineStatus.PAUSED)

    def keep_out(self) -> str | None:
        """Why a robot must not enter the machine now, or None: the interlock a tending skill
        checks before it reaches in (door open where there is one, no job, spindle and heater off).
        A software interlock on the machine's word: the machine's guarding stays the safety."""
        if self.status == MachineStatus.OFFLINE:
            return "it is offline (its state is unknown)"
        if self.busy:
            return f"job {self.job} {self.status.value} on it"
        if self.door_open is False:
            return "its door is shut"
        if self.spindle:
            return "its spindle turns"
        if self.heater:
            return "it heats"
        if self.clamped:
            return "its fixture is clamped"
        return None


class MachineDriver(Protocol):
    def connect(self) -> None: ...

    def close(self) -> None: ...

    def describe(self) -> MachineDescription: ...

    def state(self) -> MachineState: ...

    def start_job(self, job: str, program: str | None = None, params: dict | None = None) -> None:
        """Start ``job`` (named after its part); MachineError when the machine cannot (busy, its
        door open, nothing to work on, offline), with why. Never starts a second job."""

    def stop(self) -> None:
        """End the running job (its part stays where it is, unfinished)."""

    def clear(self) -> None:
        """Done or fault dealt with (the part taken out, the alarm acknowledged): idle again."""

    def set_door(self, open_: bool) -> None:
        """Open or close the door; MachineError while a job runs, or without a door."""

    def now(self) -> float: ...


class MachineCheckError(AssertionError):
    """``check_machine`` found the machine not to keep the contract: which check, and what it saw."""


@dataclass
class MachineCheck:
    """A machine for ``check_machine``, with what the check needs beyond the contract: how to put
    a part to work on into its station (a CNC's blank), and how to let the machine's time pass."""

    machine: MachineDriver
    load: Callable[[], str] | None = None  # puts a part in; returns its id (the job's name)
    program: str | None = None  # the program its jobs run (a G-code file for a printer behind OctoPrint)
    wait: Callable[[float], None] = time.sleep  # lets this many seconds of the machine's time pass
    passed: list[str] = field(default_factory=list)


def _require(ok: bool, check: str, detail: str) -> None:
    if not ok:
        raise MachineCheckError(f"check_machine: {check}: {detail}")


def _until(check: MachineCheck, done: Callable[[MachineState], bool], seconds: float, what: str) -> MachineState:
    deadline = time.monotonic() + seconds
    while not done(state := check.machine.state()):
        _require(time.monotonic() < deadline, what, f"still {state.status} after {seconds:g}s of wall time "
                                                    f"({state.reason or 'no reason'})")
        check.wait(0.05)
    return state


def check_machine(check: MachineCheck, job_timeout: float = 60.0) -> list[str]:
    """Run a machine through the contract: describe, idle, a job from start to done (with a
    second start refused while it runs), clear, a job stopped mid-way, the door's interlock. Moves
    the machine: run it on a clear one (a twin's, or a real one with nothing in it)."""
    m = check.machine
    desc = m.describe()
    _require(desc.kind in ("printer", "cnc") and bool(desc.station), "describe", f"{desc}")
    check.passed.append("describe")
    state = m.state()
    _require(state.status == MachineStatus.IDLE, "idle", f"a machine to check is idle, found {state.status} "
                                                         f"({state.reason})")
    _require((state.door_open is None) == (not desc.door), "door", f"door {desc.door}, door_open {state.door_open}")
    check.passed.append("idle")
    if desc.door:
        m.set_door(False)
    job = check.load() if check.load is not None else "check-1"
    m.start_job(job, check.program)
    state = _until(check, lambda s: s.status != MachineStatus.IDLE, 10.0, "start")
    _require(state.status in (MachineStatus.RUNNING, MachineStatus.DONE) and state.job == job, "start",
             f"after start_job({job!r}): {state}")
    if state.status == MachineStatus.RUNNING:
        try:
            m.start_job("check-twice", check.program)
            _require(False, "busy", "a second job was accepted while one ran")
        except MachineError:
            pass
        check.passed.append("busy")
    state = _until(check, lambda s: s.status == MachineStatus.DONE, job_timeout, "done")
    _require(state.job == job, "done", f"done with job {state.job!r}, not {job!r}")
    check.passed.append("job")
    if desc.door:
        m.set_door(True)
    m.clear()
    _until(check, lambda s: s.status == MachineStatus.IDLE, 10.0, "clear")
    check.passed.append("clear")
    if desc.takes is None:  # a printer: a job stopped half-way (a CNC would need another blank)
        if desc.door:
            m.set_door(False)
        m.start_job("check-stop", check.program)
        _until(check, lambda s: s.status == MachineStatus.RUNNING, 10.0, "stop")
        m.stop()
        state = _until(check, lambda s: not s.busy, 10.0, "stop")
        _require(state.status == MachineStatus.IDLE, "stop", f"after stop(): {state}")
        check.passed.append("stop")
    if desc.door:
        m.set_door(False)
        try:
            m.set_door(True)
            m.start_job("check-door", check.program)
            _require(False, "door", "a job started with the door open")
        except MachineError:
            check.passed.append("door")
        m.set_door(False)
    return check.passed
