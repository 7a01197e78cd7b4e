"""The scene a twin simulates, as validated data (pydantic): stations, part types, parts and the
twin's settings, over the robot entries (``drivers/robot_config.py``).

Pure data, no pybullet: ``cellctl check`` validates a config without starting physics, and the
line config (cells, recipes) extends :class:`SceneConfig`. Unknown keys are errors, because a
misspelt key silently falling back to a default is how a robot ends up somewhere unexpected.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from drivers.robot_config import Problem, RobotConfig, Strict, Vec3


REST_CLEARANCE = 0.05  # m above a station's top surface within which a part rests on it


class FeedConfig(Strict):
    """Parts appear on the station on a schedule of sim time (a conveyor's end, in the twin)."""

    part_type: str = "box"
    every: float = Field(5.0, gt=0, description="s of sim time between parts")
    first_at: float = Field(0.0, ge=0)
    count: int | None = Field(None, ge=0, description="how many parts in all; None = no limit")
    prefix: str | None = Field(None, description="part ids are PREFIX-1, PREFIX-2, ...; default: the station name")


class StationConfig(Strict):
    """A table-like box whose top surface centre is ``position``; parts rest on it. A ``feed``
    station produces parts; a ``sink`` station consumes every part that comes to rest on it."""

    position: Vec3
    size: tuple[float, float] = (0.3, 0.3)
    feed: FeedConfig | None = None
    sink: bool = False

    def holds(self, point: Vec3, clearance: float = REST_CLEARANCE) -> bool:
        """The one station-occupancy rule: a part whose bottom-face centre is over the top surface
        and from 1 cm below it up to ``clearance`` above it is on the station. ``clearance``
        above the resting band counts a part in the space over the station (one being lifted)."""
        x, y, z = self.position
        return (abs(point[0] - x) <= self.size[0] / 2 and abs(point[1] - y) <= self.size[1] / 2
                and z - 0.01 <= point[2] <= z + clearance)


class PartTypeConfig(Strict):
    size: Vec3 = (0.04, 0.04, 0.04)
    mass: float = Field(0.1, gt=0)
    color: tuple[float, float, float, float] = (0.9, 0.4, 0.1, 1.0)


class PartConfig(Strict):
    id: str
    type: str = "box"
    station: str


class GripperConfig(Strict):
    tolerance: float = Field(0.02, gt=0, description="max TCP distance to a part's top face to attach it (m)")
    actuation_time: float = Field(0.1, ge=0, description="vacuum build-up / release time (s)")


class TwinConfig(Strict):
    """``seed`` is gone (it was read nowhere: the twin's physics makes no random choice); a config
    that still sets it is told so, not silently accepted."""

    mode: Literal["realtime", "lockstep"] = "realtime"
    physics_hz: int = Field(240, ge=60, le=2000)
    rate: float = Field(1.0, gt=0, description="realtime mode: sim seconds per wall second")
    period_steps: int = Field(5, ge=1, description="lockstep: physics steps per control period")
    silence_timeout: float = Field(5.0, gt=0, description="lockstep: wall seconds before a silent controller is dropped")
    expect: list[str] = Field(default_factory=list,
                              description="lockstep: hold time at 0 until these participants have registered, "
                                          "so a run does not depend on which process started first")
    gripper: GripperConfig = GripperConfig()
    goal_tolerance: float = Field(0.01, gt=0, description="rad; a motion succeeds within it of its goal")
    settle_time: float = Field(1.0, gt=0, description="s after a trajectory's end to reach the goal")

    @model_validator(mode="before")
    @classmethod
    def _no_seed(cls, data: object) -> object:
        if isinstance(data, dict) and "seed" in data:
            raise ValueError("twin.seed was removed: it had no effect (the twin's physics makes no random "
                             "choice); delete the key")
        return data


class SceneConfig(Strict):
    version: Literal[1]
    twin: TwinConfig = TwinConfig()
    robots: dict[str, RobotConfig] = Field(min_length=1)
    stations: dict[str, StationConfig] = Field(default_factory=dict)
    part_types: dict[str, PartTypeConfig] = Field(default_factory=lambda: {"box": PartTypeConfig()})
    parts: list[PartConfig] = Field(default_factory=list)

    def problems(self) -> list[Problem]:
        """Cross-references a schema cannot express: parts name existing stations and types,
        part ids are unique."""
        found: list[Problem] = [p for name, robot in self.robots.items() for p in robot.problems(name)]
        for name, station in self.stations.items():
            if station.feed and station.feed.part_type not in self.part_types:
                found.append(Problem(("stations", name, "feed", "part_type"),
                                     f"one of the part types {sorted(self.part_types)}", station.feed.part_type))
            if station.feed and station.sink:
                found.append(Problem(("stations", name, "sink"), "a station that is not also a feed", True))
        seen: set[str] = set()
        for i, part in enumerate(self.parts):
            if part.station not in self.stations:
                found.append(Problem(("parts", i, "station"), f"one of the stations {sorted(self.stations)}", part.station))
            if part.type not in self.part_types:
                found.append(Problem(("parts", i, "type"), f"one of the part types {sorted(self.part_types)}", part.type))
            if part.id in seen:
                found.append(Problem(("parts", i, "id"), "a part id not used before", part.id))
            seen.add(part.id)
        return found
