"""The event schema: every kind of line ``events.jsonl`` holds, as one typed union.

Writers (cells, skills, the launcher, the test kit) append plain dicts and pay nothing for this
schema on the way out; readers validate what they read (:func:`read_events`), so a report, a test
or a page never works on an event it does not understand. ``docs/events.md`` is generated from
these models (``python -m cellctl.events``) and a test fails when the two differ.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from enum import Enum
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from cellctl.cell.packml import State
from cellctl.custody.ledger import CustodyState
from cellctl.faults import FaultKind
from cellctl.rundir import EventTail
from cellctl.skills.events import EVENT_SCHEMA


class Event(BaseModel):
    """Every event has these keys."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    version: Literal[1] = Field(alias="schema", description=f"the schema version, {EVENT_SCHEMA}")
    sim_time: float | None = Field(description="driver time (sim seconds on the twin); null for the launcher's own")
    wall_time: float = Field(description="Unix time")


class CellEvent(Event):
    cell: str = Field(description="the cell that wrote it")


class LauncherEvent(Event):
    source: Literal["launcher"] = Field(description="launcher")


class Packml(CellEvent):
    """A PackML state change."""

    kind: Literal["packml"]
    source: State = Field(description="the state left")
    dest: State = Field(description="the state entered")
    event: str = Field(description="the command, or SC (State Complete)")
    state_number: int = Field(description="PackTags StateCurrent of dest")


class Skill(Event):
    """A skill's state machine moved."""

    kind: Literal["skill"]
    robot: str | None = Field(None, description="the robot it drives")
    skill: str = Field(description="the skill's name")
    trigger: str = Field(description="start / done / fail / cancel, or a step's own")
    source: str = Field(description="the skill state left")
    dest: str = Field(description="the skill state entered")


class Step(Event):
    """A sequence started one of its steps."""

    kind: Literal["step"]
    robot: str | None = Field(None, description="the robot it drives")
    index: int = Field(description="the step's place in the sequence")
    skill: str = Field(description="the step's skill")
    attempt: int = Field(description="1 for the first try, more with `retry`")
    recovery: bool = Field(description="a recovery step after a failure")


class PartStart(CellEvent):
    """The cell started work on a part."""

    kind: Literal["part_start"]
    part: str


class PartDone(CellEvent):
    """The cell is done with a part (given on or delivered)."""

    kind: Literal["part_done"]
    part: str


class Custody(CellEvent):
    """A custody change in the cell's ledger."""

    kind: Literal["custody"]
    part: str
    state: CustodyState
    station: str | None = Field(description="where the part rests at the change: the take station for OWNED, the "
                                            "give station for IN_TRANSIT / GIVEN / DELIVERED, the machine's station "
                                            "for IN_MACHINE; null when none says (a part found in the gripper, "
                                            "MISSING, taken out of a machine)")


class MachineJob(CellEvent):
    """What a tended machine's job for a part did, as the cell saw it (its ledger's jobs table)."""

    kind: Literal["machine_job"]
    part: str = Field(description="the part, which names the job")
    machine: str
    state: Literal["started", "done", "failed", "unloaded"]
    runs: int = Field(description="how many times the cell asked the machine to start the job for this part (a "
                                  "failed one runs again)")


class Handoff(CellEvent):
    """A handoff message sent or received; the message's own keys (``session``, ``part``, ...) follow."""

    model_config = ConfigDict(extra="allow")
    kind: Literal["handoff"]
    direction: Literal["send", "recv"]
    peer: str = Field(description="the neighbour")
    type: str = Field(description="the message (ServiceDescription, BoardAvailable, ...)")


class HandoffRejected(CellEvent):
    """A peer frame or message dropped unread: not a mailbox frame, not from a neighbour, or malformed."""

    kind: Literal["handoff_rejected"]
    reason: str
    peer: str | None = Field(None, description="the neighbour, where the frame was one's")


class HandoffLinkChange(CellEvent):
    """A handoff link connected, disconnected, was cut (a scenario's fault) or mended."""

    kind: Literal["handoff_link"]
    peer: str
    state: Literal["connected", "disconnected", "cut", "mended"]
    session: str | None = Field(None, description="connected: the session agreed")
    reason: str | None = Field(None, description="disconnected: why")
    until: float | None = Field(None, description="cut: until this sim time")
    held: int | None = Field(None, description="mended: messages held back and sent on")


class Waiting(CellEvent):
    """The cell waits for a neighbour."""

    kind: Literal["waiting"]
    neighbour: str
    reason: str


class Fault(CellEvent):
    """Something went wrong: the cell's fault (Held or Aborted), or one noticed on the way."""

    kind: Literal["fault"]
    reason: str = Field(description="what a technician reads")
    fault_kind: FaultKind = Field(description="what code decides on (cellctl.faults.FaultKind)")
    source: str = Field(description="where it came from: twin, robot, recipe, ledger, cell, neighbour NAME")


class Replan(CellEvent):
    """The running skills were dropped and the phase is chosen again (after a pause that made the
    twin drop the cell)."""

    kind: Literal["replan"]
    reason: str


class Reconciled(CellEvent):
    """The ledger was brought in line with the gripper and stations (after an unclean restart)."""

    kind: Literal["reconciled"]
    owned: list[str]
    in_transit: list[str]
    in_machines: dict[str, str] = Field(default_factory=dict, description="machine -> the part the ledger has in it")


class RobotLink(CellEvent):
    """A real robot's lost link answers again (the cell was Held for it: an operator's Unhold works now)."""

    kind: Literal["robot_link"]
    state: Literal["up"]
    reason: str


class CommandGiven(CellEvent):
    """A command from outside the cell was applied (at the tick after it was queued)."""

    kind: Literal["command"]
    command: str = Field(description="the PackML command")
    by: str = Field(description="who sent it: cli, page, opcua, launcher, scenario, ...")
    user: str | None = Field(None, description="the logged-in user behind a page's (or OPC UA) command")


class CommandRefusedLater(CellEvent):
    """A queued command the cell's state no longer allowed when its tick came."""

    kind: Literal["command_refused"]
    command: str
    by: str
    user: str | None = None
    reason: str = Field(description="the PackML reason")


class AlarmCleared(CellEvent):
    """The cell's active alarm was cleared (it resumed, was reset, or another replaced it): it goes to
    the alarm history."""

    kind: Literal["alarm_cleared"]
    reason: str = Field(description="the alarm's reason")
    fault_kind: FaultKind
    fault_source: str
    raised: str = Field(description="ISO wall time it was raised")
    raised_sim: float
    cleared: str = Field(description="ISO wall time it was cleared")
    cleared_sim: float
    cleared_by: str = Field(description="what cleared it: a command and who gave it, or the alarm that replaced it")


class OperatorWait(LauncherEvent):
    """No progress, but an operator holds or stopped cells on purpose: the run waits (the watchdog
    ends a run only for an unexplained stall)."""

    kind: Literal["operator_wait"]
    cells: list[str]
    reasons: list[str]


class Process(LauncherEvent):
    """A cell process, the twin or the operator's page started or exited."""

    kind: Literal["process"]
    event: Literal["started", "exited"]
    cell: str | None = Field(None, description="the cell, for a cell process")
    component: Literal["twin", "dashboard", "opcua", "mqtt"] | None = Field(
        None, description="twin, for the twin; dashboard, for the operator's page; opcua, for the OPC UA server; "
                          "mqtt, for the Sparkplug B publisher")
    pid: int | None = Field(None, description="started: its pid")
    code: int | None = Field(None, description="exited: its exit status (negative: the signal)")
    restored: bool | None = Field(None, description="a twin start: restored from its checkpoint")
    time: float | None = Field(None, description="a twin start: the sim time it starts at")


class Unhold(LauncherEvent):
    """A cell Held because the twin was lost, resumed once it is back (simulation only)."""

    kind: Literal["unhold"]
    cell: str
    ok: bool | None = Field(description="the cell accepted Unhold; null: no answer (asked again)")
    reason: str


class ReconciledWorld(LauncherEvent):
    """A part that cell's ledger has DELIVERED, taken off a restored twin world (logged as
    consumed by its sink)."""

    kind: Literal["reconciled_world"]
    cell: str
    part: str
    reason: str


class Stalled(LauncherEvent):
    """No custody change and no motion for the watchdog's time: the run ends."""

    kind: Literal["stalled"]
    diagnosis: list[str] = Field(description="one line per cell")


class Resumed(LauncherEvent):
    """``cellctl run --resume`` stopped the dead launcher's orphans."""

    kind: Literal["resumed"]
    stopped: list[int] = Field(description="their pids")


class Interrupted(LauncherEvent):
    """Ctrl-C or SIGTERM: the line stopped."""

    kind: Literal["interrupted"]


class ScenarioFault(LauncherEvent):
    """``cellctl test``: a scenario's fault was applied."""

    kind: Literal["scenario"]
    index: int = Field(description="the fault's place in the scenario")
    fault: str = Field(description="KillFault / RobotFault / CommandFault / CutLinkFault")
    target: str = Field(description="the cell")
    at: float = Field(description="sim s asked")
    applied_at: float = Field(description="sim s the injector held the twin at")
    result: str


class ChaosFault(LauncherEvent):
    """``cellctl chaos``: a fault from outside the processes."""

    kind: Literal["chaos"]
    fault: Literal["kill", "pause", "twin_kill"]
    target: str
    pid: int
    in_transport: bool | None = Field(None, description="kills and pauses: the target was in a transport")
    seconds: float | None = Field(None, description="pauses: how long")


KINDS = (Packml, Skill, Step, PartStart, PartDone, Custody, MachineJob, Handoff, HandoffRejected, HandoffLinkChange, Waiting,
         Fault, Replan, Reconciled, RobotLink, CommandGiven, CommandRefusedLater, AlarmCleared, Process, Unhold, ReconciledWorld,
         Stalled, OperatorWait, Resumed, Interrupted, ScenarioFault, ChaosFault)
AnyEvent = Annotated[Union[KINDS], Field(discriminator="kind")]  # noqa: UP007 - a tuple of classes
_ADAPTER: TypeAdapter[Any] = TypeAdapter(AnyEvent)
log = logging.getLogger("cellctl")


class EventSchemaError(ValueError):
    """An event that does not match the schema: the file, the line and what is wrong."""


def validate(event: dict, where: str = "event") -> Event:
    try:
        return _ADAPTER.validate_python(event)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(event)'}: {e['msg']}" for e in exc.errors())
        raise EventSchemaError(f"{where}: {problems}") from None


def read_events(path: Path, strict: bool = True) -> list[dict]:
    """Every event of a run's ``events.jsonl``, each checked against the schema. A line torn by a
    writer killed mid-write is skipped. An event that does not match raises EventSchemaError
    naming the file and the event's place; with ``strict=False`` (the launcher's summary and the
    report, which must be written on every exit path) it is left out and logged instead."""
    events = EventTail(Path(path)).read()
    valid = []
    for number, event in enumerate(events, start=1):
        try:
            validate(event, f"{path}: event {number}")
        except EventSchemaError as exc:
            if strict:
                raise
            log.warning("%s (left out)", exc)
            continue
        valid.append(event)
    return valid


def markdown() -> str:
    """``docs/events.md``, from the models."""
    common = Event.model_fields
    lines = [f"# The event schema (version {EVENT_SCHEMA})", "",
             "Generated from `cellctl/events.py` by `python -m cellctl.events > docs/events.md`; a test fails",
             "when the two differ. Every run directory has `events.jsonl`: one JSON object per line, appended by",
             "every process of the run (the launcher and each cell). Reports and tests are built on it and read",
             "it through `cellctl.events.read_events`, which checks every event against this schema.", "",
             "Every event has:", "", "| key | meaning |", "|---|---|"]
    lines += [f"| `{f.alias or name}` | {f.description} |" for name, f in common.items()]
    lines += ["| `kind` | one of the kinds below |", "",
              "Cell events also have `cell`; the launcher's own have `source: \"launcher\"`.", "",
              "| kind | from | what | further keys |", "|---|---|---|---|"]
    for model in KINDS:
        kind = get_args(model.model_fields["kind"].annotation)[0]
        origin = "cell" if issubclass(model, CellEvent) else "launcher" if issubclass(model, LauncherEvent) else "skill"
        keys = [_key(name, field) for name, field in model.model_fields.items()
                if name not in common and name != "kind" and not (name == "cell" and origin == "cell")
                and not (name == "source" and origin == "launcher")]
        what = " ".join((model.__doc__ or "").split())
        lines.append(f"| `{kind}` | {origin} | {what} | {', '.join(keys) or '-'} |")
    return "\n".join(lines) + "\n"


def _key(name: str, field: Any) -> str:
    described = f": {field.description}" if field.description else ""
    return f"`{name}` ({_type_text(field.annotation)}){described}"


def _type_text(kind: Any) -> str:
    """A field's type as a reader of the docs wants it: the values of an enum or a Literal."""
    if isinstance(kind, type) and issubclass(kind, Enum):
        return " / ".join(m.value for m in kind)
    origin, args = get_origin(kind), get_args(kind)
    if origin is Literal:
        return " / ".join(map(str, args))
    if origin in (Union, UnionType):
        return " or ".join("null" if a is type(None) else _type_text(a) for a in args)
    if origin is list:
        return f"list of {_type_text(args[0])}"
    return getattr(kind, "__name__", str(kind))


if __name__ == "__main__":
    sys.stdout.write(markdown())
