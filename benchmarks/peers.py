"""``python -m benchmarks --peers``: our line against pybullet-fleet 0.8 on the same job, in one run.

The job: N Franka Panda arms (pybullet_data's URDF), physics on at 240 Hz with PyBullet's default
solver settings, each arm pick → place → home per cycle, headless. Ours is a lockstep line of N
cells, each taking parts from its own feed 0.5 m in front of its arm and 0.3 m to one side and
putting them on its own sink 0.3 m to the other side (planned, IK-solved, envelope-checked motions,
grasped by physics); the peer is ``benchmarks/peer_fleet.py`` in a virtualenv of its own
(``.cache/peers/venv``, made on first use: pybullet-fleet pins its own numpy), its arms turning the
same ±0.55 rad by position-controlled joint targets and picking by attaching the box to the hand.
Sizes alternate ours and the peer's, so machine load hits both alike.

Reported per size: each side's real-time factor (sim s / wall s, set-up left out), ``peer_ratio``
(ours / theirs), the *ceiling* (the peer's wall time ÷ bare ``stepSimulation`` of the same N Pandas
for the same sim time: how far above raw physics the peer runs), and both sides'
``getPhysicsEngineParameters()``. A ratio is not reported when the physics settings differ.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from cellctl.drivers.bullet import pb

from benchmarks.line_scale import line_config, run_line

ROOT = Path(__file__).resolve().parents[1]
PEER = "pybullet-fleet==0.8.0"
VENV = ROOT / ".cache" / "peers" / "venv"
PEER_SCRIPT = Path(__file__).with_name("peer_fleet.py")
PANDA = "franka_panda/panda.urdf"
HZ = 240
PEER_HOME = (0.0, -0.8, 0.0, -2.3, 0.0, 1.6, 0.8)  # peer_fleet.py's INIT, the arm joints
COMPARED = ("fixedTimeStep", "numSubSteps", "numSolverIterations", "numNonContactInnerIterations",
            "gravityAccelerationZ", "useRealTimeSimulation")


def peer_python() -> Path:
    """The peer's interpreter, its virtualenv made on first use."""
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", PEER], check=True)
    return python


def peer(robots: int, sim_s: float) -> dict:
    out = subprocess.run([str(peer_python()), str(PEER_SCRIPT), str(robots), str(sim_s)], capture_output=True,
                         text=True, timeout=1800, cwd=PEER_SCRIPT.parent)
    if out.returncode != 0:
        raise RuntimeError(f"the peer failed: {out.stderr[-2000:]}")
    found = json.loads(out.stdout.strip().splitlines()[-1])
    return {**found, "rtf": round(found["sim_s"] / found["wall_s"], 2)}


def our_physics(robots: int) -> dict:
    """The twin's physics settings for the line, from the twin's own world set-up."""
    import tempfile

    import yaml

    from cellctl.config.loader import load_config
    from cellctl.twin.world import World

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "line.yaml"
        path.write_text(yaml.safe_dump(line_config(robots, 1, models=("franka_panda",))))
        world = World(load_config(path))
        try:
            found = pb.getPhysicsEngineParameters(physicsClientId=world.client)
        finally:
            pb.disconnect(world.client)
    return {k: v for k, v in found.items() if isinstance(v, (int, float))}


def bare(robots: int, sim_s: float) -> float:
    """Wall seconds of bare ``stepSimulation`` for ``sim_s`` with N Pandas standing in the peer's
    home pose (the ceiling's base)."""
    import pybullet_data

    client = pb.connect(pb.DIRECT)
    try:
        pb.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=client)
        pb.setGravity(0, 0, -9.81, physicsClientId=client)
        pb.setTimeStep(1.0 / HZ, physicsClientId=client)
        pb.loadURDF("plane.urdf", physicsClientId=client)
        for i in range(robots):
            body = pb.loadURDF(PANDA, [2.0 * i, 0, 0], useFixedBase=True, physicsClientId=client)
            for joint, q in enumerate(PEER_HOME):
                pb.resetJointState(body, joint, q, physicsClientId=client)
        start = time.perf_counter()
        for _ in range(int(sim_s * HZ)):
            pb.stepSimulation(physicsClientId=client)
        return time.perf_counter() - start
    finally:
        pb.disconnect(client)


def same_physics(ours: dict, theirs: dict) -> list[str]:
    """The compared settings that differ (empty: the ratio stands)."""
    return [f"{k}: ours {ours.get(k)}, peer {theirs.get(k)}" for k in COMPARED
            if abs(float(ours.get(k, 0)) - float(theirs.get(k, 0))) > 1e-9]


def main(quick: bool = False) -> dict:
    sizes, parts, sim_s = ((1, 2), 3, 20.0) if quick else ((1, 2, 4, 8), 6, 40.0)
    rows = []
    for n in sizes:
        ours = run_line(n, parts, models=("franka_panda",))
        theirs = peer(n, sim_s)
        base = bare(n, sim_s)
        mine = our_physics(n)
        differ = same_physics(mine, theirs["physics"])
        ceiling = round(theirs["wall_s"] / base, 2)
        rows.append({"arms": n, "ours_rtf": ours["rtf"], "peer_rtf": theirs["rtf"],
                     "peer_ratio": None if differ else round(ours["rtf"] / theirs["rtf"], 2),
                     "ceiling": ceiling, "goal": round(min(1.4, 0.9 * ceiling), 2),
                     "bare_rtf": round(sim_s / base, 1), "peer_cycles_per_arm_min": round(
                         theirs["cycles"] / n / (sim_s / 60), 1),
                     "physics_differ": differ, "physics": mine})
    return {"peers": {"peer": PEER, "job": f"N Panda arms, physics on at {HZ} Hz, pick → place → home, headless",
                      "how": f"{PEER_SCRIPT.name} N SIM_S in {VENV.relative_to(ROOT)}", "sizes": rows}}


if __name__ == "__main__":
    print(json.dumps(main(quick="--quick" in sys.argv), indent=1))
