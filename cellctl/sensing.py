"""Part sensing: what tells a cell which part, if any, rests on a station (a light barrier, a
barcode reader, a vision system on a real line). The cell sees stations only through a
:class:`PartSensor`; the twin's simulation of the sensors is one backend among those a line may
have."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from drivers.twin_client import TwinClient
from twin.config import StationConfig


class PartSensor(Protocol):
    def occupant(self, station: str) -> str | None:
        """The id of the part resting on ``station``, or None."""


class TwinPartSensor:
    """The twin's world as the line's station sensors: a part rests on a station by the twin's
    station-occupancy rule (:meth:`StationConfig.holds`) and is not held by a gripper."""

    def __init__(self, twin: TwinClient, stations: Mapping[str, StationConfig]) -> None:
        self._twin, self._stations = twin, stations

    def occupant(self, station: str) -> str | None:
        s = self._stations[station]
        return next((p["id"] for p in self._twin.request("list_parts")
                     if p["held_by"] is None and s.holds(p["bottom"])), None)
