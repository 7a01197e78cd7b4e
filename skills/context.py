"""What a skill may use besides its driver: named station positions, a way to locate parts (where
a backend knows: the twin, a vision system), and the event sink. The cell builds it from config."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from cellctl.drivers.contract import RobotDriver
from cellctl.drivers.geometry import facing
from cellctl.drivers.types import Pose, Quat, Vec3
from cellctl.skills.events import EventSink, ListSink


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
