"""The twin's wire protocol: one definition shared by the twin server (``twin/``) and its clients
(``drivers/twin_client.py``). It lives in ``drivers/`` because it is the contract between the two
sides, and the dependency arrow points from ``twin/`` to ``drivers/``, never back.

Pure data and encoding: no sockets, no pybullet. Frames are msgpack maps.

    request  {"id": int|str, "op": str, "args": {...}}
    reply    {"id": ..., "ok": true,  "result": ...}
             {"id": ..., "ok": false, "error": {"code": str, "message": str}}
    stream   PUB multipart [topic: bytes, msgpack payload]

``docs/twin-protocol.md`` documents every op; the argument models below are the source of
truth it is written from.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgpack
from pydantic import BaseModel, ConfigDict, Field, model_validator
from cellctl.drivers.machine import MachineFaultKind

VERSION = 1

# The one stdout line a server prints once it serves (a parent process waits for it).
TWIN_READY = "CELLCTL-TWIN-READY "
ROSBRIDGE_READY = "CELLCTL-ROSBRIDGE-READY "

# Error codes (reply.error.code). Driver errors share the first five with cellctl.drivers.errors.
LIMIT_VIOLATION = "limit_violation"
UNREACHABLE = "unreachable"
UNSUPPORTED = "unsupported"
TIMEOUT = "timeout"
BAD_FRAME = "bad_frame"  # not msgpack, or not a map with id/op
UNKNOWN_OP = "unknown_op"
BAD_ARGS = "bad_args"  # args missing, mistyped or unknown
VERSION_MISMATCH = "version"
UNKNOWN_ROBOT = "unknown_robot"
UNKNOWN_PART = "unknown_part"
UNKNOWN_STATION = "unknown_station"
UNKNOWN_MOTION = "unknown_motion"
UNKNOWN_MACHINE = "unknown_machine"
MACHINE_REFUSED = "machine_refused"  # a machine cannot do it now (busy, its door open, nothing in it, offline)
UNKNOWN_PARTICIPANT = "unknown_participant"  # lockstep: not registered (never, or dropped as silent)
BUSY = "busy"  # the robot is already executing a motion; reset while lockstep participants are registered
SUPERSEDED = "superseded"  # lockstep: an advance replaced by a later advance of the same participant
CONFLICT = "conflict"  # e.g. spawning a part id that exists
INTERNAL = "internal"  # a bug in the server; the server keeps serving

# PUB topics
TOPIC_JOINTS = b"joint_states"
TOPIC_PARTS = b"parts"
TOPIC_FAULTS = b"faults"
TOPIC_MOTIONS = b"motions"
TOPIC_CLOCK = b"clock"
TOPIC_PARTICIPANTS = b"participants"


def pack(obj: object) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def unpack(frame: bytes) -> object:
    return msgpack.unpackb(frame, raw=False, strict_map_key=False)


class BadFrame(ValueError):
    """A frame that is not a request: the reply is ``error(req_id, BAD_FRAME, str(exc))``."""

    def __init__(self, req_id: int | str | None, message: str) -> None:
        super().__init__(message)
        self.req_id = req_id


def decode_request(frame: bytes) -> tuple[int | str, str, object]:
    """``(id, op, args)`` of a request frame, or BadFrame with the id where it could be read. The
    same envelope rules for every server that speaks these frames (the twin, a cell's control)."""
    if len(frame) > MAX_FRAME_BYTES:
        raise BadFrame(None, f"frame of {len(frame)} bytes: at most {MAX_FRAME_BYTES} allowed")
    try:
        request = unpack(frame)
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise BadFrame(None, f"not a msgpack frame: {type(exc).__name__}") from None
    if not isinstance(request, dict):
        raise BadFrame(None, "a request is a map with keys id, op and args")
    req_id = request.get("id")
    if not (isinstance(req_id, str) and len(req_id) <= MAX_NAME or type(req_id) is int):
        req_id = None  # an id that cannot be echoed safely is not echoed
    op = request.get("op")
    if req_id is None or not isinstance(op, str):
        raise BadFrame(req_id, f"a request is a map with keys id (int, or str of at most {MAX_NAME} "
                               f"characters), op (str) and args")
    args = request.get("args")
    return req_id, op, {} if args is None else args


def ok(req_id: object, result: object) -> dict:
    return {"id": req_id, "ok": True, "result": result}


def error(req_id: object, code: str, message: str) -> dict:
    return {"id": req_id, "ok": False, "error": {"code": code, "message": message}}


# -- bounds: what any one request may ask for (docs/twin-protocol.md, "Limits") ------------------
MAX_FRAME_BYTES = 1 << 20  # a request frame above this gets bad_frame without being decoded
HARD_FRAME_BYTES = 16 << 20  # ZeroMQ drops a connection that sends a bigger message (MAXMSGSIZE)
MAX_NAME = 128  # characters in any name, id or client string
MAX_TEXT = 1024  # characters in a free text (a fault reason)
MAX_JOINTS = 32
MAX_WAYPOINTS = 100  # via-points of move_joints / move_pose
MAX_SAMPLES = 20_000  # samples of an execute trajectory
MAX_TRAJECTORY_S = 600.0  # s of sim time one trajectory may last
MAX_COORDINATE = 1000.0  # m: |x|, |y|, |z| of any position in a request
MAX_JOINT_VALUE = 1000.0  # rad or rad/s: |value| of any joint position or velocity (limits are checked after)
MAX_HORIZON_S = 3600.0  # s of sim time an advance may ask to sleep past the current time
MAX_PEERS = 64  # entries in an advance's message counts
MAX_CLIENT_NAMES = 1000  # distinct hello names the twin remembers (``clients``); more count as "(others)"
MAX_PARTS = 200  # parts in the world at once (spawn_part beyond it, or into another part: conflict)
MAX_COUNT = 1_000_000  # message count per peer and period; ``since`` cursors are unbounded ints

Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME)]
Coordinate = Annotated[float, Field(ge=-MAX_COORDINATE, le=MAX_COORDINATE)]
JointValue = Annotated[float, Field(ge=-MAX_JOINT_VALUE, le=MAX_JOINT_VALUE)]
# msgpack has no tuples: fixed-size vectors are lists with a fixed length.
Vec3 = Annotated[list[Coordinate], Field(min_length=3, max_length=3)]
Quat = Annotated[list[Annotated[float, Field(ge=-1.0, le=1.0)]], Field(min_length=4, max_length=4)]
JointRow = Annotated[list[JointValue], Field(min_length=1, max_length=MAX_JOINTS)]


class Args(BaseModel):
    """Strict (a string is not a number), closed (unknown keys are errors) and finite (NaN and
    infinities are refused): every request is validated whole before any work."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class Hello(Args):
    version: int
    client: str = Field("", max_length=MAX_NAME)


class Nothing(Args):
    pass


class RobotArg(Args):
    robot: Name


class TrajectoryArgs(Args):
    joint_names: list[Name] = Field(min_length=1, max_length=MAX_JOINTS)
    times: list[Annotated[float, Field(ge=0, le=MAX_TRAJECTORY_S)]] = Field(min_length=1, max_length=MAX_SAMPLES)
    positions: list[JointRow] = Field(min_length=1, max_length=MAX_SAMPLES)
    velocities: list[JointRow] | None = Field(None, max_length=MAX_SAMPLES)

    @model_validator(mode="after")
    def _rectangular(self) -> TrajectoryArgs:
        n, dof = len(self.times), len(self.joint_names)
        for key in ("positions", "velocities"):
            rows = getattr(self, key)
            if rows is None:
                continue
            if len(rows) != n:
                raise ValueError(f"{key}: one row per time ({n}), found {len(rows)}")
            if any(len(row) != dof for row in rows):
                raise ValueError(f"{key}: every row needs {dof} values (one per joint name)")
        return self


class Execute(Args):
    robot: Name
    trajectory: TrajectoryArgs


class MoveJoints(Args):
    robot: Name
    waypoints: list[JointRow] = Field(min_length=1, max_length=MAX_WAYPOINTS)
    speed: float = Field(1.0, gt=0, le=1)


class PoseArgs(Args):
    position: Vec3
    orientation: Quat = [0.0, 0.0, 0.0, 1.0]
    frame: Literal["world", "base"] = "world"

    @model_validator(mode="after")
    def _unit(self) -> PoseArgs:
        if sum(q * q for q in self.orientation) < 0.5:
            raise ValueError("orientation: a unit quaternion [x, y, z, w] is needed")
        return self


class MovePose(Args):
    robot: Name
    poses: list[PoseArgs] = Field(min_length=1, max_length=MAX_WAYPOINTS)
    speed: float = Field(1.0, gt=0, le=1)


class MotionArg(Args):
    motion: int


class Gripper(Args):
    robot: Name
    command: Literal["open", "close"]


class ReadIo(Args):
    robot: Name
    name: Name


class WriteIo(Args):
    robot: Name
    name: Name
    value: bool


class SpawnPart(Args):
    id: Name
    type: Name = "box"
    station: Name | None = None
    position: Vec3 | None = None


class RemovePart(Args):
    id: Name
    consumed_at: Name | None = None  # a sink station: log it as consumed there (a part already delivered)


class Since(Args):
    since: int = Field(0, ge=0)


class InjectFault(Args):
    robot: Name
    reason: str = Field("injected", max_length=MAX_TEXT)


class Register(Args):
    name: Name
    robots: list[Name] = Field(default_factory=list, max_length=MAX_PEERS,
                               description="wake this participant on these robots' events")
    stations: list[Name] = Field(default_factory=list, max_length=MAX_PEERS,
                                 description="... and on part events at these stations")


class Deregister(Args):
    name: Name


class Advance(Args):
    name: Name
    until: float | None = Field(None, ge=0, description="sim time to be woken by at the latest (at most "
                                                        f"{MAX_HORIZON_S:.0f} s ahead); None = one period")
    sent: dict[Name, Annotated[int, Field(ge=0, le=MAX_COUNT)]] = Field(
        default_factory=dict, max_length=MAX_PEERS, description="messages sent to each peer this period")


class MachineArg(Args):
    machine: Name


class MachineStart(Args):
    machine: Name
    job: Name = Field(description="the job's name: the part's id")


class MachineDoor(Args):
    machine: Name
    open: bool


class MachineFault(Args):
    """A scenario's fault on a twin machine."""

    machine: Name
    fault: MachineFaultKind
    reason: str = Field("", max_length=MAX_TEXT)


OPS: dict[str, type[Args]] = {
    "hello": Hello,
    "describe": RobotArg,
    "joint_state": RobotArg,
    "execute": Execute,
    "move_joints": MoveJoints,
    "move_pose": MovePose,
    "motion_status": MotionArg,
    "cancel": MotionArg,
    "stop": RobotArg,
    "gripper": Gripper,
    "gripper_state": RobotArg,
    "read_io": ReadIo,
    "write_io": WriteIo,
    "spawn_part": SpawnPart,
    "remove_part": RemovePart,
    "list_parts": Nothing,
    "faults": Since,
    "request_log": Since,
    "time": Nothing,
    "clients": Nothing,
    "reset": Nothing,
    "shutdown": Nothing,
    "inject_fault": InjectFault,
    "part_log": Since,
    "register": Register,
    "deregister": Deregister,
    "advance": Advance,
    "machine_describe": MachineArg,
    "machine_state": MachineArg,
    "machine_start": MachineStart,
    "machine_stop": MachineArg,
    "machine_clear": MachineArg,
    "machine_door": MachineDoor,
    "machine_fault": MachineFault,
}
DEFERRED = object()  # a handler's result meaning "the reply comes later" (lockstep grants)
