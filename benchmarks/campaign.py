"""``python -m benchmarks.campaign [--copies N] [--workers 1,2] [--ray ADDRESS] [--json]``: scenarios
per hour of ``cellctl test``. The campaign is the shipped scenarios that pass
(``configs/scenarios``, the one meant to fail left out), each ``--copies`` times; the baseline is
1 worker, measured in the same run, and every other row is a ratio against it. Each scenario is
its own process tree (launcher, twin, cells), so a worker needs about two cores to itself: on a
2-core machine 2 workers mostly share them.

And where a scenario's wall time goes: each line ticks from its first event stamped with a sim
time to its last (the events' wall clocks); before that the worker sets the line up (config,
reach test, the twin and the cells starting), after it the line shuts down and is counted. The
campaign overhead is the campaign's wall time ÷ the sum of its lines' ticking time (a partner's
cost beyond simulating; goal ≤ 1.15 on 2 workers)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from cellctl.config.paths import CONFIG_DIR
from cellctl.events import read_events
from cellctl.rundir import RunDir


def phases(result: dict) -> dict[str, float] | None:
    """A scenario's wall time before its first tick, ticking, and after its last tick (s); None
    when its run directory is not on this machine (Ray) or it never ticked."""
    events = RunDir(Path(result["run_dir"])).events
    if not events.exists() or not result.get("started"):
        return None
    ticks = [e["wall_time"] for e in read_events(events) if e.get("sim_time") is not None]
    if not ticks:
        return None
    first, last = min(ticks), max(ticks)
    end = result["started"] + result["wall_s"]
    return {"before": first - result["started"], "ticking": last - first, "after": end - last}


def campaign(paths: list[Path], args: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="cellctl-bench-") as tmp:
        proc = subprocess.run([sys.executable, "-m", "cellctl", "test", *map(str, paths), *args, "--json",
                               "--run-dir", tmp], capture_output=True, text=True)
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        split = [p for p in map(phases, out["results"]) if p is not None]
    passed = sum(r["passed"] for r in out["results"])
    row = {"scenarios": len(paths), "passed": passed, "wall_s": out["wall_s"],
           "per_hour": round(len(paths) / out["wall_s"] * 3600)}
    if len(split) == len(paths):
        ticking = sum(p["ticking"] for p in split)
        scenario_wall = sum(p["before"] + p["ticking"] + p["after"] for p in split)
        row.update(overhead=round(out["wall_s"] / ticking, 2),
                   share_before_first_tick=round(sum(p["before"] for p in split) / scenario_wall, 2),
                   share_ticking=round(ticking / scenario_wall, 2),
                   share_after_last_tick=round(sum(p["after"] for p in split) / scenario_wall, 2))
    return row


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.campaign")
    ap.add_argument("--copies", type=int, default=2, help="each shipped scenario this many times")
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts; the first is the baseline")
    ap.add_argument("--ray", default=None, metavar="ADDRESS", help="also run it on this Ray cluster")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    shipped = sorted(p for p in (CONFIG_DIR / "scenarios").glob("*.yaml") if "meant_to_fail" not in p.name)
    paths = shipped * args.copies
    rows = {f"{n} worker{'s' if n > 1 else ''}": campaign(paths, ["--workers", str(n)])
            for n in map(int, args.workers.split(","))}
    if args.ray:
        rows["ray"] = campaign(paths, ["--ray", args.ray])
    base = next(iter(rows.values()))["per_hour"]
    for label, row in rows.items():
        row["ratio"] = round(row["per_hour"] / base, 2)
        print(f"{label}: {row['scenarios']} scenarios ({row['passed']} passed) in {row['wall_s']:.1f}s wall: "
              f"{row['per_hour']} scenarios/hour, x{row['ratio']} of {next(iter(rows))}"
              + (f"; campaign overhead {row['overhead']} (goal <= 1.15 on 2 workers), a scenario's wall "
                 f"{row['share_before_first_tick']:.0%} before its first tick, {row['share_ticking']:.0%} ticking, "
                 f"{row['share_after_last_tick']:.0%} after its last" if "overhead" in row else ""))
    result = {"campaign": rows}
    if args.json:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
