"""Twin overhead: K pick-and-place cycles of one robot through the twin driver in lockstep with
next-event advance (planning, IK and envelope checks included), against the same trajectory arrays
replayed directly in in-process PyBullet on the same scene (position control, same steps).
Ratio = ours / raw (goal ≤ 1.25)."""

from __future__ import annotations

import time

import numpy as np
from cellctl.drivers.bullet import pb

from benchmarks.common import config_variant, median
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
    """The twin driver, keeping every trajectory it sends (for the raw replay)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list = []

    def execute(self, trajectory):
        self.sent.append(trajectory)
        return super().execute(trajectory)


def ours(path, cycles: int) -> tuple[float, int, list]:
    config = load_config(path)
    with TwinProcess(str(path)) as twin, Recording(twin.endpoint, "press") as robot:
        ctx = SkillContext.create(robot, stations={n: s.position for n, s in config.stations.items()},
                                  locate=None)
        _ = robot.clock  # registers as a lockstep participant before the timing starts
        steps0, t0 = robot.request("time")["steps"], time.perf_counter()
        for _ in range(cycles):
            result = run(SkillSequence(ctx, RECIPE))
            assert result.ok, result.reason
        wall = time.perf_counter() - t0
        return wall, robot.request("time")["steps"] - steps0, robot.sent


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
    ratios, ours_s, raw_s = [], [], []
    with config_variant("demo_cell.yaml", mode="lockstep") as path:
        for _ in range(rounds):
            wall, steps, trajectories = ours(path, cycles)
            base = raw(path, trajectories, steps)
            ours_s.append(wall)
            raw_s.append(base)
            ratios.append(wall / base)
    return {"twin_overhead_ratio": round(median(ratios), 3), "twin_overhead_ours_s": round(median(ours_s), 3),
            "twin_overhead_raw_s": round(median(raw_s), 3), "twin_overhead_cycles": cycles}
