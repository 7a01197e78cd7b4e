"""Line scale: lines of 1, 2, 4 and 8 cells (one robot and one process each) in lockstep. Each
cell moves parts from its own feed to its own sink (robots 2 m apart). Reports the real-time factor
(sim s / wall s) and wall time per delivered part while the line runs (from the first cell in
Execute to the last part done: process start-up is reported apart), and the peak memory of all
the line's processes (the twin, the cells, the launcher), sampled from /proc."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

MODELS = ("kuka_iiwa", "franka_panda")


def line_config(cells: int, parts: int) -> dict:
    robots, stations, cell_cfg = {}, {}, {}
    for i in range(cells):
        name, x = f"c{i}", 2.0 * i
        robots[name] = {"model": MODELS[i % 2], "base": {"position": [x, 0.0, 0.0]}}
        stations[f"in{i}"] = {"position": [x + 0.5, -0.3, 0.3], "feed": {"every": 1.0, "count": parts,
                                                                           "prefix": f"p{i}"}}
        stations[f"out{i}"] = {"position": [x + 0.5, 0.3, 0.3], "sink": True}
        cell_cfg[name] = {"robot": name, "take": f"in{i}", "give": f"out{i}", "parts": parts}
    return {"version": 1, "twin": {"mode": "lockstep", "period_steps": 5, "silence_timeout": 5.0},
            "robots": robots, "stations": stations, "cells": cell_cfg}


def _tree_rss_kb(root: int) -> int:
    """Resident memory of a process and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def run_line(cells: int, parts: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "line.yaml"
        path.write_text(yaml.safe_dump(line_config(cells, parts)))
        proc = subprocess.Popen([sys.executable, "-m", "cellctl", "run", str(path), "--json",
                                 "--run-dir", str(Path(tmp) / "run")], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        peak = [0]

        def sample() -> None:
            while proc.poll() is None:
                peak[0] = max(peak[0], _tree_rss_kb(proc.pid))
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        out, _ = proc.communicate(timeout=900)
        sampler.join()
        summary = json.loads(out.strip().splitlines()[-1])
        running = _running_wall_s(Path(tmp) / "run" / "events.jsonl")
    if summary["parts_out"] != cells * parts:
        raise RuntimeError(f"{cells}-cell line delivered {summary['parts_out']} of {cells * parts} parts")
    return {"cells": cells, "rtf": round(summary["sim_s"] / running, 2),
            "wall_ms_per_part": round(running * 1000 / summary["parts_out"], 1),
            "peak_rss_mb": round(peak[0] / 1024, 1), "startup_s": round(summary["wall_s"] - running, 1)}


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
