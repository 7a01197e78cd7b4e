"""Sources and sinks: the ends of the line the twin simulates. A feed station spawns a part on its
schedule (sim time) whenever it is free; a sink station removes any part that has come to rest on
it. Every spawn and consumption goes to the part log, the twin's own count of what went in and out
(reports count lost and duplicated parts from it, never from the controllers' counters)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from cellctl.drivers.bullet import pb

from cellctl.twin.config import SceneConfig, StationConfig
from cellctl.twin.parts import Parts

CHECK_EVERY = 10  # steps between sink / feed checks
REST_SPEED = 0.02  # m/s: a part slower than this has come to rest
OVER_CLEARANCE = 0.2  # m: the space over a station in which a part blocks a feed (or is falling onto a sink)


class Feeds:
    def __init__(self, config: SceneConfig, parts: Parts, client: int) -> None:
        self._parts, self._client = parts, client
        self._stations = config.stations
        self._part_types = config.part_types
        self._feeds = {n: s for n, s in config.stations.items() if s.feed is not None}
        self._sinks = {n: s for n, s in config.stations.items() if s.sink}
        self._made = dict.fromkeys(self._feeds, 0)
        self.log: list[dict] = []

    def made(self) -> dict[str, int]:
        return dict(self._made)

    def restore(self, made: dict[str, int], log: list[dict]) -> None:
        """Counters and log from a checkpoint: a restored feed goes on with the next part id."""
        self._made.update({n: c for n, c in made.items() if n in self._made})
        self.log = log

    def occupied(self, station: StationConfig) -> bool:
        """Any part in the space over the station, held ones included: a part still being lifted
        off it must not have the next one spawned into it."""
        return any(station.holds(self._parts.bottom_centre(p), OVER_CLEARANCE) for p in self._parts.by_id.values())

    def update(self, steps: int, now: float, held_parts: Callable[[], set[str]]) -> list[dict]:
        """Spawn due parts, consume parts at rest on sinks (every CHECK_EVERY steps; ``held_parts``
        is asked only then)."""
        if steps % CHECK_EVERY:
            return []
        held = held_parts()
        events = []
        for name, station in self._feeds.items():
            feed = station.feed
            due = feed.first_at + self._made[name] * feed.every
            if (feed.count is None or self._made[name] < feed.count) and now >= due and not self.occupied(station):
                self._made[name] += 1
                part_id = f"{feed.prefix or name}-{self._made[name]}"
                self._parts.spawn(part_id, feed.part_type, station.position)
                events.append(self.record("spawned", part_id, name, now))
        for name, station in self._sinks.items():
            for part in list(self._parts.by_id.values()):
                if part.id in held or not station.holds(self._parts.bottom_centre(part), OVER_CLEARANCE):
                    continue
                speed = np.linalg.norm(pb.getBaseVelocity(part.body, physicsClientId=self._client)[0])
                if speed < REST_SPEED:
                    self._parts.remove(part.id)
                    events.append(self.record("consumed", part.id, name, now))
        return events

    def record(self, event: str, part_id: str, station: str, now: float) -> dict:
        entry = {"seq": len(self.log) + 1, "event": event, "part": part_id, "station": station, "time": now}
        self.log.append(entry)
        return {"topic": "parts", **entry}
