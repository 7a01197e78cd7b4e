"""Part sensing: what tells a cell which part, if any, rests on a station (a light barrier, a
barcode reader, a vision system on a real line). The cell sees stations only through a
:class:`PartSensor`; the twin's simulation of the sensors is one backend among those a line may
have.

- :class:`TwinPartSensor`: the twin's world through its ZeroMQ API (a cell whose robot is the twin's).
- :class:`RosPartSensor`: per station a ``std_msgs/msg/Bool`` presence topic and a
  ``std_msgs/msg/String`` part-id topic (a reader), over rosbridge — what a real line offers, and
  what the twin's rosbridge endpoint publishes from its world.
- :class:`IoPartSensor`: a presence switch wired to a digital input of the cell's own robot, read
  through its driver (the twin sets such an input from the station's occupancy).
- :class:`StationSensors`: each station read by the backend its config names.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Protocol
from urllib.parse import urlparse

import roslibpy

from cellctl.drivers import ros_names as N
from cellctl.drivers.contract import RobotDriver
from cellctl.drivers.errors import ConnectionLost, DriverError
from cellctl.drivers.twin_client import TwinClient
from cellctl.twin.config import RosSensorConfig, StationConfig

RETRY_S = 1.0  # s between tries to reach a lost bridge again (in a thread beside the cell)


class PartSensor(Protocol):
    def present(self, station: str) -> bool:
        """Whether a part rests on ``station``."""

    def identifies(self, station: str) -> bool:
        """Whether the station's sensor reads part ids (else: presence only, and the cell's ledger
        says which part it is — ``cellctl.custody.custodian.Custodian.occupant``)."""

    def occupant(self, station: str) -> str | None:
        """The id of the part resting on ``station``, or None (only where it ``identifies``)."""


class TwinPartSensor:
    """The twin's world as the line's station sensors: a part rests on a station by the twin's
    station-occupancy rule (:meth:`StationConfig.holds`) and is not held by a gripper."""

    def __init__(self, twin: TwinClient, stations: Mapping[str, StationConfig]) -> None:
        self._twin, self._stations = twin, stations

    def present(self, station: str) -> bool:
        return self.occupant(station) is not None

    def identifies(self, station: str) -> bool:
        return True

    def occupant(self, station: str) -> str | None:
        s = self._stations[station]
        return next((p["id"] for p in self._twin.request("list_parts")
                     if p["held_by"] is None and s.holds(p["bottom"])), None)


class RosPartSensor:
    """Station sensors over rosbridge. A station's state is known once its topics have spoken;
    until then (and while the bridge is down) :meth:`occupant` raises with the URL and topic, so the
    cell goes Held with that reason instead of guessing an empty station."""

    def __init__(self, url: str, topics: Mapping[str, RosSensorConfig], timeout: float = 5.0) -> None:
        where = urlparse(url)
        self.url, self._host, self._port, self._secure = url, where.hostname, where.port, where.scheme == "wss"
        self._topics, self.timeout = dict(topics), timeout
        self._values: dict[str, object] = {}  # topic -> last value
        self._lock = threading.Lock()
        self._ros: roslibpy.Ros | None = None
        self._connected_once = False
        self._closed = False
        self._reconnecting: threading.Thread | None = None

    def connect(self) -> None:
        ros = roslibpy.Ros(self._host, self._port, is_secure=self._secure, transport="asyncio")
        ros.factory.maxRetries = -1  # reconnection is ours: on the next read
        try:
            ros.run(timeout=self.timeout)
        except Exception as exc:
            raise ConnectionLost(f"no rosbridge at {self.url} for the station sensors: {exc}") from None
        ros.on("close", lambda *_: self._lost())
        self._values = {}
        for sensor in self._topics.values():
            roslibpy.Topic(ros, sensor.presence, N.BOOL).subscribe(
                lambda m, t=sensor.presence: self._values.__setitem__(t, bool(m["data"])))
            if sensor.part_id:
                roslibpy.Topic(ros, sensor.part_id, N.STRING).subscribe(
                    lambda m, t=sensor.part_id: self._values.__setitem__(t, str(m["data"])))
        topics = [t for sensor in self._topics.values() for t in (sensor.presence, sensor.part_id) if t]
        deadline = time.monotonic() + self.timeout  # the first readings here, so a read never waits
        while any(t not in self._values for t in topics) and time.monotonic() < deadline:
            time.sleep(0.01)
        self._ros, self._connected_once = ros, True

    def start(self) -> None:
        """Connect now (the cell's start, before its first tick), or keep trying beside the cell."""
        if not self._topics:
            return
        try:
            self.connect()
        except ConnectionLost:
            self._start_reconnecting()

    def _lost(self) -> None:
        """The bridge went away: reconnect beside the cell at once (not at the next read), so the
        sensors are back when the robot is and an operator's Unhold finds them answering."""
        with self._lock:
            self._ros = None
        self._start_reconnecting()

    def _start_reconnecting(self) -> None:
        with self._lock:
            if self._closed or (self._reconnecting is not None and self._reconnecting.is_alive()):
                return
            self._reconnecting = threading.Thread(target=self._reconnect, daemon=True, name="sensors-reconnect")
            self._reconnecting.start()

    def close(self) -> None:
        self._closed = True
        ros, self._ros = self._ros, None
        if ros is not None:
            try:
                ros.close(timeout=1.0)
            except Exception:  # a half-dead connection: nothing more to do
                pass

    def _value(self, topic: str) -> object:
        """The last reading, never waited for inside a tick: the connection is made at the cell's
        start (:meth:`start`), and a lost one again beside the cell."""
        if self._ros is None:
            self._start_reconnecting()
            raise ConnectionLost(f"rosbridge at {self.url} for the station sensors "
                                 f"{'lost' if self._connected_once else 'not reached yet'}; reconnecting")
        if topic not in self._values:
            raise DriverError(f"no message on {topic} from {self.url} yet (a station sensor): its state is unknown")
        return self._values[topic]

    def _reconnect(self) -> None:
        """Try every RETRY_S until the bridge answers again (or the sensors are closed)."""
        while not self._closed and self._ros is None:
            try:
                self.connect()
            except ConnectionLost:
                time.sleep(RETRY_S)  # (this thread's own pause, beside the cell)

    def present(self, station: str) -> bool:
        return bool(self._value(self._topics[station].presence))

    def identifies(self, station: str) -> bool:
        return self._topics[station].part_id is not None

    def occupant(self, station: str) -> str | None:
        sensor = self._topics[station]
        if not self._value(sensor.presence):
            return None
        if sensor.part_id is None:
            raise DriverError(f"station {station}: its sensor gives presence only ({sensor.presence})")
        part = self._value(sensor.part_id)
        return part or None


class IoPartSensor:
    """Presence switches wired to the cell's robot's digital inputs (station -> input name), read
    through the robot's driver: on the twin its IO op, on a ROS robot its IO state topic. Presence
    only: which part it is comes from the ledger."""

    def __init__(self, driver: RobotDriver, inputs: Mapping[str, str]) -> None:
        self._driver, self._inputs = driver, dict(inputs)

    def present(self, station: str) -> bool:
        return self._driver.read_io(self._inputs[station])

    def identifies(self, station: str) -> bool:
        return False

    def occupant(self, station: str) -> str | None:
        raise DriverError(f"station {station}: its sensor gives presence only (input {self._inputs[station]!r})")


class StationSensors:
    """The cell's stations, each read by its own backend (a feed with a barcode reader on ROS
    topics, a handoff station with a light barrier on the robot's input, say)."""

    def __init__(self, by_station: Mapping[str, PartSensor]) -> None:
        self._by_station = dict(by_station)

    def present(self, station: str) -> bool:
        return self._by_station[station].present(station)

    def identifies(self, station: str) -> bool:
        return self._by_station[station].identifies(station)

    def occupant(self, station: str) -> str | None:
        return self._by_station[station].occupant(station)
