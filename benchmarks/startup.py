"""``python -m benchmarks.startup``: how long the demo line takes from ``cellctl run`` to its first
tick (the first cell in Execute) and from its last part to the end of the command, against a bare
``python -c "import pybullet, zmq"`` measured in the same run (the least any simulating process
pays). A partner's cost is wall time per scenario: what is spent before the first tick and after
the last is spent on no simulation at all."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import median


def _bare(rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import pybullet, zmq"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return median(times)


def shares(run_dir: Path, started: float, ended: float) -> dict:
    """Wall seconds before the first tick (of which: in the launcher before it starts any process —
    imports, the config check with its reach test, the run directory — and until the twin
    announces itself), ticking, and after the last part, of one run."""
    rows = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    spawned = min(e["wall_time"] for e in rows if e["kind"] == "process" and e.get("event") == "started")
    twin = min(e["wall_time"] for e in rows if e["kind"] == "process" and e.get("component") == "twin")
    first = min(e["wall_time"] for e in rows if e["kind"] == "packml" and e["dest"] == "Execute")
    last = max(e["wall_time"] for e in rows if e["kind"] == "part_done")
    return {"before_first_tick_s": round(first - started, 3), "launcher_s": round(spawned - started, 3),
            "twin_ready_s": round(twin - started, 3), "ticking_s": round(last - first, 3),
            "after_last_part_s": round(ended - last, 3),
            "share_before": round((first - started) / (ended - started), 3),
            "share_after": round((ended - last) / (ended - started), 3)}


def demo(rounds: int) -> dict:
    from cellctl.config.paths import DEMO_CONFIG

    found = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            started = time.time()
            subprocess.run([sys.executable, "-m", "cellctl", "run", str(DEMO_CONFIG), "--parts", "1", "--run-dir",
                            str(Path(tmp) / "run")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            found.append(shares(Path(tmp) / "run", started, time.time()))
    return {k: median([f[k] for f in found]) for k in found[0]}


def main(quick: bool = False) -> dict:
    rounds = 1 if quick else 3
    bare = _bare(3 if quick else 5)
    d = demo(rounds)
    return {"startup": {"import_pybullet_zmq_s": round(bare, 3), **d,
                        "first_tick_ratio": round(d["before_first_tick_s"] / bare, 1)}}


if __name__ == "__main__":
    print(json.dumps(main()))
