"""Line scale: lines of 1, 2, 4 and 8 cells (one robot and one process each) in lockstep. Each
cell moves parts from its own feed to its own sink (robots 2 m apart). Reports the real-time factor
(sim s / wall s) and wall time per delivered part while the line runs (from the first cell in
Execute to the last part done: process start-up is reported apart), and the peak memory of all
the line's processes (the twin, the cells, the launcher), sampled from /proc.

And the cost model of each size: bare ``stepSimulation`` µs per step on the same scene (the twin's
own world set-up, stepped raw), the twin's CPU µs per physics step and what it adds to the bare
step (trajectories, motors, grippers, feeds, contacts, streams, requests, in Python), the twin's
requests (round trips) per part and per sim second (the twin's log line at exit), and the
controllers' CPU ms per part (the cell processes' CPU, sampled from /proc). CPU is counted from the
first cell in Execute: start-up (imports, URDF loading) is left out, as in the real-time factor."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

MODELS = ("kuka_iiwa", "franka_panda")


def line_config(cells: int, parts: int, models: tuple[str, ...] = MODELS) -> dict:
    robots, stations, cell_cfg = {}, {}, {}
    for i in range(cells):
        name, x = f"c{i}", 2.0 * i
        robots[name] = {"model": models[i % len(models)], "base": {"position": [x, 0.0, 0.0]}}
        stations[f"in{i}"] = {"position": [x + 0.5, -0.3, 0.3], "feed": {"every": 1.0, "count": parts,
                                                                           "prefix": f"p{i}"}}
        stations[f"out{i}"] = {"position": [x + 0.5, 0.3, 0.3], "sink": True}
        cell_cfg[name] = {"robot": name, "take": f"in{i}", "give": f"out{i}", "parts": parts}
    return {"version": 1, "twin": {"mode": "lockstep", "period_steps": 5, "silence_timeout": 5.0},
            "robots": robots, "stations": stations, "cells": cell_cfg}


TWIN_STATS = re.compile(r"twin: served (\d+) requests over (\d+) physics steps")
BARE_STEPS = 2000


def _cpu_by_kind(root: int, seen: dict[int, tuple[str, float]]) -> None:
    """CPU seconds so far of each twin and cell process under ``root`` (kept by pid: the last look
    before a process exits is its figure)."""
    tick = os.sysconf("SC_CLK_TCK")
    for pid in _descendants(root):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        kind = "twin" if b" twin serve " in cmd else "cell" if b" cell run " in cmd else None
        if kind:
            seen[pid] = (kind, (int(fields[11]) + int(fields[12])) / tick)


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def bare_us_per_step(config: Path) -> float:
    """``stepSimulation`` alone on the scene the twin builds for ``config``."""
    from cellctl.config.loader import load_config
    from cellctl.drivers.bullet import pb
    from cellctl.twin.world import World

    world = World(load_config(config))
    try:
        start = time.perf_counter()
        for _ in range(BARE_STEPS):
            pb.stepSimulation(physicsClientId=world.client)
        return (time.perf_counter() - start) / BARE_STEPS * 1e6
    finally:
        pb.disconnect(world.client)


def _tree_rss_kb(root: int) -> int:
    """Resident memory of a process and all its descendants."""
    total = 0
    for pid in _descendants(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def run_line(cells: int, parts: int, models: tuple[str, ...] = MODELS) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "line.yaml"
        path.write_text(yaml.safe_dump(line_config(cells, parts, models)))
        proc = subprocess.Popen([sys.executable, "-m", "cellctl", "run", str(path), "--json",
                                 "--run-dir", str(Path(tmp) / "run")], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        peak, cpu, at_start = [0], {}, {}
        events = Path(tmp) / "run" / "events.jsonl"

        def sample() -> None:
            while proc.poll() is None:
                peak[0] = max(peak[0], _tree_rss_kb(proc.pid))
                _cpu_by_kind(proc.pid, cpu)
                if not at_start and events.exists() and b'"dest": "Execute"' in events.read_bytes():
                    at_start.update(cpu)  # the processes' start-up CPU, left out of the cost model
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        out, _ = proc.communicate(timeout=900)
        sampler.join()
        summary = json.loads(out.strip().splitlines()[-1])
        running = _running_wall_s(Path(tmp) / "run" / "events.jsonl")
        stats = TWIN_STATS.search((Path(tmp) / "run" / "twin.log").read_text())
        bare = bare_us_per_step(path)
    if summary["parts_out"] != cells * parts:
        raise RuntimeError(f"{cells}-cell line delivered {summary['parts_out']} of {cells * parts} parts")
    out_parts = summary["parts_out"]
    requests, steps = int(stats[1]), int(stats[2])
    running_cpu = {pid: (kind, s - at_start.get(pid, ("", 0.0))[1]) for pid, (kind, s) in cpu.items()}
    twin_us = sum(s for kind, s in running_cpu.values() if kind == "twin") / steps * 1e6
    controllers = sum(s for kind, s in running_cpu.values() if kind == "cell")
    return {"cells": cells, "rtf": round(summary["sim_s"] / running, 2),
            "wall_ms_per_part": round(running * 1000 / out_parts, 1),
            "peak_rss_mb": round(peak[0] / 1024, 1), "startup_s": round(summary["wall_s"] - running, 1),
            "cost": {"bare_us_per_step": round(bare, 1), "twin_cpu_us_per_step": round(twin_us, 1),
                     "twin_python_us_per_step": round(twin_us - bare, 1),
                     "round_trips_per_part": round(requests / out_parts, 1),
                     "round_trips_per_sim_s": round(requests / summary["sim_s"], 1),
                     "controller_cpu_ms_per_part": round(controllers / out_parts * 1000, 1)}}


def _running_wall_s(events: Path) -> float:
    """Wall time from the first cell in Execute to the last part done: the line running, without
    the processes' start-up (imports, URDF loading) and shutdown."""
    rows = [json.loads(line) for line in events.read_text().splitlines()]
    start = min(e["wall_time"] for e in rows if e["kind"] == "packml" and e["dest"] == "Execute")
    end = max(e["wall_time"] for e in rows if e["kind"] == "part_done")
    return end - start


def main(quick: bool = False) -> dict:
    sizes, parts = ((1, 2), 2) if quick else ((1, 2, 4, 8), 5)
    return {"scale": [run_line(n, parts) for n in sizes]}
