"""Physics steps per second of one robot: raw in-process PyBullet stepping the same scene, vs the
twin server process (realtime mode at a rate too high to keep up with, so it steps flat out while
a client polls it over ZeroMQ)."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import pybullet as pb
import yaml

from cellctl.config import load_config
from cellctl.paths import DEMO_CONFIG
from cellctl.processes import TwinProcess
from drivers.twin import TwinDriver
from twin.world import World

RAW_STEPS = 5000
TWIN_SECONDS = 2.0


def raw_steps_per_s(config) -> float:
    world = World(config)
    try:
        t0 = time.perf_counter()
        for _ in range(RAW_STEPS):
            pb.stepSimulation(physicsClientId=world.client)
        return RAW_STEPS / (time.perf_counter() - t0)
    finally:
        world.close()


def twin_steps_per_s(config_path: Path) -> float:
    with TwinProcess(str(config_path)) as twin, TwinDriver(twin.endpoint, "press") as driver:
        s0, t0 = driver.request("time")["steps"], time.perf_counter()
        while time.perf_counter() - t0 < TWIN_SECONDS:
            driver.joint_state()
            time.sleep(0.01)
        s1, t1 = driver.request("time")["steps"], time.perf_counter()
    return (s1 - s0) / (t1 - t0)


def main(rounds: int = 3) -> dict:
    data = yaml.safe_load(DEMO_CONFIG.read_text())
    data["twin"]["rate"] = 1000.0  # far beyond what one core can step: the server runs flat out
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "flat_out.yaml"
        path.write_text(yaml.safe_dump(data))
        config = load_config(path)
        raw, twin = [], []
        for _ in range(rounds):  # alternate, so drift in machine load hits both alike
            raw.append(raw_steps_per_s(config))
            twin.append(twin_steps_per_s(path))
    result = {"raw_steps_per_s": statistics.median(raw), "twin_steps_per_s": statistics.median(twin)}
    result["twin_over_raw"] = result["twin_steps_per_s"] / result["raw_steps_per_s"]
    return result


if __name__ == "__main__":
    r = main()
    print(f"raw PyBullet, in-process, same scene: {r['raw_steps_per_s']:9.0f} steps/s")
    print(f"twin server (realtime, flat out):     {r['twin_steps_per_s']:9.0f} steps/s")
    print(f"ratio twin/raw:                        {r['twin_over_raw']:9.2f}")
