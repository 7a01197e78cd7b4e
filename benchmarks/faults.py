"""``python -m benchmarks.faults [--kills N] [--pauses N] [--twin-kills N] [--parts N] [--json]``:
what ordinary faults cost the demo line. SIGKILLs and SIGSTOP pauses (longer than the twin's
silence timeout) are sent from outside the processes to alternating cells, every few seconds of
wall time, and SIGKILLs to the twin; the baseline is the same line without faults, measured in the
same run.

Reports the median restart time (SIGKILL → the restarted cell back in Execute, from the run's
events), the median re-join time after a pause (SIGCONT → the cell's next re-plan), the median
twin recovery (SIGKILL of the twin → every cell back in Execute on the restored world), and the
extra wall time per fault against the baseline."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.common import median

CELLS = ("press", "pack")
PAUSE_S = 4.0  # the demo's silence timeout is 3 s
EVERY_S = 2.5  # wall s between faults


def _events(run_dir: Path) -> list[dict]:
    path = run_dir / "events.jsonl"
    out = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def _pid(run_dir: Path, cell: str) -> int | None:
    started = [e["pid"] for e in _events(run_dir) if e["kind"] == "process" and e.get("cell") == cell
               and e["event"] == "started"]
    return started[-1] if started else None


def summary_ok(summary: dict | None) -> bool:
    """Finished with nothing lost or duplicated (else the run directory is kept for diagnosis)."""
    return bool(summary) and summary.get("finished") and summary["lost"] == summary["duplicated"] == 0


def _twin_pid(run_dir: Path) -> int | None:
    try:
        return json.loads((run_dir / "pids.json").read_text())["twin"]
    except (OSError, ValueError, KeyError):
        return None


def run(parts: int, kills: int = 0, pauses: int = 0, twin_kills: int = 0) -> dict:
    """One demo run; faults alternate between the cells while it runs. Returns the summary plus the
    wall times of each fault."""
    tmp = tempfile.mkdtemp(prefix="cellctl-faults-")
    summary: dict | None = None
    try:
        run_dir = Path(tmp) / "run"
        started = time.monotonic()
        demo = subprocess.Popen([sys.executable, "-m", "cellctl", "demo", "--parts", str(parts), "--json",
                                 "--run-dir", str(run_dir), "--timeout", "600"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        faults: list[tuple[str, str, float]] = []  # (kind, cell, wall time it ended)
        plan = ["kill"] * kills + ["pause"] * pauses + ["twin_kill"] * twin_kills
        time.sleep(3.0)  # past start-up
        for i, kind in enumerate(plan):
            if demo.poll() is not None:
                break
            cell = CELLS[i % 2] if kind != "twin_kill" else "twin"
            waited = time.monotonic() + 30
            while (pid := _pid(run_dir, cell) if kind != "twin_kill" else _twin_pid(run_dir)) is None \
                    and time.monotonic() < waited and demo.poll() is None:
                time.sleep(0.1)  # the line is still starting
            if pid is None:
                break
            try:
                if kind in ("kill", "twin_kill"):
                    os.kill(pid, signal.SIGKILL)
                else:
                    os.kill(pid, signal.SIGSTOP)
                    time.sleep(PAUSE_S)
                    os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                continue  # it had finished its work order
            faults.append((kind, cell, time.time()))
            time.sleep(EVERY_S)
        out, _ = demo.communicate(timeout=900)
        wall = time.monotonic() - started
        summary = json.loads(out.strip().splitlines()[-1])
        events = _events(run_dir)
    finally:
        if summary_ok(summary):
            shutil.rmtree(tmp, ignore_errors=True)
        else:  # keep what went wrong for whoever reads the figures
            print(f"run not finished cleanly; its run directory is kept: {run_dir}", file=sys.stderr)
    back = {"kill": [], "pause": [], "twin_kill": []}
    for kind, cell, at in faults:
        if kind == "twin_kill":  # every cell back in Execute after the kill
            firsts = [min((e["wall_time"] for e in events if e.get("cell") == c and e["kind"] == "packml"
                           and e.get("dest") == "Execute" and e["wall_time"] > at), default=None) for c in CELLS]
            if all(firsts):
                back[kind].append(max(firsts) - at)
            continue
        marker = ("packml", "Execute") if kind == "kill" else ("replan", None)
        later = [e["wall_time"] for e in events if e.get("cell") == cell and e["kind"] == marker[0]
                 and (marker[1] is None or e.get("dest") == marker[1]) and e["wall_time"] > at]
        if later:
            back[kind].append(min(later) - at)
    return {"summary": summary, "wall_s": wall, "faults": len(faults), "back": back}


def main(kills: int = 10, pauses: int = 10, parts: int = 10, twin_kills: int = 0) -> dict:
    base = run(parts)
    killed = run(parts, kills=kills) if kills else base
    paused = run(parts, pauses=pauses) if pauses else base
    twin = run(parts, twin_kills=twin_kills) if twin_kills else base
    ok = all(r["summary"]["parts_out"] == parts and r["summary"]["lost"] == r["summary"]["duplicated"] == 0
             and r["summary"]["finished"] for r in (base, killed, paused, twin))
    return {
        "parts": parts, "all_delivered_once": ok,
        "baseline_wall_s": round(base["wall_s"], 1),
        "kills": killed["faults"], "restart_median_s": round(median(killed["back"]["kill"]), 2)
        if killed["back"]["kill"] else None,
        "extra_wall_s_per_kill": round((killed["wall_s"] - base["wall_s"]) / max(1, killed["faults"]), 2),
        "pauses": paused["faults"], "pause_s": PAUSE_S,
        "rejoin_median_s": round(median(paused["back"]["pause"]), 2) if paused["back"]["pause"] else None,
        "extra_wall_s_per_pause": round((paused["wall_s"] - base["wall_s"]) / max(1, paused["faults"]), 2),
        "twin_kills": twin["faults"] if twin_kills else 0,
        "twin_recovery_median_s": round(median(twin["back"]["twin_kill"]), 2) if twin["back"]["twin_kill"] else None,
        "extra_wall_s_per_twin_kill": round((twin["wall_s"] - base["wall_s"]) / max(1, twin["faults"]), 2)
        if twin_kills else 0.0,
        "restarts": killed["summary"]["restarts"],
        "runs": {name: {k: r["summary"][k] for k in ("parts_in", "parts_out", "lost", "duplicated")}
                 | {"cells": {c: v["state"] for c, v in r["summary"]["cells"].items()}}
                 for name, r in (("baseline", base), ("kills", killed), ("pauses", paused), ("twin_kills", twin))},
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser(prog="python -m benchmarks.faults")
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--pauses", type=int, default=10)
    ap.add_argument("--twin-kills", type=int, default=0)
    ap.add_argument("--parts", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    result = main(args.kills, args.pauses, args.parts, args.twin_kills)
    print(f"baseline: {args.parts} parts in {result['baseline_wall_s']} s wall; all delivered once in every run: "
          f"{result['all_delivered_once']}")
    print(f"{result['kills']} SIGKILLs: median restart (kill -> Execute) {result['restart_median_s']} s, "
          f"+{result['extra_wall_s_per_kill']} s wall per kill")
    print(f"{result['pauses']} pauses of {PAUSE_S} s: median re-join (SIGCONT -> re-plan) {result['rejoin_median_s']} s, "
          f"+{result['extra_wall_s_per_pause']} s wall per pause")
    print(f"{result['twin_kills']} twin SIGKILLs: median recovery (kill -> every cell in Execute) "
          f"{result['twin_recovery_median_s']} s, +{result['extra_wall_s_per_twin_kill']} s wall per twin kill")
    if args.json:
        print(json.dumps(result))
