"""Skill tick: microseconds per ``tick()`` of an idle skill (a Wait whose time has not come: no
I/O, driver time cached by the lockstep clock) and of a moving skill (a MoveJoints polling its
motion: one status round trip to the twin per tick)."""

from __future__ import annotations

import time

from benchmarks.common import config_variant, median
from cellctl.processes.children import TwinProcess
from cellctl.drivers.twin import TwinDriver
from cellctl.skills.context import SkillContext
from cellctl.skills.registry import create


def _per_tick(skill, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        skill.tick()
    return (time.perf_counter() - t0) / n * 1e6


def main(quick: bool = False) -> dict:
    n = 2000 if quick else 20000
    with config_variant("demo_cell.yaml", mode="lockstep") as path, TwinProcess(str(path)) as twin, \
            TwinDriver(twin.endpoint, "press") as robot:
        _ = robot.clock  # a lockstep participant: time only moves when we advance it
        ctx = SkillContext.create(robot)
        idle = create("wait", ctx, {"seconds": 10.0})
        idle.tick()  # past setup: now only polling
        moving = create("move_joints", ctx, {"positions": [0.6, 0.5, 0.0, -1.2, 0.0, 1.4, 0.0]})
        moving.tick()
        idle_us = median([_per_tick(idle, n) for _ in range(3)])
        moving_us = median([_per_tick(moving, n // 10) for _ in range(3)])
    return {"skill_tick_us": {"idle": round(idle_us, 2), "moving": round(moving_us, 2)}}
