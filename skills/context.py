"""What a skill may use besides its driver: named station positions, a way to locate parts (where
a backend knows: the twin, a vision system), the event sink, and the machines the cell tends with
the cell's custody of the parts inside them. The cell builds it from config."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from cellctl.drivers.contract import RobotDriver
from cellctl.drivers.geometry import facing
from cellctl.drivers.machine import MachineDriver
from cellctl.drivers.types import Pose, Quat, Vec3
from cellctl.skills.events import EventSink, ListSink


class Tending(Protocol):
    """The cell's custody of parts in the machines it tends, as the tending skills report it: the
    ledger records each step before the next one happens, so a restarted cell asks the machine
    about the right job (``cellctl.custody.custodian.Custodian`` keeps it)."""

    def inside(self, machine: str) -> str | None:
        """The part the ledger has inside ``machine``, if any."""

    def loaded(self, part: str, machine: str) -> None:
        """``part`` (in this cell's custody) now rests in ``machine``'s station."""

    def printing(self, part: str, machine: str, part_type: str) -> None:
        """A job that makes a part (a print) is about to start for the new part id ``part``."""

    def job(self, part: str, machine: str, state: str) -> None:
        """What ``machine``'s job for ``part`` did: started, done or failed."""

    def job_state(self, part: str, machine: str) -> str | None: ...

    def unloaded(self, part: str, machine: str, part_type: str) -> None:
        """``part`` was taken out of ``machine`` (in the gripper), now of ``part_type``."""

    def occupant(self, station: str) -> str | None:
        """What rests on ``station``, from a sensor or the ledger (never from a machine that
        cannot see it): a part id, "?" for an unidentified one, None when clear."""


@dataclass
class SkillContext:
    """``reference`` is the TCP pose at home (tool pointing down): skills turn it to face a
    target instead of hard-coding an orientation per robot model."""

    driver: RobotDriver
    reference: Pose
    stations: dict[str, Vec3] = field(default_factory=dict)  # top-surface centres, world frame
    part_height: float = 0.04
    locate: Callable[[str], Vec3 | None] | None = None  # part id -> bottom-face centre, if known
    events: EventSink = field(default_factory=ListSink)
    robot: str = ""
    sinks: frozenset[str] = frozenset()  # stations that consume parts: a part gone from one arrived
    machines: Mapping[str, MachineDriver] = field(default_factory=dict)  # the machines the cell tends
    tending: Tending | None = None  # custody of the parts inside them
    part: str | None = None  # the part the cell works on now (the tending skills' job is named after it)

    @classmethod
    def create(cls, driver: RobotDriver, **kwargs: object) -> SkillContext:
        """Context for a connected driver; the reference pose is FK of the robot's home."""
        return cls(driver, driver.kinematics.fk(driver.describe().home), **kwargs)

    def facing(self, position: Vec3) -> Quat:
        return facing(self.reference, self.driver.describe().base, position)

    def above(self, position: Vec3, dz: float) -> Pose:
        """The TCP ``dz`` above ``position``, tool down, facing it."""
        target = (position[0], position[1], position[2] + dz)
        return Pose(target, self.facing(target))

    def now(self) -> float:
        return self.driver.now()

    def emit(self, event: dict) -> None:
        self.events.emit({"robot": self.robot, **event} if self.robot else event)

    def station(self, name: str) -> Vec3:
        try:
            return self.stations[name]
        except KeyError:
            raise KeyError(f"unknown station {name!r}; stations: {sorted(self.stations)}") from None
