"""The twin's PyBullet world: robots, stations and parts built from a scene config, stepped at a
fixed rate. It only simulates and records what happened (motions ending, parts attached,
contact faults) as events; the server decides what to publish."""

from __future__ import annotations

import itertools
from collections import deque

from cellctl.drivers.bullet import pb
import pybullet_data

from cellctl.drivers.types import MotionStatus
from cellctl.twin.checkpoint import MOTION_ID_GAP, SavedPart, WorldState
from cellctl.twin.config import SceneConfig, StationConfig
from cellctl.twin.feeds import Feeds
from cellctl.twin.machines import Machines
from cellctl.twin.parts import Parts
from cellctl.twin.robot import SimMotion, SimRobot
from cellctl.twin.simtime import time_at

STATION_COLOR = (0.55, 0.55, 0.6, 1.0)
FAULT_LOG = 10_000


class World:
    def __init__(self, config: SceneConfig) -> None:
        self.config = config
        self.dt = 1.0 / config.twin.physics_hz
        self.client = pb.connect(pb.DIRECT)
        pb.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=self.client)
        pb.setGravity(0, 0, -9.81, physicsClientId=self.client)
        pb.setTimeStep(self.dt, physicsClientId=self.client)
        pb.setPhysicsEngineParameter(deterministicOverlappingPairs=1, physicsClientId=self.client)
        self.plane = pb.loadURDF("plane.urdf", physicsClientId=self.client)
        self.parts = Parts(self.client, config.part_types)
        self.stations = {name: self._station(s) for name, s in config.stations.items()}
        self.robots = {name: SimRobot(self.client, name, r, config.twin, self.parts) for name, r in config.robots.items()}
        self._robot_bodies = {r.body: r for r in self.robots.values()}
        self._station_bodies = {b: n for n, b in self.stations.items()}
        # (robot, input) -> the station whose presence switch is wired to it (config ``sensor: {io}``)
        self.sensor_inputs = {(robot, io): name for name, s in config.stations.items()
                              if s.sensor is not None and s.sensor.io for robot, io in s.sensor.io.items()}
        for part in config.parts:
            self.parts.spawn(part.id, part.type, config.stations[part.station].position)
        self.feeds = Feeds(config, self.parts, self.client)
        self.machines = Machines(config.machines, config.stations, self.parts, self.feeds.record, self.occupant)
        self.steps = 0
        self.time = 0.0
        self.motions: dict[int, SimMotion] = {}
        self._motion_ids = itertools.count(1)
        self.events: list[dict] = []  # drained by the server after each step
        self.faults: deque[dict] = deque(maxlen=FAULT_LOG)
        self._fault_seq = 0
        self._contacts: set[tuple] = set()

    def close(self) -> None:
        self.machines.close()
        if self.client >= 0:
            pb.disconnect(self.client)
            self.client = -1

    def _station(self, s: StationConfig) -> int:
        x, y, z = s.position
        half = (s.size[0] / 2, s.size[1] / 2, z / 2)
        col = pb.createCollisionShape(pb.GEOM_BOX, halfExtents=half, physicsClientId=self.client)
        vis = pb.createVisualShape(pb.GEOM_BOX, halfExtents=half, rgbaColor=STATION_COLOR, physicsClientId=self.client)
        return pb.createMultiBody(0, col, vis, basePosition=(x, y, z / 2), physicsClientId=self.client)

    def occupied(self, station: str) -> bool:
        """What a presence switch on the station reads: a part rests on it (one in a gripper does not)."""
        return self.occupant(self.config.stations[station]) is not None

    def occupant(self, s: StationConfig) -> str | None:
        """The part resting on station ``s`` (not one in a gripper), if any."""
        held = self.held_parts()
        return next((pid for pid, p in self.parts.by_id.items() if pid not in held and s.holds(self.parts.bottom_centre(p))),
                    None)

    # -- checkpoints ---------------------------------------------------------------------------
    def snapshot(self) -> WorldState:
        holders = {r.gripper.held.id: r.name for r in self.robots.values() if r.gripper.held is not None}
        parts = []
        for part_id, part in sorted(self.parts.by_id.items()):
            pos, orn = self.parts.pose(part_id)
            parts.append(SavedPart(part_id, part.type, tuple(pos), tuple(orn), holders.get(part_id)))
        return WorldState(self.steps, tuple(parts), {n: r.saved() for n, r in self.robots.items()},
                          self.feeds.made(), tuple(self.feeds.log), self._next_motion_id(), self._fault_seq,
                          self.machines.saved(self.time))

    def restore(self, state: WorldState, at_steps: int) -> None:
        """Continue from a checkpoint: the parts, robots and feeds as saved, sim time at
        ``at_steps`` (never earlier than saved: whoever saw a later time must not see it go back)."""
        for part_id in list(self.parts.by_id):
            self.parts.remove(part_id)
        self.steps = max(state.steps, at_steps)
        self.time = time_at(self.steps, self.config.twin.physics_hz)
        for name, saved in state.robots.items():
            if name in self.robots:
                self.robots[name].restore(saved)
        for p in state.parts:
            part = self.parts.place(p.id, p.type, p.position, p.orientation)
            if p.held_by in self.robots and state.robots[p.held_by].gripper == "closed":
                self.robots[p.held_by].gripper.attach(part)  # (one being released falls, as it would have)
        self.feeds.restore(state.made, list(state.log))
        self.machines.restore(state.machines, self.time)
        self._motion_ids = itertools.count(state.next_motion + MOTION_ID_GAP)
        self._fault_seq = state.fault_seq

    def _next_motion_id(self) -> int:
        return max(self.motions, default=0) + 1

    # -- motions -----------------------------------------------------------------------------
    def new_motion(self, robot: str, kind: str) -> SimMotion:
        motion = SimMotion(next(self._motion_ids), robot, kind, self.time)
        self.motions[motion.id] = motion
        return motion

    def finish(self, motion: SimMotion | None) -> None:
        if motion is not None:
            self.events.append({"topic": "motions", **motion.to_wire()})

    def gripper_motion(self, robot: SimRobot, command: str) -> SimMotion:
        motion = self.new_motion(robot.name, "gripper")

        def done() -> None:
            motion.status, motion.finished = MotionStatus.SUCCEEDED, self.time
            self.finish(motion)

        robot.gripper.command(command, self.time, done)
        return motion

    # -- stepping ----------------------------------------------------------------------------
    def step(self) -> None:
        for robot in self.robots.values():
            self.finish(robot.control(self.time))
        pb.stepSimulation(physicsClientId=self.client)
        self.steps += 1
        self.time = time_at(self.steps, self.config.twin.physics_hz)
        for robot in self.robots.values():
            for ev in robot.gripper.update(self.time):
                self.events.append({"topic": "parts", "robot": robot.name, "time": self.time, **ev})
        self.events.extend(self.feeds.update(self.steps, self.time, self.held_parts))
        self.events.extend(self.machines.update(self.steps, self.time))
        self._check_contacts()

    def held_parts(self) -> set[str]:
        return {r.gripper.held.id for r in self.robots.values() if r.gripper.held is not None}

    def inject_fault(self, robot_name: str, reason: str) -> dict:
        """A drive fault (as an E-stop or servo error would cause): the robot's running trajectory,
        or if none runs its next one, fails and the arm holds where it is."""
        self.robots[robot_name].pending_fault = f"drive fault: {reason}"
        return self._record_fault(robot_name, "injected", reason)

    def _record_fault(self, robot: str, kind: str, what: str) -> dict:
        self._fault_seq += 1
        fault = {"seq": self._fault_seq, "time": self.time, "robot": robot, "kind": kind, "with": what}
        self.faults.append(fault)
        self.events.append({"topic": "faults", **fault})
        return fault

    def _check_contacts(self) -> None:
        """Report each new contact of a robot with another robot, a station, or a part it does
        not hold, once, when it starts."""
        now: set[tuple] = set()
        for robot in self.robots.values():
            held = robot.gripper.held.body if robot.gripper.held else None
            for c in pb.getContactPoints(bodyA=robot.body, physicsClientId=self.client):
                other = c[2]
                if other == self.plane or other == held or other == robot.body:
                    continue
                if other in self._robot_bodies:
                    kind, what = "robot_robot", self._robot_bodies[other].name
                elif other in self._station_bodies:
                    kind, what = "robot_station", self._station_bodies[other]
                elif other in self.parts.by_body:
                    kind, what = "robot_part", self.parts.by_body[other].id
                else:
                    continue
                key = (robot.name, kind, what)
                now.add(key)
                if key not in self._contacts:
                    self._record_fault(robot.name, kind, what)
        self._contacts = now
