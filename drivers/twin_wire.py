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
from pydantic import BaseModel, ConfigDict, Field

VERSION = 1

# The one stdout line a server prints once it serves (a parent process waits for it).
TWIN_READY = "CELLCTL-TWIN-READY "
ROSBRIDGE_READY = "CELLCTL-ROSBRIDGE-READY "

# Error codes (reply.error.code). Driver errors share the first five with drivers.errors.
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
BUSY = "busy"  # the robot is already executing a motion
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


def ok(req_id: object, result: object) -> dict:
    return {"id": req_id, "ok": True, "result": result}


def error(req_id: object, code: str, message: str) -> dict:
    return {"id": req_id, "ok": False, "error": {"code": code, "message": message}}


# msgpack has no tuples: fixed-size vectors are lists with a fixed length.
Vec3 = Annotated[list[float], Field(min_length=3, max_length=3)]
Quat = Annotated[list[float], Field(min_length=4, max_length=4)]


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Hello(Args):
    version: int
    client: str = ""


class Nothing(Args):
    pass


class RobotArg(Args):
    robot: str


class TrajectoryArgs(Args):
    joint_names: list[str]
    times: list[float] = Field(min_length=1)
    positions: list[list[float]] = Field(min_length=1)
    velocities: list[list[float]] | None = None


class Execute(Args):
    robot: str
    trajectory: TrajectoryArgs


class MoveJoints(Args):
    robot: str
    waypoints: list[list[float]] = Field(min_length=1)
    speed: float = Field(1.0, gt=0, le=1)


class PoseArgs(Args):
    position: Vec3
    orientation: Quat = [0.0, 0.0, 0.0, 1.0]
    frame: Literal["world", "base"] = "world"


class MovePose(Args):
    robot: str
    poses: list[PoseArgs] = Field(min_length=1)
    speed: float = Field(1.0, gt=0, le=1)


class MotionArg(Args):
    motion: int


class Gripper(Args):
    robot: str
    command: Literal["open", "close"]


class ReadIo(Args):
    robot: str
    name: str


class WriteIo(Args):
    robot: str
    name: str
    value: bool


class SpawnPart(Args):
    id: str
    type: str = "box"
    station: str | None = None
    position: Vec3 | None = None


class PartArg(Args):
    id: str


class Since(Args):
    since: int = Field(0, ge=0)


class InjectFault(Args):
    robot: str
    reason: str = "injected"


class Register(Args):
    name: str = Field(min_length=1)
    robots: list[str] = Field(default_factory=list, description="wake this participant on these robots' events")
    stations: list[str] = Field(default_factory=list, description="... and on part events at these stations")


class Deregister(Args):
    name: str


class Advance(Args):
    name: str
    until: float | None = Field(None, description="sim time to be woken by at the latest; None = one period")
    sent: dict[str, int] = Field(default_factory=dict, description="messages sent to each peer this period")


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
    "remove_part": PartArg,
    "list_parts": Nothing,
    "faults": Since,
    "request_log": Since,
    "time": Nothing,
    "reset": Nothing,
    "shutdown": Nothing,
    "inject_fault": InjectFault,
    "part_log": Since,
    "register": Register,
    "deregister": Deregister,
    "advance": Advance,
}
DEFERRED = object()  # a handler's result meaning "the reply comes later" (lockstep grants)
