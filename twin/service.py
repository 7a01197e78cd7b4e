"""The twin's request handlers: one method per op, each taking validated args and returning a
result, or raising :class:`OpError` with a protocol error code. No sockets here (the server owns
them), so handlers are tested and reused without a network."""

from __future__ import annotations

import itertools
import uuid
from collections import Counter, deque
from collections.abc import Callable

import numpy as np
from pydantic import ValidationError

from cellctl.drivers.envelope import check_trajectory
from cellctl.drivers.errors import DriverError
from cellctl.drivers.kinematics import Kinematics
from cellctl.drivers.machine import MachineError
from cellctl.drivers.planning import joint_motion, kinematics_for, pose_motion
from cellctl.drivers.types import MotionStatus, Pose, Trajectory
from cellctl.drivers import twin_wire as P
from cellctl.twin.checkpoint import WorldState
from cellctl.twin.config import SceneConfig
from cellctl.twin.lockstep import Lockstep, LockstepError, UnknownParticipant
from cellctl.twin.robot import SimRobot
from cellctl.twin.world import World

START_TOLERANCE = 0.05  # rad: a trajectory must start where the robot is
REQUEST_LOG = 10_000
RESTORE_BARRIER_S = 15.0  # wall s a restored lockstep world waits for its expected participants


class OpError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class TwinService:
    def __init__(self, config: SceneConfig, pub_endpoint: str = "") -> None:
        self.config = config
        self.pub_endpoint = pub_endpoint
        self.world = World(config)
        self._kin: dict[str, Kinematics] = {}
        self.shutdown_requested = False
        self.extra_replies: list[tuple[list[bytes], dict]] = []  # replies to earlier requests (a replaced advance)
        self._log: deque[dict] = deque(maxlen=REQUEST_LOG)
        self._log_seq = itertools.count(1)
        self.op_counts: Counter[str] = Counter()  # requests served by op (the server's exit line: a cost model's)
        self._handlers: dict[str, Callable] = {op: getattr(self, f"op_{op}") for op in P.OPS}
        twin = config.twin
        self.lockstep = Lockstep(twin.physics_hz, twin.period_steps, twin.silence_timeout, twin.expect,
                                 P.MAX_HORIZON_S) if twin.mode == "lockstep" else None
        self._hellos: dict[str, int] = {}
        self.instance = uuid.uuid4().hex  # tells clients when the world behind an endpoint was restarted
        self._envelope: list[bytes] = []
        self._req_id: object = None

    def restore(self, state: WorldState, at_steps: int) -> None:
        """Start from a checkpoint (a restarted twin): time waits a little for the expected
        participants to register again (they notice the restart within a few seconds)."""
        self.world.restore(state, at_steps)
        if self.lockstep is not None:
            self.lockstep.restart_barrier(self.config.twin.expect, RESTORE_BARRIER_S)

    def close(self) -> None:
        for kin in self._kin.values():
            kin.close()
        self.world.close()

    # -- dispatch ----------------------------------------------------------------------------
    def handle(self, envelope: list[bytes], frame: bytes) -> dict | None:
        """Decode, validate and run one request; returns the reply (None when it is deferred, as
        a lockstep grant is), never raises."""
        client = envelope[0].hex()[:64] if envelope else ""
        try:
            req_id, op, args = P.decode_request(frame)
        except P.BadFrame as exc:
            return P.error(exc.req_id, P.BAD_FRAME, str(exc))
        if op not in self._handlers:
            return P.error(req_id, P.UNKNOWN_OP, f"unknown op {op[:P.MAX_NAME]!r}; known ops: {', '.join(P.OPS)}")
        try:
            parsed = P.OPS[op].model_validate(args)
        except ValidationError as exc:
            errors = exc.errors()
            listed = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'args'}: {e['msg']}" for e in errors[:5])
            more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
            return P.error(req_id, P.BAD_ARGS, f"{op}: {listed}{more}")
        self.op_counts[op] += 1
        # the fields from the model's __dict__: getattr of a field an op lacks costs pydantic an exception (~2 µs)
        self._log.append({"seq": next(self._log_seq), "time": self.world.time, "client": client, "op": op,
                          "robot": parsed.__dict__.get("robot"), "name": parsed.client if op == "hello" else None})
        self._envelope, self._req_id = envelope, req_id
        try:
            result = self._handlers[op](parsed)
            return None if result is P.DEFERRED else P.ok(req_id, result)
        except OpError as exc:
            return P.error(req_id, exc.code, str(exc))
        except UnknownParticipant as exc:
            return P.error(req_id, P.UNKNOWN_PARTICIPANT, str(exc))
        except LockstepError as exc:
            return P.error(req_id, P.BAD_ARGS, str(exc))
        except DriverError as exc:
            return P.error(req_id, exc.code, str(exc))
        except Exception as exc:  # a bug must not take the line down: report it and keep serving
            return P.error(req_id, P.INTERNAL, f"{type(exc).__name__}: {exc}")

    # -- lookups -----------------------------------------------------------------------------
    def _robot(self, name: str) -> SimRobot:
        try:
            return self.world.robots[name]
        except KeyError:
            raise OpError(P.UNKNOWN_ROBOT, f"unknown robot {name!r}; robots: {sorted(self.world.robots)}") from None

    def _kinematics(self, robot: SimRobot) -> Kinematics:
        if robot.name not in self._kin:
            self._kin[robot.name] = kinematics_for(robot.description)
        return self._kin[robot.name]

    def _motion(self, motion_id: int):
        try:
            return self.world.motions[motion_id]
        except KeyError:
            raise OpError(P.UNKNOWN_MOTION, f"unknown motion {motion_id}") from None

    # -- ops ---------------------------------------------------------------------------------
    def op_hello(self, a: P.Hello) -> dict:
        if a.version != P.VERSION:
            raise OpError(P.VERSION_MISMATCH, f"this twin speaks protocol version {P.VERSION}, not {a.version}")
        name = a.client if a.client in self._hellos or len(self._hellos) < P.MAX_CLIENT_NAMES else "(others)"
        self._hellos[name] = self._hellos.get(name, 0) + 1
        return {"version": P.VERSION, "server": "cellctl-twin", "mode": self.config.twin.mode,
                "robots": sorted(self.world.robots), "time": self.world.time, "pub": self.pub_endpoint,
                "physics_hz": self.config.twin.physics_hz, "instance": self.instance}

    def op_describe(self, a: P.RobotArg) -> dict:
        return self._robot(a.robot).description.to_wire()

    def op_joint_state(self, a: P.RobotArg) -> dict:
        js = self._robot(a.robot).joint_state(self.world.time)
        return {"names": js.names, "positions": js.positions, "velocities": js.velocities, "stamp": js.stamp}

    def _start(self, robot: SimRobot, traj: Trajectory) -> dict:
        if robot.moving:
            raise OpError(P.BUSY, f"robot {robot.name} is executing motion {robot.motion.id}; cancel it first")
        motion = self.world.new_motion(robot.name, "trajectory")
        robot.start(traj, motion, self.world.time)
        return {"motion": motion.id, "duration": traj.duration}

    def op_execute(self, a: P.Execute) -> dict:
        robot = self._robot(a.robot)
        traj = Trajectory.from_wire(a.trajectory.model_dump())
        check_trajectory(robot.description, traj, self._kinematics(robot).tcp_positions)
        gap = float(np.max(np.abs(traj.positions[0] - robot.positions())))
        if gap > START_TOLERANCE:
            raise OpError(P.LIMIT_VIOLATION, f"trajectory starts {gap:.3f} rad from the robot's position "
                                             f"(at most {START_TOLERANCE} allowed)")
        return self._start(robot, traj)

    def op_move_joints(self, a: P.MoveJoints) -> dict:
        robot = self._robot(a.robot)
        return self._start(robot, joint_motion(robot.description, self._kinematics(robot), robot.positions(),
                                               a.waypoints, a.speed))

    def op_move_pose(self, a: P.MovePose) -> dict:
        robot = self._robot(a.robot)
        poses = [Pose(tuple(p.position), tuple(p.orientation), p.frame) for p in a.poses]
        return self._start(robot, pose_motion(robot.description, self._kinematics(robot), robot.positions(),
                                              poses, a.speed))

    def op_motion_status(self, a: P.MotionArg) -> dict:
        return self._motion(a.motion).to_wire()

    def op_cancel(self, a: P.MotionArg) -> dict:
        motion = self._motion(a.motion)
        robot = self.world.robots[motion.robot]
        if motion.status is MotionStatus.RUNNING and motion.kind == "trajectory":
            self.world.finish(robot.halt(MotionStatus.CANCELLED, "cancelled by request", self.world.time))
        return motion.to_wire()

    def op_stop(self, a: P.RobotArg) -> dict:
        robot = self._robot(a.robot)
        motion = robot.halt(MotionStatus.CANCELLED, "stopped", self.world.time)
        self.world.finish(motion)
        return {"cancelled": motion.id if motion else None}

    def op_gripper(self, a: P.Gripper) -> dict:
        return {"motion": self.world.gripper_motion(self._robot(a.robot), a.command).id}

    def op_gripper_state(self, a: P.RobotArg) -> dict:
        g = self._robot(a.robot).gripper.snapshot()
        return {"state": g.state, "part_present": g.part_present, "part_id": g.part_id}

    def _io_name(self, robot: SimRobot, name: str) -> str:
        if name not in robot.io:
            raise OpError(P.UNSUPPORTED, f"robot {robot.name} has no IO named {name!r}; configured: {sorted(robot.io)}")
        return name

    def op_read_io(self, a: P.ReadIo) -> bool:
        robot = self._robot(a.robot)
        name = self._io_name(robot, a.name)
        station = self.world.sensor_inputs.get((robot.name, name))
        return self.world.occupied(station) if station is not None else robot.io[name]

    def op_write_io(self, a: P.WriteIo) -> bool:
        robot = self._robot(a.robot)
        name = self._io_name(robot, a.name)
        if (station := self.world.sensor_inputs.get((robot.name, name))) is not None:
            raise OpError(P.CONFLICT, f"IO {name!r} of robot {robot.name} is an input wired to station {station}'s "
                                      f"presence sensor: the world sets it, a write cannot")
        robot.io[name] = a.value
        return a.value

    def op_spawn_part(self, a: P.SpawnPart) -> dict:
        world = self.world
        if a.id in world.parts.by_id:
            raise OpError(P.CONFLICT, f"part {a.id!r} exists already")
        if len(world.parts.by_id) >= P.MAX_PARTS:
            raise OpError(P.CONFLICT, f"the world holds {P.MAX_PARTS} parts already (the most it takes)")
        if a.type not in self.config.part_types:
            raise OpError(P.BAD_ARGS, f"unknown part type {a.type!r}; types: {sorted(self.config.part_types)}")
        if (a.station is None) == (a.position is None):
            raise OpError(P.BAD_ARGS, "spawn_part needs exactly one of station or position")
        if a.station is not None and a.station not in self.config.stations:
            raise OpError(P.UNKNOWN_STATION, f"unknown station {a.station!r}; stations: {sorted(self.config.stations)}")
        at = self.config.stations[a.station].position if a.station else tuple(a.position)
        if (blocker := world.parts.overlapping(a.type, at)) is not None:
            raise OpError(P.CONFLICT, f"part {blocker!r} takes that space already")
        world.parts.spawn(a.id, a.type, at)
        world.events.append(world.feeds.record("spawned", a.id, a.station or "", world.time))
        return self._part(a.id)

    def op_remove_part(self, a: P.RemovePart) -> dict:
        world = self.world
        part = world.parts.by_id.get(a.id)
        if part is None:
            raise OpError(P.UNKNOWN_PART, f"unknown part {a.id!r}")
        if a.consumed_at is not None and not getattr(self.config.stations.get(a.consumed_at), "sink", False):
            raise OpError(P.UNKNOWN_STATION, f"consumed_at: {a.consumed_at!r} is not a sink station; sinks: "
                                             f"{sorted(n for n, s in self.config.stations.items() if s.sink)}")
        for robot in world.robots.values():
            if robot.gripper.held is part:
                robot.gripper.release()
        world.parts.remove(a.id)
        if a.consumed_at is None:
            world.events.append(world.feeds.record("removed", a.id, "", world.time))
        else:
            world.events.append(world.feeds.record("consumed", a.id, a.consumed_at, world.time))
        return {"removed": a.id}

    def _part(self, part_id: str) -> dict:
        part = self.world.parts.by_id[part_id]
        pos, orn = self.world.parts.pose(part_id)
        held_by = next((r.name for r in self.world.robots.values() if r.gripper.held is part), None)
        bottom = self.world.parts.bottom_centre(part)
        return {"id": part_id, "type": part.type, "position": list(pos), "orientation": list(orn),
                "bottom": list(bottom), "held_by": held_by}

    def op_list_parts(self, a: P.Nothing) -> list[dict]:
        return [self._part(pid) for pid in sorted(self.world.parts.by_id)]

    def op_faults(self, a: P.Since) -> list[dict]:
        return [f for f in self.world.faults if f["seq"] > a.since]

    def op_inject_fault(self, a: P.InjectFault) -> dict:
        self._robot(a.robot)
        return self.world.inject_fault(a.robot, a.reason)

    # -- machines ---------------------------------------------------------------------------------
    def _machine(self, name: str) -> None:
        if name not in self.world.machines.by_name:
            raise OpError(P.UNKNOWN_MACHINE, f"unknown machine {name!r}; machines: {sorted(self.world.machines.by_name)}")

    def _machine_op(self, name: str, act: Callable[[], object]) -> object:
        self._machine(name)
        try:
            result = act()
        except MachineError as exc:
            raise OpError(P.MACHINE_REFUSED, str(exc)) from None
        if isinstance(result, dict) and result.get("topic") == "machines":
            self.world.events.append(result)
        return self.world.machines.get(name).state(self.world.time)

    def op_machine_describe(self, a: P.MachineArg) -> dict:
        self._machine(a.machine)
        return self.world.machines.get(a.machine).describe()

    def op_machine_state(self, a: P.MachineArg) -> dict:
        self._machine(a.machine)
        return self.world.machines.get(a.machine).state(self.world.time)

    def op_machine_start(self, a: P.MachineStart) -> dict:
        return self._machine_op(a.machine, lambda: self.world.machines.start(a.machine, a.job, self.world.time))

    def op_machine_stop(self, a: P.MachineArg) -> dict:
        return self._machine_op(a.machine, lambda: self.world.machines.stop(a.machine, self.world.time))

    def op_machine_clear(self, a: P.MachineArg) -> dict:
        return self._machine_op(a.machine, lambda: self.world.machines.clear(a.machine, self.world.time))

    def op_machine_door(self, a: P.MachineDoor) -> dict:
        return self._machine_op(a.machine, lambda: self.world.machines.set_door(a.machine, a.open))

    def op_machine_fault(self, a: P.MachineFault) -> dict:
        return self._machine_op(a.machine, lambda: self.world.machines.fault(a.machine, a.fault, a.reason,
                                                                              self.world.time))

    def op_part_log(self, a: P.Since) -> list[dict]:
        return [e for e in self.world.feeds.log if e["seq"] > a.since]

    def op_request_log(self, a: P.Since) -> list[dict]:
        return [r for r in self._log if r["seq"] > a.since]

    def op_clients(self, a: P.Nothing) -> dict[str, int]:
        """Every client name that said hello, with how often: who reached the twin's API."""
        return dict(self._hellos)

    def op_time(self, a: P.Nothing) -> dict:
        return {"time": self.world.time, "steps": self.world.steps, "mode": self.config.twin.mode}

    def op_reset(self, a: P.Nothing) -> dict:
        """Rebuild the world from the config: robots home, parts where configured, time zero."""
        if self.lockstep is not None and self.lockstep.participants:
            raise OpError(P.BUSY, f"cannot reset while lockstep participants are registered: "
                                  f"{sorted(self.lockstep.participants)}")
        self.world.close()
        self.world = World(self.config)
        return {"time": self.world.time}

    def op_shutdown(self, a: P.Nothing) -> dict:
        self.shutdown_requested = True
        return {"shutting_down": True}

    # -- lockstep ----------------------------------------------------------------------------
    def _coordinator(self) -> Lockstep:
        if self.lockstep is None:
            raise OpError(P.UNSUPPORTED, "lockstep ops need a twin running with twin.mode: lockstep")
        return self.lockstep

    def op_register(self, a: P.Register) -> dict:
        lockstep = self._coordinator()
        for robot in a.robots:
            self._robot(robot)
        for station in a.stations:
            if station not in self.config.stations:
                raise OpError(P.UNKNOWN_STATION, f"unknown station {station!r}; stations: {sorted(self.config.stations)}")
        lockstep.register(a.name, a.robots, a.stations)
        self.world.events.append({"topic": "participants", "event": "registered", "name": a.name,
                                  "time": self.world.time})
        return {"time": self.world.time, "steps": self.world.steps, "period_steps": lockstep.period,
                "dt": self.world.dt}

    def op_deregister(self, a: P.Deregister) -> dict:
        gone = self._coordinator().deregister(a.name)
        if gone.pending is not None:  # its advance waits for a grant that will not come: answered now
            envelope, req_id, _ = gone.pending
            self.extra_replies.append((envelope, P.error(req_id, P.UNKNOWN_PARTICIPANT,
                                                         f"{a.name!r} was deregistered while this advance waited")))
        self.world.events.append({"topic": "participants", "event": "deregistered", "name": a.name,
                                  "reason": "by request", "time": self.world.time})
        return {"time": self.world.time}

    def op_advance(self, a: P.Advance) -> object:
        replaced = self._coordinator().acknowledge(a.name, self._envelope, self._req_id, a.until, a.sent,
                                                   self.world.steps)
        if replaced is not None:
            envelope, req_id = replaced
            self.extra_replies.append((envelope, P.error(req_id, P.SUPERSEDED,
                                                         f"advance of {a.name!r} replaced by a later one "
                                                         f"(id {self._req_id!r}): the grant answers that one")))
        return P.DEFERRED
