"""Twin overhead: K pick-and-place cycles of one robot through the twin driver in lockstep with
next-event advance (planning, IK and envelope checks included), against the same trajectory arrays
replayed directly in in-process PyBullet on the same scene (position control, same steps).
Ratio = ours / raw (goal ≤ 1.25). The cost model splits our wall time into the controller's own
Python (skills, planning, IK, envelope checks: in lockstep the twin waits meanwhile) and the time
inside requests (round trips, and the grants while the twin steps), of which what the raw replay
does not pay is the twin's extra: its Python around each step, the grip's physics, the round trips."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from cellctl.drivers.bullet import pb

from benchmarks.common import config_variant
from cellctl.config.loader import load_config
from cellctl.processes.children import TwinProcess
from cellctl.drivers.twin import TwinDriver
from cellctl.skills.context import SkillContext
from cellctl.skills.runner import run
from cellctl.skills.sequence import SkillSequence
from cellctl.twin.world import World

RECIPE = [{"skill": "pick", "params": {"station": "infeed"}}, {"skill": "place", "params": {"station": "outfeed"}},
          {"skill": "pick", "params": {"station": "outfeed"}}, {"skill": "place", "params": {"station": "infeed"}}]


class Recording(TwinDriver):
    """The twin driver, keeping every trajectory it sends (for the raw replay) and the wall time
    spent inside its requests (the lockstep clock's grants included: it asks through the driver)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list = []
        self.requests, self.in_requests = 0, 0.0

    def request(self, op, *args, **kwargs):
        start = time.perf_counter()
        try:
            return super().request(op, *args, **kwargs)
        finally:
            self.requests += 1
            self.in_requests += time.perf_counter() - start

    def execute(self, trajectory):
        self.sent.append(trajectory)
        return super().execute(trajectory)


@dataclass(frozen=True)
class Ours:
    wall: float
    steps: int
    trajectories: list
    requests: int
    in_requests: float  # wall seconds inside requests


def ours(path, cycles: int) -> Ours:
    config = load_config(path)
    with TwinProcess(str(path)) as twin, Recording(twin.endpoint, "press") as robot:
        ctx = SkillContext.create(robot, stations={n: s.position for n, s in config.stations.items()},
                                  locate=None)
        _ = robot.clock  # registers as a lockstep participant before the timing starts
        steps0 = robot.request("time")["steps"]
        robot.requests, robot.in_requests, t0 = 0, 0.0, time.perf_counter()
        for _ in range(cycles):
            result = run(SkillSequence(ctx, RECIPE))
            assert result.ok, result.reason
        wall = time.perf_counter() - t0
        requests, in_requests = robot.requests, robot.in_requests
        return Ours(wall, robot.request("time")["steps"] - steps0, robot.sent, requests, in_requests)


def raw(path, trajectories: list, total_steps: int) -> float:
    """Replay the same arrays: per step, interpolate the target and step; then idle steps (gripper
    actuation, settling) up to the same total."""
    world = World(load_config(path))
    robot = world.robots["press"]
    client, body, joints = world.client, robot.body, robot.joints
    forces = [300.0] * len(joints)
    dt, steps = world.dt, 0
    try:
        t0 = time.perf_counter()
        for traj in trajectories:
            n = int(np.ceil(traj.duration / dt)) + 1
            for k in range(n):
                q = np.array([np.interp(k * dt, traj.times, traj.positions[:, j]) for j in range(len(joints))])
                pb.setJointMotorControlArray(body, joints, pb.POSITION_CONTROL, targetPositions=q, forces=forces,
                                             physicsClientId=client)
                pb.stepSimulation(physicsClientId=client)
            steps += n
        for _ in range(max(0, total_steps - steps)):
            pb.stepSimulation(physicsClientId=client)
        return time.perf_counter() - t0
    finally:
        world.close()


def main(quick: bool = False) -> dict:
    cycles, rounds = (1, 1) if quick else (3, 3)
    runs = []
    with config_variant("demo_cell.yaml", mode="lockstep") as path:
        for _ in range(rounds):
            found = ours(path, cycles)
            runs.append((found, raw(path, found.trajectories, found.steps)))
    found, base = sorted(runs, key=lambda r: r[0].wall / r[1])[len(runs) // 2]  # the median run, whole
    return {"twin_overhead_ratio": round(found.wall / base, 3), "twin_overhead_ours_s": round(found.wall, 3),
            "twin_overhead_raw_s": round(base, 3), "twin_overhead_cycles": cycles,
            "twin_overhead_cost": {"controller_s": round(found.wall - found.in_requests, 3),
                                   "in_requests_s": round(found.in_requests, 3), "requests": found.requests,
                                   "twin_extra_s": round(found.in_requests - base, 3), "steps": found.steps}}
