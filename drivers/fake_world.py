"""An in-process stand-in for the twin's world, for unit tests: a virtual clock that jumps to the
next thing due instead of sleeping, and stations with parts on them (feeds that produce parts,
sinks that consume them). No physics, no sockets, no server: a part is where it was put, or in a
gripper. What :class:`~drivers.fake.FakeDriver` moves parts in, and what a cell under test senses
its stations through (``present`` / ``identifies`` / ``occupant``: the ``PartSensor`` protocol of
``cellctl/devices/sensing.py``).

The model is httpx's ``MockTransport``: the real code above runs unchanged, only the world below
it is replaced, so skill and cell logic can be tested in milliseconds. It does not replace the
process-level tests on the real twin (timing, physics, sockets): it adds coverage below them.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cellctl.drivers.clock import CONTROL_PERIOD, Grant
from cellctl.drivers.types import Vec3

REST_BAND = 0.01  # m: a part's bottom this close to a station's top rests on it (the twin's rule)


class VirtualClock:
    """Driver time for code under test. ``advance(until)`` returns at once, at ``until`` or at the
    first thing due before it (a motion's end, a feed's next part), so waiting for a part costs
    nothing. Without ``until`` (or with one already past) it moves one control period, as a
    lockstep grant does."""

    rejoined = 0  # a virtual clock never leaves its controller behind

    def __init__(self, start: float = 0.0, period: float = CONTROL_PERIOD) -> None:
        self._now, self.period = start, period
        self._due: list[float] = []
        self._watchers: list[Callable[[float], None]] = []

    def now(self) -> float:
        return self._now

    def wake_at(self, t: float) -> None:
        """Something happens at ``t``: no advance jumps past it."""
        heapq.heappush(self._due, t)

    def watch(self, callback: Callable[[float], None]) -> None:
        """``callback(now)`` after every advance (a world updating itself)."""
        self._watchers.append(callback)

    def advance(self, until: float | None = None) -> Grant:
        target = until if until is not None and until > self._now else self._now + self.period
        while self._due and self._due[0] <= self._now:
            heapq.heappop(self._due)
        if self._due and self._due[0] < target:
            target = self._due[0]
        self._now = target
        for callback in self._watchers:
            callback(self._now)
        return Grant(self._now)

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class FakeFeed:
    part_type: str = "box"
    every: float = 5.0
    first_at: float = 0.0
    count: int | None = None
    prefix: str = "part"


@dataclass(frozen=True)
class FakeStation:
    """``position`` is the top surface centre, as in a line config."""

    position: Vec3
    size: tuple[float, float] = (0.3, 0.3)
    feed: FakeFeed | None = None
    sink: bool = False

    def under(self, point: Vec3) -> bool:
        """``point`` (a part's bottom centre) is over the top surface."""
        return abs(point[0] - self.position[0]) <= self.size[0] / 2 and abs(point[1] - self.position[1]) <= self.size[1] / 2


@dataclass
class FakePart:
    id: str
    type: str
    bottom: Vec3  # bottom-face centre, world frame (meaningless while held)
    held_by: str | None = None


@dataclass
class FakeWorld:
    """Stations and parts. ``log`` is the world's own count of parts in and out (``spawned``,
    ``consumed``), like the twin's part log; ``dropped`` lists parts released over no station."""

    stations: dict[str, FakeStation]
    part_heights: dict[str, float] = field(default_factory=lambda: {"box": 0.04})
    clock: VirtualClock = field(default_factory=VirtualClock)
    parts: dict[str, FakePart] = field(default_factory=dict)
    log: list[dict] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    grip_tolerance: float = 0.02  # m: TCP to a part's top face, as the twin's suction gripper

    def __post_init__(self) -> None:
        self._made = dict.fromkeys((n for n, s in self.stations.items() if s.feed), 0)
        self.clock.watch(self.update)
        self.update(self.clock.now())

    @classmethod
    def from_config(cls, config: object, clock: VirtualClock | None = None) -> FakeWorld:
        """The stations, part types and initial parts of a line config (``load_config``'s result;
        read by attribute, so this bottom layer needs no import of the config models)."""
        stations = {}
        for name, s in config.stations.items():
            feed = s.feed and FakeFeed(s.feed.part_type, s.feed.every, s.feed.first_at, s.feed.count,
                                       s.feed.prefix or name)
            stations[name] = FakeStation(tuple(s.position), tuple(s.size), feed, s.sink)
        world = cls(stations, {n: t.size[2] for n, t in config.part_types.items()}, clock or VirtualClock())
        for part in config.parts:
            world.put(part.id, part.type, part.station)
        return world

    # -- the world's own behaviour ------------------------------------------------------------------
    def put(self, part_id: str, part_type: str, station: str) -> FakePart:
        """A part resting on ``station`` (a test's setup, or a feed)."""
        if part_id in self.parts:
            raise ValueError(f"part {part_id!r} is already in the world")
        part = FakePart(part_id, part_type, self.stations[station].position)
        self.parts[part_id] = part
        self.log.append({"event": "spawned", "part": part_id, "station": station, "time": self.clock.now()})
        return part

    def update(self, now: float) -> None:
        """Feeds produce their due parts onto free stations; sinks consume what rests on them."""
        for name, station in self.stations.items():
            feed = station.feed
            if feed is None or (feed.count is not None and self._made[name] >= feed.count):
                continue
            due = feed.first_at + self._made[name] * feed.every
            if now + 1e-9 < due:
                self.clock.wake_at(due)
            elif self.occupant(name) is None:
                self._made[name] += 1
                self.put(f"{feed.prefix}-{self._made[name]}", feed.part_type, name)
        for name, station in self.stations.items():
            if station.sink and (part := self.occupant(name)) is not None:
                del self.parts[part]
                self.log.append({"event": "consumed", "part": part, "station": name, "time": now})

    def grasp(self, holder: str, tcp: Vec3) -> str | None:
        """The part whose top face centre is nearest ``tcp`` within the tolerance, now held."""
        best, best_d = None, self.grip_tolerance
        for part in self._resting():
            top = (part.bottom[0], part.bottom[1], part.bottom[2] + self.part_heights.get(part.type, 0.04))
            d = sum((a - b) ** 2 for a, b in zip(top, tcp)) ** 0.5
            if d <= best_d:
                best, best_d = part, d
        if best is None:
            return None
        best.held_by = holder
        return best.id

    def release(self, part_id: str, tcp: Vec3) -> None:
        """The part drops from the TCP onto the station under it, or onto the floor."""
        part = self.parts[part_id]
        part.held_by = None
        station = next((s for s in self.stations.values() if s.under(tcp)), None)
        if station is None:
            part.bottom = (tcp[0], tcp[1], 0.0)
            self.dropped.append(part_id)
        else:
            part.bottom = (tcp[0], tcp[1], station.position[2])
        self.update(self.clock.now())

    def locate(self, part_id: str) -> Vec3 | None:
        """Bottom-face centre of a resting part (``SkillContext.locate``)."""
        part = self.parts.get(part_id)
        return part.bottom if part is not None and part.held_by is None else None

    # -- the PartSensor protocol --------------------------------------------------------------------
    def present(self, station: str) -> bool:
        return self.occupant(station) is not None

    def identifies(self, station: str) -> bool:
        return True  # the fake world knows every part's id, as the twin does

    def occupant(self, station: str) -> str | None:
        s = self.stations[station]
        return next((p.id for p in self._resting()
                     if s.under(p.bottom) and abs(p.bottom[2] - s.position[2]) <= REST_BAND), None)

    def _resting(self) -> Iterable[FakePart]:
        return [p for p in self.parts.values() if p.held_by is None]

