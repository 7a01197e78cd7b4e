"""The scene a twin simulates, as validated data (pydantic): stations, part types, parts and the
twin's settings, over the robot entries (``drivers/robot_config.py``).

Pure data, no pybullet: ``cellctl check`` validates a config without starting physics, and the
line config (cells, recipes) extends :class:`SceneConfig`. Unknown keys are errors, because a
misspelt key silently falling back to a default is how a robot ends up somewhere unexpected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from cellctl.drivers.machine import MachineDescription, MachineDriver

from cellctl.drivers.curve import Keys
from cellctl.drivers.robot_config import Problem, RobotConfig, Strict, Vec3


REST_CLEARANCE = 0.05  # m above a station's top surface within which a part rests on it


class FeedConfig(Strict):
    """Parts appear on the station on a schedule of sim time (a conveyor's end, in the twin)."""

    part_type: str = Field("box", description="the part type it gives (a key of part_types)")
    every: float = Field(5.0, gt=0, description="s of sim time between parts")
    first_at: float = Field(0.0, ge=0, description="s of sim time before the first part")
    count: int | None = Field(None, ge=0, description="how many parts in all; None = no limit")
    prefix: str | None = Field(None, description="part ids are PREFIX-1, PREFIX-2, ...; default: the station name")


class RosSensorConfig(Strict):
    presence: str = Field(description="std_msgs/msg/Bool topic: a part rests on the station")
    part_id: str | None = Field(None, description="std_msgs/msg/String topic: the id of that part (a reader)")


class SensorConfig(Strict):
    """How cells sense the station: ROS topics (``ros``: the twin's rosbridge endpoint publishes
    them from its world; default names /stations/NAME/present and /stations/NAME/part_id), or a
    presence switch wired to robots' digital inputs (``io``: robot name -> input name; the cell
    reads it through its own robot's driver, the twin sets the input from the station's
    occupancy). Exactly one of the two."""

    ros: RosSensorConfig | None = Field(None, description="ROS topics of the sensor: presence and part id")
    io: dict[str, str] | None = Field(None, min_length=1, description="robot -> the digital input the sensor is wired to")

    @model_validator(mode="after")
    def _one(self) -> SensorConfig:
        if (self.ros is None) == (self.io is None):
            raise ValueError("either ros: {presence, part_id} or io: {ROBOT: INPUT} (one of them)")
        return self


def station_sensor(name: str, station: StationConfig) -> RosSensorConfig:
    """The station's sensor topics: configured, or the twin endpoint's defaults."""
    if station.sensor is not None and station.sensor.ros is not None:
        return station.sensor.ros
    return RosSensorConfig(presence=f"/stations/{name}/present", part_id=f"/stations/{name}/part_id")


class StationConfig(Strict):
    """A table-like box whose top surface centre is ``position``; parts rest on it. A ``feed``
    station produces parts; a ``sink`` station consumes every part that comes to rest on it."""

    position: Vec3 = Field(description="m, world frame: the centre of its top surface, where parts rest "
                                       "(`cellctl probe --teach` prints it)", examples=[[0.55, -0.35, 0.3]])
    size: tuple[float, float] = Field((0.3, 0.3), description="m: its top surface, x and y")
    feed: FeedConfig | None = Field(None, description="the twin puts parts here (a simulated feeder)")
    sink: bool = Field(False, description="the twin takes away parts placed here (a simulated outfeed)")
    sensor: SensorConfig | None = Field(None, description="how a cell sees a part here; default: the twin's "
                                                           "presence and part id (simulation)")

    def holds(self, point: Vec3, clearance: float = REST_CLEARANCE) -> bool:
        """The one station-occupancy rule: a part whose bottom-face centre is over the top surface
        and from 1 cm below it up to ``clearance`` above it is on the station. ``clearance``
        above the resting band counts a part in the space over the station (one being lifted)."""
        x, y, z = self.position
        return (abs(point[0] - x) <= self.size[0] / 2 and abs(point[1] - y) <= self.size[1] / 2
                and z - 0.01 <= point[2] <= z + clearance)


class PartTypeConfig(Strict):
    size: Vec3 = Field((0.04, 0.04, 0.04), description="m: a box's x, y and height (the height sets the grip pose)")
    mass: float = Field(0.1, gt=0, description="kg (twin only)")
    color: tuple[float, float, float, float] = Field((0.9, 0.4, 0.1, 1.0), description="RGBA in 0..1 (twin only)")


class PartConfig(Strict):
    id: str = Field(description="the part's id (the ledgers' name for it)")
    type: str = Field("box", description="a key of part_types")
    station: str = Field(description="the station it rests on at the start")


class GripperConfig(Strict):
    tolerance: float = Field(0.02, gt=0, description="max TCP distance to a part's top face to attach it (m)")
    actuation_time: float = Field(0.1, ge=0, description="vacuum build-up / release time (s)")


class BridgeConfig(Strict):
    """How the twin's rosbridge endpoint plays the real rosbridge_suite and ros2_controllers where
    they differ from what a client would hope (docs/ros.md, "Real bridges"). The defaults are the
    released behaviour (rosbridge_suite's default parameters, ros2_controllers on Jazzy), except for
    rejected goals: rosbridge 2.0–2.1 never answers them (a bug fixed upstream), which the twin plays
    with ``goal_rejections: silent``; by default it answers, as bad input gets an error here."""

    goal_rejections: Literal["silent", "answered"] = Field(
        "answered", description="answered: a rejected goal gets a result with result false (fixed upstream); "
                                "silent: it, or one to an action nobody serves, is never answered (rosbridge 2.0-2.1)")
    goals_in_new_thread: bool = Field(
        False, description="rosbridge's send_action_goals_in_new_thread; false: a client's later messages wait "
                           "until its running goal ends (a cancel is handled after the goal: SUCCEEDED)")
    preemption: Literal["jazzy", "humble", "refuse"] = Field(
        "jazzy", description="a goal to a busy trajectory controller preempts the running one, which ends "
                             "ABORTED (jazzy and later) or CANCELED (humble), error_code -1; refuse: rejected")
    cancel_on_disconnect: bool = Field(False, description="false: a client that goes away leaves its goals "
                                                          "running (rosbridge does not cancel them)")
    gripper_allow_stalling: bool = Field(False, description="GripperActionController's allow_stalling; false: a "
                                                            "close that stalls on a part ends ABORTED, stalled true")
    goal_setup: tuple[float, float] = Field(
        (0.0, 0.0), description="s, [min, max]: each goal reaches the action server after a time drawn from this "
                                "range (rosbridge 2.x creates an action client per goal and waits for the server), "
                                "so goals sent close together on two connections, or on one with "
                                "goals_in_new_thread, may arrive out of send order; drawn from a seeded generator")

    @field_validator("goal_setup")
    @classmethod
    def _range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 <= value[0] <= value[1] <= 10:
            raise ValueError("[min, max] seconds with 0 <= min <= max <= 10")
        return value


class SecurityConfig(Strict):
    """CURVE on every socket that commands something (``drivers/curve.py``): ``keys`` is a
    directory of key pairs in pyzmq's format; each process reads its own NAME.key_secret and
    accepts the clients whose NAME.key files are there. Relative to the config file."""

    keys: str = Field(description="directory of CURVE key files (`cellctl keys generate NAME --dir DIR`)")
    observers: str | None = Field(None, description="directory of public keys admitted to read-only sockets "
                                                    "only (cells' status sockets, the twin's event stream)")

    @field_validator("keys", "observers", mode="before")
    @classmethod
    def _relative_to_config(cls, value: object, info: ValidationInfo) -> object:
        base = (info.context or {}).get("base_dir")
        if isinstance(value, str) and base and not Path(value).is_absolute():
            return str(Path(base) / value)
        return value

    def load(self, name: str) -> Keys:
        return Keys.load(self.keys, name, self.observers)


class TwinConfig(Strict):
    """``seed`` is gone (it was read nowhere: the twin's physics makes no random choice); a config
    that still sets it is told so, not silently accepted."""

    mode: Literal["realtime", "lockstep"] = Field("realtime", description="lockstep: the twin steps when every "
                                                  "expected controller has asked (deterministic tests); realtime: "
                                                  "it runs at `rate` (needed with driver.ros robots)")
    host: str = Field("127.0.0.1", description="address the twin binds (and cells reach it at); not loopback "
                                               "only with security.keys")
    port: int = Field(0, ge=0, le=65535, description="its request port; 0 = chosen at start (given to cells "
                                                     "by the launcher, or with --twin)")
    physics_hz: int = Field(240, ge=60, le=2000, description="physics steps per sim second")
    rate: float = Field(1.0, gt=0, description="realtime mode: sim seconds per wall second")
    period_steps: int = Field(5, ge=1, description="lockstep: physics steps per control period")
    silence_timeout: float = Field(5.0, gt=0, description="lockstep: wall seconds before a silent controller is dropped")
    expect: list[str] = Field(default_factory=list,
                              description="lockstep: hold time at 0 until these participants have registered, "
                                          "so a run does not depend on which process started first")
    orphan_grace: float = Field(30.0, ge=0, description="wall s a twin whose starting process is gone waits "
                                                         "for any client before it exits; 0 = never")
    gripper: GripperConfig = Field(GripperConfig(), description="the simulated suction gripper")
    rosbridge: BridgeConfig = Field(BridgeConfig(), description="how the twin's rosbridge endpoint behaves (as a "
                                                                "real bridge and controller would)")
    goal_tolerance: float = Field(0.01, gt=0, description="rad; a motion succeeds within it of its goal")
    settle_time: float = Field(1.0, gt=0, description="s after a trajectory's end to reach the goal")

    @model_validator(mode="before")
    @classmethod
    def _no_seed(cls, data: object) -> object:
        if isinstance(data, dict) and "seed" in data:
            raise ValueError("twin.seed was removed: it had no effect (the twin's physics makes no random "
                             "choice); delete the key")
        return data


class OctoPrintConfig(Strict):
    """A real 3D printer behind OctoPrint (docs/machines.md): its REST API, with the API key of a
    user allowed to print, read from a file."""

    url: str = Field(pattern=r"^https?://[^\s/]+(:\d+)?(/.*)?$", description="OctoPrint's address, "
                     "http://HOST:PORT or https://HOST:PORT")
    api_key_file: str = Field(description="a file holding the user's API key (one line), relative to the config; "
                                          "keep it readable by the cell's user only")
    timeout: float = Field(5.0, gt=0, le=60, description="wall s a request may take before the printer counts as "
                                                         "offline")
    program: str | None = Field(None, description="the G-code file a job prints unless start_job names one "
                                                  "(relative to the config)")

    @field_validator("api_key_file", "program", mode="before")
    @classmethod
    def _relative_to_config(cls, value: object, info: ValidationInfo) -> object:
        return SecurityConfig._relative_to_config(value, info)


class LinuxCncConfig(Strict):
    """A real CNC behind LinuxCNC, reached through linuxcncrsh's text protocol (docs/machines.md)."""

    host: str = Field(description="the CNC's PC (linuxcncrsh listens on every address: firewall it to the cell "
                                  "network)")
    port: int = Field(5007, ge=1, le=65535, description="linuxcncrsh's --port")
    password_file: str | None = Field(None, description="two lines: linuxcncrsh's --connectpw and --enablepw "
                                                        "(relative to the config); none: LinuxCNC's defaults")
    program: str | None = Field(None, description="the NGC program a job runs unless start_job names one (a path "
                                                  "on the CNC's PC)")
    timeout: float = Field(3.0, gt=0, le=60, description="wall s a request may take before the CNC counts as offline")

    @field_validator("password_file", mode="before")
    @classmethod
    def _relative_to_config(cls, value: object, info: ValidationInfo) -> object:
        return SecurityConfig._relative_to_config(value, info)


class MachineDriverConfig(Strict):
    """How a real machine is reached (none: the twin simulates it): one of the keys."""

    octoprint: OctoPrintConfig | None = Field(None, description="a printer through OctoPrint's REST API")
    linuxcnc: LinuxCncConfig | None = Field(None, description="a CNC through LinuxCNC's linuxcncrsh")

    @model_validator(mode="after")
    def _one(self) -> MachineDriverConfig:
        if (self.octoprint is None) == (self.linuxcnc is None):
            raise ValueError("exactly one of octoprint or linuxcnc")
        return self


class MachineConfig(Strict):
    """A machine of the line, simulated by the twin (a real one is reached through its own API):
    a 3D printer makes a part on its bed; a CNC turns the part on its fixture into another type.
    Its station is where the part rests: robots load and unload it there."""

    kind: Literal["printer", "cnc"] = Field(description="printer: a job makes a part; cnc: a job works on the part "
                                                        "in its fixture")
    station: str = Field(description="its bed or fixture: a station of the line (a key of stations)")
    job_time: float = Field(gt=0, le=86_400, description="s a job takes: the twin's machines take this long (sim s); a "
                                                         "real one's expected time where it gives none")
    makes: str = Field("box", description="the part type a finished job leaves on the station (a key of part_types)")
    takes: str | None = Field(None, description="cnc: the part type it works on (a blank); printer: none")
    door: bool = Field(False, description="it has a door a robot enters through: open while loading and unloading, "
                                          "closed for a job")
    driver: MachineDriverConfig | None = Field(None, description="a real machine's API (the twin then follows it: "
                                                                 "a print it finishes puts its part on the twin's "
                                                                 "bed); none: the twin simulates the machine")

    def description(self, name: str) -> MachineDescription:
        return MachineDescription(name, self.kind, self.station, self.makes, self.takes, self.door,
                                  names_jobs=self.driver is None or self.driver.linuxcnc is None)

    def real(self, name: str) -> MachineDriver | None:
        """The real machine's driver (not yet connected), or None: the twin simulates it. The
        drivers are imported here: a line without real machines never loads their HTTP client (a
        cell process starts ~50 ms sooner)."""
        if self.driver is None:
            return None
        from cellctl.drivers.linuxcnc import LinuxCncMachine
        from cellctl.drivers.octoprint import OctoPrintMachine

        if (octo := self.driver.octoprint) is not None:
            return OctoPrintMachine(self.description(name), octo.url, octo.api_key_file, octo.timeout,
                                    expected=self.job_time, program=octo.program)
        cnc = self.driver.linuxcnc
        return LinuxCncMachine(self.description(name), cnc.host, cnc.port, cnc.password_file, cnc.program,
                               cnc.timeout, expected=self.job_time)


class SceneConfig(Strict):
    version: Literal[1] = Field(description="the config format's version: 1")
    twin: TwinConfig = Field(TwinConfig(), description="the simulated world (also the time source of simulated cells)")
    robots: dict[str, RobotConfig] = Field(min_length=1, description="robot name -> robot")
    stations: dict[str, StationConfig] = Field(default_factory=dict, description="station name -> station: where "
                                                                                 "parts rest")
    part_types: dict[str, PartTypeConfig] = Field(default_factory=lambda: {"box": PartTypeConfig()},
                                                  description="part type name -> its size (default: box, 4 cm)")
    parts: list[PartConfig] = Field(default_factory=list, description="parts in the world at the start (twin only)")
    security: SecurityConfig | None = Field(None, description="CURVE keys: needed for any address that is not "
                                                              "loopback")
    machines: dict[str, MachineConfig] = Field(default_factory=dict, description="machine name -> machine (printers, "
                                                                                 "CNCs) at stations of the line")

    def keys(self, name: str) -> Keys | None:
        """This process's CURVE keys (``name``: twin, launcher, a cell), or None without security."""
        return self.security.load(name) if self.security is not None else None

    def problems(self) -> list[Problem]:
        """Cross-references a schema cannot express: parts name existing stations and types,
        part ids are unique, a sensor wired to a robot's input names a robot and an input it has."""
        found: list[Problem] = [p for name, robot in self.robots.items() for p in robot.problems(name)]
        for name, station in self.stations.items():
            if station.feed and station.feed.part_type not in self.part_types:
                found.append(Problem(("stations", name, "feed", "part_type"),
                                     f"one of the part types {sorted(self.part_types)}", station.feed.part_type))
            if station.feed and station.sink:
                found.append(Problem(("stations", name, "sink"), "a station that is not also a feed", True))
            for robot, io in ((station.sensor.io or {}) if station.sensor else {}).items():
                if robot not in self.robots:
                    found.append(Problem(("stations", name, "sensor", "io", robot),
                                         f"one of the robots {sorted(self.robots)}", robot))
                elif io not in self.robots[robot].io:
                    found.append(Problem(("stations", name, "sensor", "io", robot),
                                         f"an input robots.{robot}.io declares ({sorted(self.robots[robot].io)})", io))
                elif (ros := self.robots[robot].driver.ros) is not None and ros.names.preset != "twin" \
                        and io not in (ros.names.io or {}):
                    found.append(Problem(("robots", robot, "driver", "ros", "names", "io"),
                                         f"topics for input {io!r} (station {name}'s sensor is wired to it)",
                                         ros.names.io))
        found += self._machine_problems()
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

    def _machine_problems(self) -> list[Problem]:
        found: list[Problem] = []
        used: dict[str, str] = {}
        for name, machine in self.machines.items():
            where = ("machines", name)
            if machine.station not in self.stations:
                found.append(Problem((*where, "station"), f"one of the stations {sorted(self.stations)}", machine.station))
            elif machine.station in used:
                found.append(Problem((*where, "station"), f"a station no other machine has (machine {used[machine.station]} "
                                                          f"has it)", machine.station))
            elif self.stations[machine.station].feed or self.stations[machine.station].sink:
                found.append(Problem((*where, "station"), "a station that is neither a feed nor a sink", machine.station))
            used.setdefault(machine.station, name)
            for key in ("makes", "takes"):
                value = getattr(machine, key)
                if value is not None and value not in self.part_types:
                    found.append(Problem((*where, key), f"one of the part types {sorted(self.part_types)}", value))
            for key, kind in (("octoprint", "printer"), ("linuxcnc", "cnc")):
                if machine.driver is not None and getattr(machine.driver, key) is not None and machine.kind != kind:
                    found.append(Problem((*where, "kind"), f"{kind} (driver.{key} drives a {kind})", machine.kind))
            if machine.driver is not None and self.twin.mode == "lockstep":
                found.append(Problem(("twin", "mode"), f"realtime: machine {name} is real (its driver:) and does "
                                                       f"not take part in lockstep", self.twin.mode))
            if machine.kind == "cnc" and machine.takes is None:
                found.append(Problem((*where, "takes"), "the part type the cnc works on (a blank)", None))
            if machine.kind == "printer" and machine.takes is not None:
                found.append(Problem((*where, "takes"), "nothing: a printer makes its part", machine.takes))
        return found
