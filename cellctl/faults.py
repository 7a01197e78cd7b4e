"""Why a cell stopped (or what went wrong on its way), as a value: a kind that code decides on, a reason a technician reads, and
where it came from.

The kind travels with the reason in the status reply (``fault_kind``, ``fault_source``) and in
``fault`` events, so the launcher, the watchdog, a page or a SCADA client decide what to do from
the kind — never by parsing the reason's words. Later work adds kinds (the operator's, starved,
blocked, a machine's): add a member here and say what it means.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class FaultKind(StrEnum):
    OPERATOR = "operator"  # an operator's Hold, Stop or Abort: intended, never a stall
    TWIN_LOST = "twin_lost"  # the simulated world stopped answering (in simulation the cell resumes when it is back)
    ROBOT_LINK_LOST = "robot_link_lost"  # a real robot's bridge stopped answering (an operator resumes)
    STARVED = "starved"  # Suspended: no part to take for a while (it comes back by itself)
    BLOCKED = "blocked"  # Suspended: the downstream neighbour does not take the cell's part
    DRY_FEED = "dry_feed"  # Suspended for good: the feed has given all it will and the order is not done
    NEIGHBOUR_LOST = "neighbour_lost"  # a neighbour silent for longer than hold_after
    CONTROLLER_STOPPED = "controller_stopped"  # the robot's controller ended a motion the cell needed (homing)
    SKILL_FAILED = "skill_failed"  # a skill of the recipe failed (precondition, deadline, a motion that failed)
    WRONG_PART = "wrong_part"  # a neighbour offered a part of a type this cell does not work on
    LIMIT = "limit"  # a command outside the robot's limits or reach: refused before it reached the robot
    DRIVER = "driver"  # any other driver error (a timeout, an unsupported capability)
    PART_MISSING = "part_missing"  # a part the ledger holds is nowhere to be found (after a restart)
    MACHINE_FAULT = "machine_fault"  # a machine the cell tends: its alarm, a failed job, a job past its deadline
    MACHINE_UNAVAILABLE = "machine_unavailable"  # Suspended: a tended machine paused at its panel, offline or busy
    INTERNAL = "internal"  # a bug or a ledger error: the cell's log has the traceback


# What a technician does about each kind: the operator's page shows it beside an active alarm, and
# docs/deploy.md's table carries the same words (a test keeps them equal).
ADVICE: dict[FaultKind, str] = {
    FaultKind.OPERATOR: "intended: press Unhold (after a Hold) or Reset then Start (after a Stop or Abort) when ready",
    FaultKind.TWIN_LOST: "wait: a simulated cell resumes by itself when the twin is back; check the twin's log",
    FaultKind.ROBOT_LINK_LOST: "check the robot's bridge and network; press Unhold once the robot answers again",
    FaultKind.STARVED: "check the upstream cell or the feed; the cell goes on by itself when a part comes",
    FaultKind.BLOCKED: "check the downstream cell; the cell goes on by itself once its part is taken",
    FaultKind.DRY_FEED: "refill the feed or end the work order: the feed will give no more parts",
    FaultKind.NEIGHBOUR_LOST: "check the neighbour's PC, process and network; the cell resumes when it answers",
    FaultKind.CONTROLLER_STOPPED: "check the robot controller (protective stop, mode); then Reset and Start",
    FaultKind.SKILL_FAILED: "look at the station and the part named in the reason; clear it, then Reset and Start",
    FaultKind.WRONG_PART: "take the wrong part out of the line; check the upstream cell's recipe",
    FaultKind.LIMIT: "fix the config or recipe (a target outside the robot's limits or reach); then Reset",
    FaultKind.DRIVER: "read the reason and the cell's log; check the robot's driver, then Reset and Start",
    FaultKind.PART_MISSING: "find the part named in the reason (floor, gripper, station); the cell goes on",
    FaultKind.MACHINE_FAULT: "deal with the machine's alarm at the machine (the part stays in it); Unhold "
                             "acknowledges the alarm and runs the part's job again",
    FaultKind.MACHINE_UNAVAILABLE: "check the machine named in the reason (its panel, power, network); the cell goes "
                                   "on by itself when it is back",
    FaultKind.INTERNAL: "send the cell's log to the developers; Abort, Clear and Reset to go on",
}

LOST_WORLD = frozenset({FaultKind.TWIN_LOST, FaultKind.ROBOT_LINK_LOST})


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    reason: str  # what a technician reads, whole
    source: str  # where it came from: "twin", "robot", "neighbour NAME", "skill NAME", "cell"

    def fields(self) -> dict[str, str]:
        """The fault as it goes into a status reply and a ``fault`` event."""
        return {"fault": self.reason, "fault_kind": self.kind.value, "fault_source": self.source}


NO_FAULT: dict[str, None] = {"fault": None, "fault_kind": None, "fault_source": None}


def with_kind(kind: object, reason: object) -> str:
    """A fault's reason led by its kind, once, for a person: "starved: infeed empty" of kind
    starved stays as it is (not "starved: starved: …"); "drive fault: …" of kind robot reads
    "robot: drive fault: …"."""
    kind, reason = str(kind or ""), str(reason or "")
    return reason if not kind or reason.startswith(f"{kind}:") else f"{kind}: {reason}"
