"""``cellctl probe CONFIG --cell NAME``: commissioning without moving anything. Connects to the
cell's rosbridge, asks it what it serves (rosapi: topics with their types, services, action
servers), and checks every name the cell needs — joint states, trajectory action, gripper action,
part presence, stop service, IO, ``/clock`` when the robot runs on sim time, each station sensor
topic — found / missing / wrong type, and the joint names the bridge publishes against the URDF's
(through ``driver.ros.joints``). Exit 0 only when everything is there. Moving the robot
(``check_driver``) stays a separate, explicit step.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from urllib.parse import urlparse

import roslibpy

from cellctl.config.line import LineConfig
from cellctl.devices.robot_backend import RosBackend
from cellctl.drivers import ros_names as N
from cellctl.drivers.description import describe_from_config
from cellctl.drivers.ros import RosNames
from cellctl.twin.config import station_sensor

TIMEOUT_S = 5.0
TEACH_GAP = 0.0  # --teach: the tool touches the part's top


class ProbeError(RuntimeError):
    """The bridge cannot be asked at all (unreachable, no rosapi): one line, exit 2."""


@dataclass(frozen=True)
class Check:
    what: str  # e.g. "joint states"
    name: str  # the ROS name
    expected: str  # its type, or what the joint names should be
    verdict: str  # "found" | "missing" | "wrong type: ..." | "wrong joints: ..."

    @property
    def ok(self) -> bool:
        return self.verdict == "found"

    def line(self) -> str:
        return f"{self.what:<22} {self.name:<60} {self.verdict}"


def _needed(config: LineConfig, cell: str, backend: RosBackend) -> list[tuple[str, str, str, str]]:
    """(what, name, type, kind) for every name the cell needs; kind is topic, service or action."""
    robot = config.cells[cell].robot
    desc = describe_from_config(robot, config.robots[robot])
    names = RosNames.from_config(robot, backend.cfg, desc.io_names)
    needed = [("joint states", names.joint_states, N.JOINT_STATE, "topic"),
              ("trajectory action", names.trajectory_action, N.FOLLOW_JOINT_TRAJECTORY, "action")]
    if names.gripper_action:
        needed.append(("gripper action", names.gripper_action, N.GRIPPER_COMMAND, "action"))
    if names.part_present:
        needed.append(("part present", names.part_present, N.BOOL, "topic"))
    if names.stop_service:
        needed.append(("stop service", names.stop_service, N.TRIGGER, "service"))
    for what, topic, type_name in (("ready", names.ready, N.BOOL), ("robot mode", names.robot_mode, N.UR_ROBOT_MODE),
                                   ("safety mode", names.safety_mode, N.UR_SAFETY_MODE)):
        if topic:
            needed.append((what, topic, type_name, "topic"))
    for io, (state, _setter) in names.io.items():
        needed.append((f"io {io}", state, N.BOOL, "topic"))
    if names.ur_io and names.ur_io_states:
        needed.append(("io states (UR)", names.ur_io_states, N.UR_IO_STATES, "topic"))
    if any(kind == "out" for kind, _ in names.ur_io.values()) and names.ur_set_io:
        needed.append(("set io (UR)", names.ur_set_io, N.UR_SET_IO, "service"))
    if names.clock:
        needed.append(("clock", names.clock, N.CLOCK, "topic"))
    cfg = config.cells[cell]
    for station in dict.fromkeys((cfg.take, cfg.give)):
        if (wired := config.stations[station].sensor) is not None and wired.io is not None:
            continue  # read through the robot's IO, listed above
        sensor = station_sensor(station, config.stations[station])
        needed.append((f"{station} presence", sensor.presence, N.BOOL, "topic"))
        if sensor.part_id:
            needed.append((f"{station} part id", sensor.part_id, N.STRING, "topic"))
    return needed


def _call(ros: roslibpy.Ros, service: str, type_name: str) -> dict:
    try:
        return roslibpy.Service(ros, service, type_name).call(roslibpy.ServiceRequest({}), timeout=TIMEOUT_S)
    except Exception as exc:  # roslibpy raises its own and builtin errors alike
        raise ProbeError(f"{service} did not answer: {exc}") from None


def _joint_names(ros: roslibpy.Ros, topic: str) -> list[str] | None:
    got: list[list[str]] = []
    done = threading.Event()

    def on_message(msg: dict) -> None:
        got.append(list(msg.get("name", [])))
        done.set()

    listener = roslibpy.Topic(ros, topic, N.JOINT_STATE)
    listener.subscribe(on_message)
    done.wait(TIMEOUT_S)
    listener.unsubscribe()
    return got[0] if got else None


def probe(config: LineConfig, cell: str, backend: RosBackend) -> list[Check]:
    where = urlparse(backend.url)
    ros = roslibpy.Ros(where.hostname, where.port, is_secure=where.scheme == "wss", transport="asyncio")
    ros.factory.maxRetries = -1
    try:
        ros.run(timeout=TIMEOUT_S)
    except Exception as exc:
        raise ProbeError(f"no rosbridge at {backend.url}: {exc}") from None
    try:
        topics = _call(ros, "/rosapi/topics", "rosapi/Topics")
        types = dict(zip(topics.get("topics", []), topics.get("types", [])))
        services = set(_call(ros, "/rosapi/services", "rosapi/Services").get("services", []))
        actions = set(_call(ros, "/rosapi/action_servers", "rosapi/GetActionServers").get("action_servers", []))
        checks = []
        for what, name, type_name, kind in _needed(config, cell, backend):
            if kind == "topic":
                found = name in types
                right = found and N.same_type(types[name], type_name)
                verdict = "found" if right else f"wrong type: {types[name]}" if found else "missing"
            else:
                verdict = "found" if name in (services if kind == "service" else actions) else "missing"
            checks.append(Check(what, name, type_name, verdict))
        checks.append(_joints_check(config, cell, backend, ros))
        return checks
    finally:
        ros.close(timeout=1.0)


def _joints_check(config: LineConfig, cell: str, backend: RosBackend, ros: roslibpy.Ros) -> Check:
    robot = config.cells[cell].robot
    desc = describe_from_config(robot, config.robots[robot])
    names = RosNames.from_config(robot, backend.cfg, desc.io_names)
    wanted = [backend.cfg.joints.get(j, j) for j in desc.joint_names]
    published = _joint_names(ros, names.joint_states)
    if published is None:
        verdict = f"missing: no message on {names.joint_states} within {TIMEOUT_S:.0f}s"
    elif missing := [j for j in wanted if j not in published]:
        verdict = (f"wrong joints: {', '.join(missing)} not published (the bridge has {', '.join(published)}); "
                   f"map the URDF's joints with driver.ros.joints")
    else:
        verdict = "found"
    return Check("joint names", ", ".join(wanted), "the URDF's joints", verdict)


@dataclass(frozen=True)
class TcpReading:
    """Where the robot's TCP is now: forward kinematics of the bridge's joint state with the
    config's URDF and ``tcp.offset`` (what the cell itself will compute)."""

    joints: tuple[float, ...]
    tcp: tuple[float, float, float]
    part_height: float

    def against(self, config: LineConfig) -> list[str]:
        """A line per station: its configured top, the part's top on it, and the TCP from there."""
        lines = [f"{'station':<14} {'configured top (m)':<28} {'part top z':>10}   TCP from the part's top (cm)"]
        for name, station in config.stations.items():
            x, y, z = station.position
            top = z + self.part_height
            d = (self.tcp[0] - x, self.tcp[1] - y, self.tcp[2] - top)
            lines.append(f"{name:<14} {_xyz(station.position):<28} {top:>10.3f}   "
                         f"x {d[0] * 100:+.1f}, y {d[1] * 100:+.1f}, z {d[2] * 100:+.1f}")
        return lines

    def teach(self, station: str) -> str:
        """The YAML for ``station``'s position under the TCP, the tool touching the top of a part
        resting on it (jogged there on the real robot, as it would grip it)."""
        x, y, z = self.tcp
        return (f"# the tool touches the top of a part on {station} (part height {self.part_height:.3f} m):\n"
                f"stations:\n  {station}:\n    position: [{x:.4f}, {y:.4f}, {z - self.part_height - TEACH_GAP:.4f}]")


def _xyz(v) -> str:
    return "[" + ", ".join(f"{c:.3f}" for c in v) + "]"


def read_tcp(config: LineConfig, cell: str, backend: RosBackend) -> TcpReading:
    """The TCP now (ProbeError when the bridge does not serve the joint states)."""
    from cellctl.devices.robot_backend import ros_driver
    from cellctl.drivers.errors import DriverError

    robot = config.cells[cell].robot
    driver = ros_driver(backend, robot, config)
    try:
        driver.connect()
        joints = tuple(driver.joint_state().positions)
        tcp = driver.kinematics.fk(joints).position
    except DriverError as exc:
        raise ProbeError(f"{backend.url}: cannot read robot {robot}'s joint states: {exc}") from None
    finally:
        driver.close()
    height = max((t.size[2] for t in config.part_types.values()), default=0.0)
    return TcpReading(joints, tuple(tcp), height)
