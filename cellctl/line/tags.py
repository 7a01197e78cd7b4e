"""A cell's PackML tags as OPC 30050 lays them out (for OPC UA and Sparkplug B), kept from what the
cell shows to the outside: its status replies and, where the run directory is on this PC, its events.

OPC 30050 nests three state machines where cellctl has one flat PackML state: the
``BaseStateMachine`` (Aborting, Aborted, Cleared), inside Cleared the ``MachineState`` (Clearing,
Stopping, Stopped, Running) and inside Running the ``ExecuteState`` (Idle ... Complete). A state
shows in the machine that has it and the ones around it; a machine the state is outside of shows
nothing (empty text), as the specification says of an inactive sub-state machine.

The state follows the cell's ``packml`` events in their order when they are at hand (a Hold's
Holding lasts one tick: a status poll would miss it), and so does the total of parts done (its
``part_done`` events since the run began, so a cell that has exited is still counted whole);
without a run directory, the status replies (the total since this server started). Everything else
comes from the status replies; failed machine jobs (the defective count) from the events only.
"""

from __future__ import annotations

import asyncio
import statistics
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cellctl.cell.packml import State
from cellctl.faults import FaultKind

BASE_STATES = (State.ABORTING, State.ABORTED)
MACHINE_STATES = (State.CLEARING, State.STOPPING, State.STOPPED)
CLEARED, RUNNING = "Cleared", "Running"

# OPC 30050's ProductionMaintenanceModeEnum: a cellctl cell always produces (no maintenance or manual
# mode: a person jogs a robot with the robot's own pendant, the cell stopped)
PRODUCE = 1
# An alarm's ID in PackMLAlarmDataType: the fault kind's place in cellctl.faults.FaultKind (new kinds
# are appended there, so a number never changes meaning); SILENT: the cell does not answer this server
ALARM_IDS: dict[str, int] = {kind.value: number for number, kind in enumerate(FaultKind, start=1)}
SILENT = 100
# Category: ALARM needs a person; WARNING clears by itself (the cell waits and goes on)
ALARM, WARNING = 1, 2
WAITS = frozenset({FaultKind.STARVED, FaultKind.BLOCKED, FaultKind.MACHINE_UNAVAILABLE, FaultKind.TWIN_LOST,
                   FaultKind.NEIGHBOUR_LOST})
NEVER = datetime(1601, 1, 1, tzinfo=UTC)  # OPC UA's null DateTime
GONE = frozenset({"GIVEN", "DELIVERED", "MISSING"})  # custody states after which the cell holds the part no more
MAX_HISTORY = 20
CYCLES = 10  # the last cycle times the current speed is the median of
MAX_TRANSITIONS = 100  # state changes kept for a server that has not written them out yet


@dataclass(frozen=True)
class Alarm:
    """One PackMLAlarmDataType."""

    id: int
    message: str
    category: int
    at: datetime
    acked: datetime = NEVER
    trigger: bool = True  # active

    @property
    def value(self) -> int:
        return self.id


def nested(state: str | None) -> tuple[str, str | None, str | None]:
    """(BaseStateMachine, MachineState, ExecuteState) current states for one cellctl state."""
    if state in BASE_STATES:
        return state, None, None
    if state in MACHINE_STATES:
        return CLEARED, state, None
    if state is None:
        return CLEARED, State.STOPPED, None
    return CLEARED, RUNNING, state


def _when(iso: object) -> datetime:
    try:
        at = datetime.fromisoformat(str(iso))
    except ValueError:
        return NEVER
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _alarm(kind: object, reason: object, raised: object, cleared: object = None) -> Alarm:
    kind = str(kind or "")
    category = WARNING if kind in WAITS else ALARM
    return Alarm(ALARM_IDS.get(kind, 0), str(reason or ""), category, _when(raised),
                 _when(cleared) if cleared else NEVER, trigger=cleared is None)


@dataclass
class CellTags:
    """What one cell's PackML object shows; ``changed`` counts updates, so a writer knows when."""

    name: str
    from_events: bool  # the state follows packml events (a run directory here)
    state: str | None = None
    # (from, to) not yet written out by a server that shows each transition (OPC UA); bounded, since a
    # server that shows only the state (Sparkplug) never takes them
    transitions: deque[tuple[str | None, str]] = field(default_factory=lambda: deque(maxlen=MAX_TRANSITIONS))
    status: dict | None = None
    silent: str | None = "not heard from yet"
    processed_acc: int = 0  # parts done in the run (events), or since this server started watching (status)
    defective: int = 0  # failed machine jobs (a part made again), from the events
    custody: str | None = None  # the part in the cell's custody, from its custody events
    done_times: list[float] = field(default_factory=list)  # sim times of the last parts done
    changed: int = 0

    # -- feeding -----------------------------------------------------------------------------------
    def on_status(self, status: dict | None, why: str | None = None) -> None:
        if status is None:
            if why != self.silent:
                self.silent, self.changed = why, self.changed + 1
            return
        before, self.status, self.silent = self.status or {}, status, None
        done, was = status.get("parts_done") or 0, before.get("parts_done") or 0
        if done > was:
            if not self.from_events:
                self.processed_acc += done - was
            self.done_times = [*self.done_times, *[status.get("sim_time") or 0.0] * (done - was)][-CYCLES - 1:]
        if not self.from_events or self.state is None:
            self._move(status.get("state"))
        if status != before:
            self.changed += 1

    def on_event(self, e: dict) -> None:
        kind = e.get("kind")
        if kind == "packml" and self.from_events:
            self._move(e.get("dest"))
        elif kind == "part_done" and self.from_events:
            self.processed_acc += 1
            self.changed += 1
        elif kind == "custody" and self.from_events:
            held = e.get("state") not in GONE
            if held or e.get("part") == self.custody:
                self.custody = e.get("part") if held else None
                self.changed += 1
        elif kind == "machine_job" and e.get("state") == "failed":
            self.defective += 1
            self.changed += 1

    def _move(self, state: object) -> None:
        if isinstance(state, str) and state in State.__members__.values() and state != self.state:
            self.transitions.append((self.state, state))
            self.state = state
            self.changed += 1

    # -- the tags ----------------------------------------------------------------------------------
    @property
    def _s(self) -> dict:
        return self.status or {}

    @property
    def processed(self) -> int:
        return int(self._s.get("parts_done") or 0)

    @property
    def part(self) -> str | None:
        """The part in the cell's custody (its events say when it was given on; a status reply may be
        the last one before the cell exited)."""
        return self.custody if self.from_events else self._s.get("part")

    @property
    def starved(self) -> bool:
        return self._s.get("fault_kind") in (FaultKind.STARVED, FaultKind.DRY_FEED)

    @property
    def blocked(self) -> bool:
        return self._s.get("fault_kind") == FaultKind.BLOCKED

    @property
    def mach_speed(self) -> float:
        """Parts per minute of sim time at the cell's recent pace (the median cycle): PackML's
        speed setpoint, which a cellctl cell does not take (its robot's motions set the pace)."""
        gaps = [b - a for a, b in zip(self.done_times, self.done_times[1:]) if b > a]
        return round(60.0 / statistics.median(gaps), 3) if gaps else 0.0

    @property
    def cur_mach_speed(self) -> float:
        return self.mach_speed if self.state == State.EXECUTE else 0.0

    def active(self) -> Alarm | None:
        s = self._s
        return _alarm(s.get("fault_kind"), s.get("fault"), s.get("fault_since")) if s.get("fault") else None

    def stop_reason(self) -> Alarm | None:
        """The active fault, else the last cleared one (Trigger false), else none."""
        history = self._s.get("alarm_history") or []
        if (now := self.active()) is not None:
            return now
        if history:
            a = history[-1]
            return _alarm(a.get("fault_kind"), a.get("fault"), a.get("raised"), a.get("cleared") or "")
        return None

    def alarms(self) -> list[Alarm]:
        """Active alarms that need a person (PackML Admin.Alarm)."""
        now = self.active()
        return [now] if now is not None and now.category == ALARM else []

    def warnings(self) -> list[Alarm]:
        """Active waits that clear by themselves, and this server not hearing from the cell."""
        now = self.active()
        found = [now] if now is not None and now.category == WARNING else []
        if self.silent and self.status is not None:
            found.append(Alarm(SILENT, self.silent, WARNING, datetime.now(UTC)))
        return found

    def history(self) -> list[Alarm]:
        """Cleared alarms, newest first."""
        return [_alarm(a.get("fault_kind"), a.get("fault"), a.get("raised"), a.get("cleared") or "")
                for a in reversed((self._s.get("alarm_history") or [])[-MAX_HISTORY:])]


class LineTags:
    """Every cell's tags, kept as a ``cellctl.line.feeds.Listener``: the base of the servers that show
    them (OPC UA's address space, the Sparkplug edge node); ``wake`` is set at every change."""

    def __init__(self, cells: list[str], from_events: bool) -> None:
        self.tags = {name: CellTags(name, from_events) for name in cells}
        self.wake = asyncio.Event()

    @property
    def cells(self) -> dict[str, CellTags]:
        return self.tags

    def on_status(self, cell: str, status: dict | None, why: str | None = None) -> None:
        self.tags[cell].on_status(status, why)
        self.wake.set()

    def on_events(self, events: list[dict]) -> None:
        for e in events:
            tags = self.tags.get(e.get("cell") or "")
            if tags is not None:
                tags.on_event(e)
        self.wake.set()
