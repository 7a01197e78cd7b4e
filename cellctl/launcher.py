"""``cellctl run`` and ``cellctl demo``: a whole line on one machine — the twin and one process per
cell — supervised, with progress, a run directory and a machine-readable result.

The run directory holds ``line.yaml`` (the effective config), ``events.jsonl`` (every cell's state
changes, skill transitions, handoff messages and custody changes, plus the launcher's own), one
ledger per cell, the processes' logs and ``summary.json``. A cell process that dies by a signal is
restarted (it reconciles its ledger with the robot and stations, then resynchronises with its
neighbours). Counts of parts lost and duplicated come from the twin's part log and bodies and from
the ledgers, never from the controllers' own counters.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cellctl.config import load_config
from cellctl.control import request
from cellctl.crash import ENV as CRASH_ENV
from cellctl.line_config import LineConfig
from cellctl.processes import RosbridgeProcess, TwinProcess
from cellctl.report import write_report
from drivers.twin_client import TwinClient
from skills.events import JsonlSink, make_event

MAX_RESTARTS_PER_HOUR = 20  # per cell; past it the cell is reported with its last log lines
RESTART_BACKOFF_S = 0.5  # doubled for each restart of the same cell within BURST_WINDOW_S
MAX_BACKOFF_S = 10.0
BURST_WINDOW_S = 20.0  # restarts closer together than this count as a crash loop and back off
POLL_S = 0.2
STUCK_S = 15.0  # wall s a cell may stay Held or Aborted (waiting for an operator) before the run gives up


def prepare(config: LineConfig, parts: int | None, driver: str = "twin", rate: float = 4.0) -> dict:
    data = config.model_dump(mode="json")
    if driver == "ros":  # ROS clients do not take part in lockstep: the twin stands in for real robots
        data["twin"]["mode"], data["twin"]["rate"] = "realtime", rate
    for cell in data["cells"].values():
        if parts is not None:
            cell["parts"] = parts
    for station in data["stations"].values():
        if station["feed"] is not None and parts is not None:
            station["feed"]["count"] = parts
    if data["twin"]["mode"] == "lockstep":
        data["twin"]["expect"] = sorted(data["cells"])
    return data


class Line:
    def __init__(self, config_path: str, run_dir: Path, parts: int | None, console: Console,
                 crash: dict[str, str] | None = None, driver: str = "twin", rate: float = 4.0) -> None:
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        config = load_config(config_path)
        self.effective = run_dir / "line.yaml"
        self.effective.write_text(yaml.safe_dump(prepare(config, parts, driver, rate), sort_keys=False))
        self.driver = driver
        self.bridge: RosbridgeProcess | None = None
        self.config = load_config(self.effective)
        self.parts = parts
        self.console = console
        self.crash = crash or {}
        self.events = JsonlSink(run_dir / "events.jsonl")
        self.procs: dict[str, subprocess.Popen] = {}
        self.restarts: Counter[str] = Counter()
        self._restart_times: defaultdict[str, list[float]] = defaultdict(list)
        self._stuck_since: dict[str, float] = {}
        self.twin: TwinProcess | None = None

    def _emit(self, kind: str, **fields: object) -> None:
        self.events.emit(make_event(kind, None, source="launcher", **fields))

    def _start_cell(self, name: str, first: bool) -> None:
        env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
        if first and name in self.crash:
            env[CRASH_ENV] = self.crash[name]
        log = open(self.run_dir / f"cell-{name}.log", "a")  # noqa: SIM115 - the child owns it
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "cellctl", "cell", "run", str(self.effective), "--cell", name,
             "--twin", self.twin.endpoint, "--run-dir", str(self.run_dir), "--start", "--exit-when-complete",
             *(["--rosbridge", self.bridge.url] if self.bridge else [])],
            stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        self._emit("process", cell=name, event="started", pid=self.procs[name].pid)

    def run(self, timeout: float) -> dict:
        started = time.monotonic()
        with TwinProcess(str(self.effective)) as twin, TwinClient(twin.endpoint, timeout=10,
                                                                  client="launcher") as probe:
            self.twin = twin
            if self.driver == "ros":
                self.bridge = RosbridgeProcess(str(self.effective), twin.endpoint)
                self.bridge.start()
            for name in self.config.cells:
                self._start_cell(name, first=True)
            try:
                self._supervise(probe, started, timeout)
            except KeyboardInterrupt:
                self.console.print("stopping the line (Ctrl-C)")
                self._emit("interrupted")
            finally:
                self._stop_cells()
                if self.bridge is not None:
                    self.bridge.stop()
            summary = self._summary(probe, time.monotonic() - started)
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        self.events.close()
        write_report(self.run_dir)
        return summary

    def _supervise(self, probe: TwinClient, started: float, timeout: float) -> None:
        total = self.parts or min((c.parts or 0) for c in self.config.cells.values()) or None
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=self.console, transient=True) as progress:
            task = progress.add_task("parts out", total=total)
            while self.procs:
                for name, proc in list(self.procs.items()):
                    code = proc.poll()
                    if code is None:
                        continue
                    del self.procs[name]
                    self._emit("process", cell=name, event="exited", code=code)
                    if code == 0:
                        continue  # its work order is done (or an operator stopped it)
                    if not self._may_restart(name):
                        self.console.print(f"[red]cell {name} exited with {code} {MAX_RESTARTS_PER_HOUR} times within "
                                           f"an hour; its last log lines:[/red]\n{self._log_tail(name)}")
                        return  # a cell that fails for good stops the line: no one waits for it forever
                    why = f"signal {-code}" if code < 0 else f"exit status {code}"
                    self.console.print(f"cell {name} died ({why}); restarting")
                    self._start_cell(name, first=False)
                if time.monotonic() - started > timeout:
                    self.console.print(f"[red]line not done after {timeout}s of wall time[/red]")
                    return
                if self._stuck():
                    return
                out = sum(1 for e in probe.request("part_log") if e["event"] == "consumed")
                progress.update(task, completed=out)
                time.sleep(POLL_S)

    def _may_restart(self, name: str) -> bool:
        """At most MAX_RESTARTS_PER_HOUR restarts in any hour, each after a backoff that doubles
        with the restarts of the last BURST_WINDOW_S (a crash loop must not spin)."""
        now = time.monotonic()
        recent = self._restart_times[name] = [t for t in self._restart_times[name] if now - t < 3600]
        if len(recent) >= MAX_RESTARTS_PER_HOUR:
            return False
        burst = sum(1 for t in recent if now - t < BURST_WINDOW_S)
        time.sleep(min(RESTART_BACKOFF_S * 2 ** burst, MAX_BACKOFF_S) if burst else 0)
        recent.append(time.monotonic())
        self.restarts[name] += 1
        return True

    def _log_tail(self, name: str, lines: int = 20) -> str:
        path = self.run_dir / f"cell-{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"

    def _stuck(self) -> bool:
        """A cell Held or Aborted for long needs an operator; an unattended run reports it and ends."""
        now = time.monotonic()
        for name in self.procs:
            path = self.run_dir / f"control-{name}.json"
            if not path.exists():
                continue
            try:
                status = request(json.loads(path.read_text())["endpoint"], "status", timeout=1.0)["result"]
            except TimeoutError:
                continue
            if status["state"] in ("Held", "Aborted"):
                since = self._stuck_since.setdefault(name, now)
                if now - since > STUCK_S:
                    self.console.print(f"[red]cell {name} {status['state']} for {STUCK_S}s: {status['fault']}; "
                                       f"ending the run (use `cellctl cmd` to recover a live line)[/red]")
                    self._emit("stuck", cell=name, state=status["state"], fault=status["fault"])
                    return True
            else:
                self._stuck_since.pop(name, None)
        return False

    def _stop_cells(self) -> None:
        for proc in self.procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _summary(self, probe: TwinClient, wall_s: float) -> dict:
        log = probe.request("part_log")
        spawned = [e["part"] for e in log if e["event"] == "spawned"]
        consumed = Counter(e["part"] for e in log if e["event"] == "consumed")
        present = {p["id"] for p in probe.request("list_parts")}
        owners: Counter[str] = Counter()
        for name in self.config.cells:
            path = self.run_dir / f"ledger-{name}.sqlite"
            if path.exists():
                with sqlite3.connect(path) as db:
                    owners.update(p for (p,) in db.execute("SELECT part FROM custody WHERE state='OWNED'"))
        lost = [p for p in spawned if p not in consumed and p not in present]
        duplicated = sum(n - 1 for n in consumed.values() if n > 1) + sum(n - 1 for n in owners.values() if n > 1)
        return {
            "parts_in": len(spawned), "parts_out": sum(consumed.values()), "lost": len(lost),
            "duplicated": duplicated, "sim_s": round(probe.request("time")["time"], 3), "wall_s": round(wall_s, 3),
            "cells": self._cell_states(), "restarts": dict(self.restarts), "run_dir": str(self.run_dir),
        }

    def _cell_states(self) -> dict:
        cells = {name: {"state": "Stopped", "parts_done": 0} for name in self.config.cells}
        for line in (self.run_dir / "events.jsonl").read_text().splitlines():
            e = json.loads(line)
            if e.get("cell") in cells and e["kind"] == "packml":
                cells[e["cell"]]["state"] = e["dest"]
            elif e.get("cell") in cells and e["kind"] == "part_done":
                cells[e["cell"]]["parts_done"] += 1
        return cells


def run_line(config_path: str, parts: int | None = None, run_dir: str | None = None, as_json: bool = False,
             timeout: float = 900.0, crash: dict[str, str] | None = None, driver: str = "twin",
             rate: float = 4.0) -> int:
    console = Console(stderr=True, highlight=False)
    directory = Path(run_dir) if run_dir else Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    line = Line(config_path, directory, parts, console, crash, driver, rate)
    console.print(f"line {config_path}: {len(line.config.cells)} cells, run directory {directory}")
    s = line.run(timeout)
    console.print(f"{s['parts_out']}/{s['parts_in']} parts out, lost {s['lost']}, duplicated {s['duplicated']}, "
                  f"{s['sim_s']:.1f}s sim in {s['wall_s']:.1f}s wall; "
                  + ", ".join(f"{n}: {c['state']} ({c['parts_done']} parts)" for n, c in s["cells"].items()))
    if as_json:
        print(json.dumps(s))
    expected = parts if parts is not None else s["parts_in"]
    ok = s["parts_out"] == s["parts_in"] == expected and s["lost"] == 0 and s["duplicated"] == 0
    return 0 if ok and all(c["state"] == "Complete" for c in s["cells"].values()) else 1
