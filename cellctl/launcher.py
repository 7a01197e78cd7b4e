"""``cellctl run`` and ``cellctl demo``: a whole line on one machine — the twin and one process per
cell — supervised by state and progress, with a run directory and an honest summary.

The run directory holds ``line.yaml`` (the effective config), ``launch.json`` (how it was
launched), ``events.jsonl`` (every cell's state changes, skill transitions, handoff messages and
custody changes, plus the launcher's own), one ledger per cell, ``twin.sqlite`` (the twin's world
checkpoint), the processes' logs, ``pids.json`` and ``summary.json``. Supervision:

- a cell process that exits before its work order is done, for any reason, is restarted (it
  reconciles its ledger with the robot and stations, then resynchronises with its neighbours),
  after a backoff that grows in a crash loop, at most MAX_RESTARTS_PER_HOUR times an hour;
- a twin that dies is restarted from its checkpoint, at the latest sim time any cell saw (time
  never goes back); the restored world is reconciled with the ledgers (a part a ledger has
  DELIVERED is taken off the world, logged as consumed by that cell's sink) and the cells, Held
  for the lost twin, are Unheld;
- a progress watchdog ends a run in which no custody changes and no robot moves for ``watchdog``
  wall seconds, with a diagnosis of who waits for whom;
- the summary (``cellctl.summary``) is written on every exit path;
- ``--resume RUN_DIR`` continues a line whose launcher died: its orphans (listed in ``pids.json``)
  are stopped, the twin restored from its checkpoint and the cells restarted from their ledgers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cellctl.cell import TWIN_LOST
from cellctl.config import load_config
from cellctl.control import request
from cellctl.crash import ENV as CRASH_ENV
from cellctl.line_config import LineConfig
from cellctl.processes import AnnouncedProcess, ProcessFailed, RosbridgeProcess, TwinProcess
from cellctl.report import write_report
from cellctl.summary import count_parts, custody_states
from cellctl.watchdog import EventTail, Watchdog, diagnose
from drivers.errors import DriverError
from drivers.twin_client import TwinClient
from skills.events import JsonlSink, make_event
from twin.checkpoint import read_checkpoint

MAX_RESTARTS_PER_HOUR = 20  # per process; past it the process is reported with its last log lines
RESTART_BACKOFF_S = 0.5  # doubled for each restart of the same process within BURST_WINDOW_S
MAX_BACKOFF_S = 10.0
BURST_WINDOW_S = 20.0  # restarts closer together than this count as a crash loop and back off
POLL_S = 0.2
WATCHDOG_S = 60.0  # default wall s without progress before a run is declared stuck
STATUS_TIMEOUT_S = 0.5
STATUS_EVERY_S = 1.0  # wall s between looks for cells Held because the twin was lost
STOP_WAIT_S = 15.0


def prepare(config: LineConfig, parts: int | None, driver: str = "twin", rate: float = 4.0,
            participants: Sequence[str] = ()) -> dict:
    """The run's effective config. ``participants``: lockstep participants besides the cells that
    the twin waits for before time starts (a scenario's fault injector)."""
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
        data["twin"]["expect"] = sorted([*data["cells"], *participants])
    return data


class GaveUp(RuntimeError):
    """A process that keeps failing: the run ends with its last log lines."""


@dataclass
class Outcome:
    ended: str  # done | timeout | stalled | interrupted | gave_up
    diagnosis: list[str] = field(default_factory=list)


class Line:
    def __init__(self, run_dir: Path, console: Console, crash: dict[str, str] | None = None,
                 watchdog_s: float = WATCHDOG_S, resume: bool = False) -> None:
        self.run_dir = run_dir
        self.effective = run_dir / "line.yaml"
        self.config = load_config(self.effective)
        self.keys = self.config.keys("launcher")  # CURVE, where the config has security
        launch = json.loads((run_dir / "launch.json").read_text())
        self.driver, self.rate, self.parts = launch["driver"], launch["rate"], launch["parts"]
        self.console = console
        self.crash = crash or {}
        self.resume = resume
        self.checkpoint = run_dir / "twin.sqlite"
        self.events = JsonlSink(run_dir / "events.jsonl")
        self.tail = EventTail(run_dir / "events.jsonl")
        self.watchdog = Watchdog(watchdog_s)
        self.procs: dict[str, subprocess.Popen] = {}
        self.twin: TwinProcess | None = None
        self.bridge: RosbridgeProcess | None = None
        self.restarts: Counter[str] = Counter()
        self._restart_times: defaultdict[str, list[float]] = defaultdict(list)
        self._ports = (0, 0)
        self._statuses_at = 0.0  # monotonic: when the cells' statuses were last looked at
        self._delivered = 0

    @classmethod
    def create(cls, config_path: str, run_dir: Path, parts: int | None, console: Console,
               crash: dict[str, str] | None = None, driver: str = "twin", rate: float = 4.0,
               watchdog_s: float = WATCHDOG_S, participants: Sequence[str] = ()) -> Line:
        """A new run directory for ``config_path``."""
        run_dir.mkdir(parents=True, exist_ok=True)
        effective = prepare(load_config(config_path), parts, driver, rate, participants)
        (run_dir / "line.yaml").write_text(yaml.safe_dump(effective, sort_keys=False))
        (run_dir / "launch.json").write_text(json.dumps({"driver": driver, "rate": rate, "parts": parts}))
        return cls(run_dir, console, crash, watchdog_s)

    def _emit(self, kind: str, **fields: object) -> None:
        self.events.emit(make_event(kind, None, source="launcher", **fields))

    # -- processes ----------------------------------------------------------------------------
    def _save_pids(self) -> None:
        pids = {"launcher": os.getpid(), "cells": {n: p.pid for n, p in self.procs.items()},
                "twin": self.twin.pid if self.twin and self.twin.proc else None,
                "bridge": self.bridge.pid if self.bridge and self.bridge.proc else None}
        (self.run_dir / "pids.json").write_text(json.dumps(pids))

    def _start_twin(self, restore: bool) -> None:
        extra = ["--checkpoint", str(self.checkpoint), "--parent", str(os.getpid())]
        if restore:
            extra += ["--restore", "--resume-at", f"{self.tail.last_sim_time:.6f}"]
        twin = TwinProcess(str(self.effective), *self._ports, extra=extra, log=self.run_dir / "twin.log")
        twin.start()
        self.twin = twin
        self._ports = tuple(int(e.rsplit(":", 1)[1]) for e in (twin.endpoint, twin.pub_endpoint))
        self._emit("process", component="twin", event="started", pid=twin.pid, restored=twin.info.get("restored"),
                   time=twin.info.get("time"))
        self._save_pids()

    def _start_cell(self, name: str, first: bool) -> None:
        env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
        if first and name in self.crash:
            env[CRASH_ENV] = self.crash[name]
        log = open(self.run_dir / f"cell-{name}.log", "a")  # noqa: SIM115 - the child owns it
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "cellctl", "cell", "run", str(self.effective), "--cell", name,
             "--twin", self.twin.endpoint, "--run-dir", str(self.run_dir), "--start", "--exit-when-complete", "--supervised",
             *(["--rosbridge", self.bridge.url, "--simulated"] if self.bridge else [])],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        log.close()
        self._emit("process", cell=name, event="started", pid=self.procs[name].pid)
        self._save_pids()

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

    def _log_tail(self, log: str, lines: int = 20) -> str:
        path = self.run_dir / log
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"

    # -- running --------------------------------------------------------------------------------
    def run(self, timeout: float) -> dict:
        started = time.monotonic()
        outcome = Outcome("gave_up")
        try:
            if self.resume:
                self._stop_orphans()
            self._start_twin(restore=self.resume)
            if self.driver == "ros":
                self.bridge = RosbridgeProcess(str(self.effective), self.twin.endpoint,
                                               log=self.run_dir / "rosbridge.log")
                self.bridge.start()
            for name in self.config.cells:
                self._start_cell(name, first=not self.resume)
            outcome = self._supervise(started, timeout)
        except KeyboardInterrupt:
            self.console.print("stopping the line (Ctrl-C)")
            self._emit("interrupted")
            outcome = Outcome("interrupted")
        except (GaveUp, ProcessFailed) as exc:
            self.console.print(f"[red]{exc}[/red]")
            outcome = Outcome("gave_up", str(exc).splitlines()[:25])
        finally:
            clients = self._twin_clients()
            self._stop_all()
            summary = self._summary(outcome, time.monotonic() - started)
            summary["twin_clients"] = clients
            (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
            self.events.close()
            write_report(self.run_dir)
        return summary

    def _supervise(self, started: float, timeout: float) -> Outcome:
        total = self.parts or min((c.parts or 0) for c in self.config.cells.values()) or None
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=self.console, transient=True) as progress:
            task = progress.add_task("parts out", total=total)
            while self.procs:
                events = self.tail.read()
                self.watchdog.saw(events)
                self._delivered += sum(1 for e in events if e.get("kind") == "custody" and e.get("state") == "DELIVERED")
                progress.update(task, completed=self._delivered)
                self._reap_cells()
                if self.twin is None or not self.twin.alive():
                    self._restore_twin()
                self._unhold_cells()
                if time.monotonic() - started > timeout:
                    self.console.print(f"[red]line not done after {timeout}s of wall time[/red]")
                    return Outcome("timeout", self._diagnosis())
                if self.watchdog.stalled():
                    diagnosis = self._diagnosis()
                    self.console.print(f"[red]no custody change and no motion for {self.watchdog.quiet_s:.0f}s: "
                                       f"the line is stuck[/red]\n" + "\n".join(diagnosis))
                    self._emit("stalled", diagnosis=diagnosis)
                    return Outcome("stalled", diagnosis)
                time.sleep(POLL_S)
        return Outcome("done")

    def _reap_cells(self) -> None:
        for name, proc in list(self.procs.items()):
            code = proc.poll()
            if code is None:
                continue
            del self.procs[name]
            self._emit("process", cell=name, event="exited", code=code)
            if code == 0:
                continue  # its work order is done (or an operator stopped it)
            if not self._may_restart(name):
                raise GaveUp(f"cell {name} exited with {code} {MAX_RESTARTS_PER_HOUR} times within an hour; its "
                             f"last log lines:\n{self._log_tail(f'cell-{name}.log')}")
            why = f"signal {-code}" if code < 0 else f"exit status {code}"
            self.console.print(f"cell {name} died ({why}); restarting")
            self._start_cell(name, first=False)

    def _restore_twin(self) -> None:
        """The twin died (or a restart failed): start it again from its checkpoint, reconcile the
        restored world with the ledgers, and Unhold the cells that were Held for it."""
        if self.twin is not None:
            code = self.twin.proc.returncode
            self._emit("process", component="twin", event="exited", code=code)
            self.console.print(f"the twin died ({f'signal {-code}' if code < 0 else f'exit status {code}'}); "
                               f"restarting it from its checkpoint")
            self.twin = None
        if not self._may_restart("twin"):
            raise GaveUp(f"the twin failed {MAX_RESTARTS_PER_HOUR} times within an hour; its last log lines:\n"
                         f"{self._log_tail('twin.log')}")
        try:
            self._start_twin(restore=True)
        except ProcessFailed as exc:
            self.console.print(f"[red]the twin did not come back: {str(exc).splitlines()[0]}; trying again[/red]")
            return
        self._reconcile_world()

    def _reconcile_world(self) -> None:
        """A part some ledger has DELIVERED is not left in the restored world (its checkpoint may
        predate the sink consuming it): it is taken off as consumed by that cell's sink."""
        try:
            with TwinClient(self.twin.endpoint, timeout=5, client="launcher", keys=self.keys) as twin:
                present = {p["id"] for p in twin.request("list_parts")}
                for name, cell in self.config.cells.items():
                    states = custody_states(self.run_dir / f"ledger-{name}.sqlite")
                    for part in sorted(p for p, s in states.items() if s == "DELIVERED" and p in present):
                        twin.request("remove_part", id=part, consumed_at=cell.give)
                        self._emit("reconciled_world", cell=name, part=part, reason="delivered in the ledger")
        except DriverError as exc:
            self.console.print(f"[red]could not reconcile the restored world: {exc}[/red]")

    def _twin_clients(self) -> dict[str, int] | None:
        """Who said hello to the (last) twin's API: cells of ROS robots must not be among them."""
        if self.twin is None or not self.twin.alive():
            return None
        try:
            with TwinClient(self.twin.endpoint, timeout=STATUS_TIMEOUT_S * 4, client="launcher",
                            keys=self.keys) as twin:
                return twin.request("clients")
        except DriverError:
            return None

    def _status(self, name: str) -> dict | None:
        path = self.run_dir / f"control-{name}.json"
        try:
            endpoint = json.loads(path.read_text())["endpoint"]
            return request(endpoint, "status", timeout=STATUS_TIMEOUT_S, keys=self.keys, cell=name)["result"]
        except (OSError, ValueError, KeyError, TimeoutError):
            return None

    def _unhold_cells(self) -> None:
        """In simulation the launcher resumes cells Held only because the twin was gone (killed and
        restarted, or paused), once it answers again."""
        if time.monotonic() - self._statuses_at < STATUS_EVERY_S or self.twin is None or not self.twin.alive():
            return
        self._statuses_at = time.monotonic()
        probe = TwinClient(self.twin.endpoint, client="launcher", keys=self.keys)
        answers = probe.alive(STATUS_TIMEOUT_S)  # a paused twin is alive but does not answer
        probe.close()
        if not answers:
            return
        for name in list(self.procs):
            status = self._status(name)
            if status and status["state"] == "Held" and (status["fault"] or "").startswith(TWIN_LOST):
                try:
                    endpoint = json.loads((self.run_dir / f"control-{name}.json").read_text())["endpoint"]
                    ok = request(endpoint, "command", timeout=STATUS_TIMEOUT_S, keys=self.keys, cell=name,
                                 command="Unhold").get("ok")
                except (OSError, ValueError, KeyError, TimeoutError):
                    ok = None  # busy, paused or just died: asked again at the next round
                self._emit("unhold", cell=name, ok=ok, reason="the twin is back")

    def _diagnosis(self) -> list[str]:
        return diagnose({name: self._status(name) for name in self.config.cells if name in self.procs})

    def _stop_orphans(self) -> None:
        """``--resume``: stop what the dead launcher left running (only processes of this run)."""
        path = self.run_dir / "pids.json"
        if not path.exists():
            return
        pids = json.loads(path.read_text())
        orphans = [p for p in [*pids.get("cells", {}).values(), pids.get("bridge"), pids.get("twin")]
                   if _ours(p, str(self.effective))]
        for pid in orphans:
            os.kill(pid, signal.SIGCONT)  # a paused orphan could not act on SIGTERM
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT_S
        while any(_ours(p, str(self.effective)) for p in orphans) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in orphans:
            if _ours(pid, str(self.effective)):
                os.kill(pid, signal.SIGKILL)
        self._emit("resumed", stopped=orphans)
        self.console.print(f"resuming {self.run_dir}: stopped {len(orphans)} orphaned processes")

    def _stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for child in (self.bridge, self.twin):
            if isinstance(child, AnnouncedProcess):
                child.stop(STOP_WAIT_S)

    # -- the summary ----------------------------------------------------------------------------
    def _summary(self, outcome: Outcome, wall_s: float) -> dict:
        world = read_checkpoint(self.checkpoint)
        counts = count_parts(self.config, self.run_dir, world)
        cells = self._cell_states()
        finished = outcome.ended == "done" and all(c["state"] == "Complete" for c in cells.values())
        return {
            **counts.to_json(), "finished": finished, "ended": outcome.ended, "diagnosis": outcome.diagnosis,
            "sim_s": round(world.steps / self.config.twin.physics_hz, 3) if world else 0.0,
            "wall_s": round(wall_s, 3), "cells": cells, "restarts": dict(self.restarts), "run_dir": str(self.run_dir),
        }

    def _cell_states(self) -> dict:
        """Each cell's last PackML state (its events) and the parts it is done with (its ledger)."""
        cells = {name: {"state": "Stopped", "parts_done": sum(
            1 for s in custody_states(self.run_dir / f"ledger-{name}.sqlite").values() if s in ("GIVEN", "DELIVERED"))}
            for name in self.config.cells}
        for e in EventTail(self.run_dir / "events.jsonl").read():
            if e.get("cell") in cells and e["kind"] == "packml":
                cells[e["cell"]]["state"] = e["dest"]
        return cells


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def stop_on_sigterm() -> None:
    """SIGTERM stops the line as Ctrl-C does: cells and twin stopped, the summary written."""
    signal.signal(signal.SIGTERM, _interrupt)


def _ours(pid: int | None, marker: str) -> bool:
    """Whether ``pid`` is a live process whose command line mentions ``marker`` (a pid may have been
    reused by another program since it was written down)."""
    if not pid:
        return False
    try:
        return marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes() and pid != os.getpid()
    except OSError:
        return False


def live_launcher(run_dir: Path) -> int | None:
    """The pid of a launcher still supervising ``run_dir``, if any (``--resume`` must not start a
    second line on the same run directory)."""
    path = run_dir / "pids.json"
    pid = json.loads(path.read_text()).get("launcher") if path.exists() else None
    return pid if _ours(pid, "cellctl") else None


def ok(summary: dict, parts: int | None) -> bool:
    """The run did what was asked: finished, every part fed came out once, nothing left behind."""
    expected = parts if parts is not None else summary["parts_in"]
    return (summary["finished"] and summary["parts_out"] == summary["parts_in"] == expected
            and summary["lost"] == summary["duplicated"] == summary["stranded"] == 0)


def say(console: Console, s: dict) -> None:
    console.print(f"{s['parts_out']}/{s['parts_in']} parts out, lost {s['lost']}, duplicated {s['duplicated']}, "
                  f"stranded {s['stranded']}, {s['sim_s']:.1f}s sim in {s['wall_s']:.1f}s wall; "
                  + ", ".join(f"{n}: {c['state']} ({c['parts_done']} parts)" for n, c in s["cells"].items())
                  + ("" if s["finished"] else f"; not finished ({s['ended']})"))
    for part in s["stranded_parts"]:
        console.print(f"  stranded: {part['part']} on {part['where']}, ledger {part['ledger']} ({part['state']})")


def run_line(config_path: str | None, parts: int | None = None, run_dir: str | None = None, as_json: bool = False,
             timeout: float = 900.0, crash: dict[str, str] | None = None, driver: str = "twin",
             rate: float = 4.0, watchdog_s: float = WATCHDOG_S, resume: bool = False) -> int:
    """``cellctl run`` (and ``demo``); with ``resume`` the line of ``run_dir`` goes on."""
    console = Console(stderr=True, highlight=False)
    stop_on_sigterm()
    directory = Path(run_dir) if run_dir else Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    if resume:
        line = Line(directory, console, watchdog_s=watchdog_s, resume=True)
        console.print(f"line {directory / 'line.yaml'}: resuming, {len(line.config.cells)} cells")
    else:
        line = Line.create(config_path, directory, parts, console, crash, driver, rate, watchdog_s)
        console.print(f"line {config_path}: {len(line.config.cells)} cells, run directory {directory}")
    s = line.run(timeout)
    say(console, s)
    if as_json:
        print(json.dumps(s))
    return 0 if ok(s, line.parts) else 1
