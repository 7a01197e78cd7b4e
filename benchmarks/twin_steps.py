"""Physics steps per second of one robot on the demo scene:

- raw: in-process PyBullet ``stepSimulation`` on the same world (the baseline);
- realtime twin, flat out (rate too high to keep up with) while a client polls it;
- lockstep twin, one robot moving back and forth, the controller acknowledging every period;
- lockstep twin, the same motions, the controller waiting by next-event advance.

Run: ``python -m benchmarks.twin_steps``. Rounds alternate the variants so machine load hits all alike.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from cellctl.drivers.bullet import pb
import yaml

from cellctl.config.loader import load_config
from cellctl.config.paths import CELL_CONFIG as DEMO_CONFIG
from cellctl.processes.children import TwinProcess
from cellctl.drivers.twin import TwinDriver
from cellctl.drivers.wait import wait
from cellctl.twin.world import World

RAW_STEPS = 5000
SECONDS = 2.0
SWING = ([0.4, 0.6, 0.0, -1.2, 0.0, 1.4, 0.0], [-0.4, 0.6, 0.0, -1.2, 0.0, 1.4, 0.0])


def raw(config) -> float:
    world = World(config)
    try:
        t0 = time.perf_counter()
        for _ in range(RAW_STEPS):
            pb.stepSimulation(physicsClientId=world.client)
        return RAW_STEPS / (time.perf_counter() - t0)
    finally:
        world.close()


def realtime_flat_out(path: Path) -> float:
    with TwinProcess(str(path)) as twin, TwinDriver(twin.endpoint, "press") as driver:
        s0, t0 = driver.request("time")["steps"], time.perf_counter()
        while time.perf_counter() - t0 < SECONDS:
            driver.joint_state()
            time.sleep(0.01)
        return (driver.request("time")["steps"] - s0) / (time.perf_counter() - t0)


def lockstep(path: Path, next_event: bool) -> float:
    with TwinProcess(str(path)) as twin, TwinDriver(twin.endpoint, "press") as driver:
        clock = driver.clock
        s0, t0, k = driver.request("time")["steps"], time.perf_counter(), 0
        while time.perf_counter() - t0 < SECONDS:
            motion = driver.move_joints([SWING[k % 2]])
            k += 1
            if next_event:
                wait(motion)
            else:
                while not motion.status.done:
                    clock.advance()
        return (driver.request("time")["steps"] - s0) / (time.perf_counter() - t0)


def main(rounds: int = 3) -> dict:
    data = yaml.safe_load(DEMO_CONFIG.read_text())
    results: dict[str, list[float]] = {"raw": [], "realtime_flat_out": [], "lockstep_per_period": [],
                                       "lockstep_next_event": []}
    with tempfile.TemporaryDirectory() as tmp:
        flat, locked = Path(tmp) / "flat_out.yaml", Path(tmp) / "lockstep.yaml"
        flat.write_text(yaml.safe_dump({**data, "twin": {**data["twin"], "mode": "realtime", "rate": 1000.0}}))
        locked.write_text(yaml.safe_dump({**data, "twin": {**data["twin"], "mode": "lockstep"}}))
        config = load_config(locked)
        for _ in range(rounds):
            results["raw"].append(raw(config))
            results["realtime_flat_out"].append(realtime_flat_out(flat))
            results["lockstep_per_period"].append(lockstep(locked, next_event=False))
            results["lockstep_next_event"].append(lockstep(locked, next_event=True))
    return {k: statistics.median(v) for k, v in results.items()}


if __name__ == "__main__":
    r = main()
    base = r["raw"]
    for name, value in r.items():
        print(f"{name:22} {value:9.0f} steps/s  ({value / base:5.2f} x raw, {value / 240:6.1f} x real time at 240 Hz)")
