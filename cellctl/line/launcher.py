"""``cellctl run`` and ``cellctl demo``: a whole line on one machine — the twin and one process per
cell — supervised by state and progress, with a run directory and an honest summary.

The run directory holds ``line.yaml`` (the effective config), ``launch.json`` (how it was
launched), ``events.jsonl`` (every cell's state changes, skill transitions, handoff messages and
custody changes, plus the launcher's own), one ledger per cell, ``twin.sqlite`` (the twin's world
checkpoint), the processes' logs, ``pids.json`` and ``summary.json``. Supervision:

- a cell process that exits before its work order is done, for any reason, is restarted (it
  reconciles its ledger with the robot and stations, then resynchronises with its neighbours),
  when the restart policy (``cellctl.line.restart``) says it is due — never by sleeping;
- a twin that dies is restarted from its checkpoint (``cellctl.line.twin_keeper``) and the cells,
  Held for the lost twin, are Unheld;
- a progress watchdog ends a run in which no custody changes and no robot moves for ``watchdog``
  wall seconds, with a diagnosis of who waits for whom;
- the summary (``cellctl.line.summary``) is written on every exit path;
- ``--resume RUN_DIR`` continues a line whose launcher died: its orphans (``cellctl.line.orphans``)
  are stopped, the twin restored from its checkpoint and the cells restarted from their ledgers.

Every file name of the run directory is ``cellctl.rundir.RunDir``'s.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cellctl.cell.packml import Command, State
from cellctl.cell.control import request
from cellctl.events import read_events
from cellctl.faults import FaultKind
from cellctl.config.line import LineConfig
from cellctl.config.loader import load_config
from cellctl.line.orphans import stop_orphans
from cellctl.line.report import write_report
from cellctl.line.restart import RestartPolicy
from cellctl.line.summary import machine_jobs, count_parts, custody_states, ok, say
from cellctl.line.twin_keeper import TwinKeeper
from cellctl.line.watchdog import Watchdog, diagnose
from cellctl.processes.children import (AnnouncedProcess, DashboardProcess, ProcessFailed, RosbridgeProcess,
                                        SideProcess, TwinProcess)
from cellctl.processes.crash import ENV as CRASH_ENV
from cellctl.processes.signals import stop_on_sigterm
from cellctl.rundir import EventTail, RunDir
from cellctl.skills.events import JsonlSink, make_event
from cellctl.twin.checkpoint import read_checkpoint

POLL_S = 0.2
WATCHDOG_S = 60.0  # default wall s without progress before a run is declared stuck
STATUS_TIMEOUT_S = 0.5
STATUS_EVERY_S = 1.0  # wall s between looks for cells Held because the twin was lost
STOP_WAIT_S = 15.0
TWIN = "twin"  # the twin's name in the restart policy
DASHBOARD = "dashboard"  # the operator's page's
OPCUA = "opcua"  # the OPC UA server's
MQTT = "mqtt"  # the Sparkplug B publisher's
SIDE = (DASHBOARD, OPCUA, MQTT)  # servers beside the line: they show it to people and systems; none is needed to run
SIDE_NAMES = {DASHBOARD: "the operator's page", OPCUA: "OPC UA (OPC 30050 PackML)", MQTT: "Sparkplug B on MQTT"}


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
    ended: str  # done | timeout | stalled | starved | interrupted | gave_up
    diagnosis: list[str] = field(default_factory=list)


class Line:
    def __init__(self, run_dir: Path, console: Console, crash: dict[str, str] | None = None,
                 watchdog_s: float = WATCHDOG_S, resume: bool = False,
                 clock: Callable[[], float] = time.monotonic, dashboard: int | None = None,
                 opcua: int | None = None, mqtt: str | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.rundir = RunDir(self.run_dir)
        self.effective = self.rundir.line_config
        self.config = load_config(self.effective)
        self.keys = self.config.keys("launcher")  # CURVE, where the config has security
        launch = json.loads(self.rundir.launch.read_text())
        self.driver, self.rate, self.parts = launch["driver"], launch["rate"], launch["parts"]
        self.config_name = Path(launch.get("config") or self.effective).name
        self.console = console
        self.crash = crash or {}
        self.resume = resume
        self.clock = clock
        self.events = JsonlSink(self.rundir.events)
        self.tail = EventTail(self.rundir.events)
        self.watchdog = Watchdog(watchdog_s, clock)
        self.policy = RestartPolicy(clock=clock)
        self.keeper = TwinKeeper(self.rundir, self.config, self.keys, console, self._emit)
        self.procs: dict[str, subprocess.Popen] = {}
        self.due: dict[str, float] = {}  # process name → when the restart policy lets it start again
        self.bridge: RosbridgeProcess | None = None
        # the side servers' arguments (where to serve or publish; absent: not started), and their processes
        keys = ["--keys", self.config.security.keys, "--as", "launcher"] if self.config.security else []
        self.side_args = {name: a for name, a, given in (
            (DASHBOARD, ["--port", str(dashboard)], dashboard is not None),
            (OPCUA, ["--port", str(opcua), *keys], opcua is not None),
            (MQTT, ["--url", str(mqtt), *keys], mqtt is not None)) if given}
        self.side: dict[str, AnnouncedProcess] = {}
        self.plot = True  # draw timeline.png with the report (a scenario campaign leaves it to `cellctl report`)
        self._statuses_at = -STATUS_EVERY_S  # clock: when the cells' statuses were last looked at
        self._delivered = 0

    @property
    def restarts(self) -> dict[str, int]:
        return dict(self.policy.restarts)

    @property
    def twin(self) -> TwinProcess | None:
        """The twin process now serving the line (None while it is being restarted)."""
        return self.keeper.twin

    @classmethod
    def create(cls, config_path: str, run_dir: Path, parts: int | None, console: Console,
               crash: dict[str, str] | None = None, driver: str = "twin", rate: float = 4.0,
               watchdog_s: float = WATCHDOG_S, participants: Sequence[str] = (),
               clock: Callable[[], float] = time.monotonic, dashboard: int | None = None,
               opcua: int | None = None, mqtt: str | None = None) -> Line:
        """A new run directory for ``config_path`` (RunDirUnusable if it holds a run already or cannot be made)."""
        run = RunDir(run_dir)
        run.make_fresh()
        effective = prepare(load_config(config_path), parts, driver, rate, participants)
        run.line_config.write_text(yaml.safe_dump(effective, sort_keys=False))
        run.launch.write_text(json.dumps({"driver": driver, "rate": rate, "parts": parts, "config": str(config_path)}))
        return cls(run.path, console, crash, watchdog_s, clock=clock, dashboard=dashboard, opcua=opcua, mqtt=mqtt)

    def _emit(self, kind: str, **fields: object) -> None:
        self.events.emit(make_event(kind, None, source="launcher", **fields))

    # -- processes ----------------------------------------------------------------------------
    def _save_pids(self) -> None:
        self.rundir.write_json(self.rundir.pids, {
            "launcher": os.getpid(), "cells": {n: p.pid for n, p in self.procs.items()}, "twin": self.keeper.pid,
            "bridge": self.bridge.pid if self.bridge and self.bridge.proc else None,
            **{name: p.pid if p.proc else None for name, p in self.side.items()}})

    def _start_cell(self, name: str, first: bool) -> None:
        env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
        if first and name in self.crash:
            env[CRASH_ENV] = self.crash[name]
        log = open(self.rundir.cell_log(name), "a")  # noqa: SIM115 - the child owns it
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "cellctl", "cell", "run", str(self.effective), "--cell", name,
             "--twin", self.keeper.endpoint, "--run-dir", str(self.run_dir), "--start", "--exit-when-complete",
             "--supervised", *(["--rosbridge", self.bridge.url, "--simulated"] if self.bridge else [])],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        log.close()
        self._emit("process", cell=name, event="started", pid=self.procs[name].pid)
        self._save_pids()

    def _start_side(self, name: str) -> None:
        """A side server (the operator's page, OPC UA, Sparkplug B), a process of its own: it reads
        the run directory and the cells' sockets like any outside client, and one that dies takes
        nothing else with it."""
        args = self.side_args[name]
        if name == DASHBOARD:
            proc: AnnouncedProcess = DashboardProcess(self.run_dir, int(args[1]), log=self._side_log(name))
        else:
            proc = SideProcess(name, self.run_dir, args, log=self._side_log(name))
        self.side[name] = proc
        proc.start()
        if args[0] == "--port":  # an ephemeral port is kept: a restarted server serves where its clients reconnect
            args[1] = str(urlsplit(proc.info["url"]).port or args[1])
        self._save_pids()
        self._emit("process", event="started", pid=proc.pid, component=name)
        self.console.print(f"{SIDE_NAMES[name]}: {proc.info['url']}")

    def _keep_side(self) -> None:
        for name, proc in self.side.items():
            if proc.alive():
                continue
            if name not in self.due:
                self._emit("process", event="exited", code=proc.proc.returncode, component=name)
                self._schedule_restart(name, self._side_log(name), SIDE_NAMES[name])
            if self.due[name] <= self.clock():
                del self.due[name]
                self._start_side(name)

    def _side_log(self, name: str) -> Path:
        return {DASHBOARD: self.rundir.dashboard_log, OPCUA: self.rundir.opcua_log, MQTT: self.rundir.mqtt_log}[name]

    def _schedule_restart(self, name: str, log: Path, what: str) -> None:
        """Ask the restart policy when ``name`` may start again; give up on it past its limit."""
        due = self.policy.schedule(name)
        if due is None:
            raise GaveUp(f"{what} failed {self.policy.max_per_hour} times within an hour; its last log lines:\n"
                         f"{self.rundir.log_tail(log)}")
        self.due[name] = due

    # -- running --------------------------------------------------------------------------------
    def run(self, timeout: float) -> dict:
        started = self.clock()
        outcome = Outcome("gave_up")
        try:
            if self.resume:
                orphans = stop_orphans(self.rundir)
                self._emit("resumed", stopped=orphans)
                self.console.print(f"resuming {self.run_dir}: stopped {len(orphans)} orphaned processes")
            self.keeper.spawn(restore=self.resume, resume_at=self.tail.last_sim_time)
            if self.driver == "ros":
                self.keeper.wait_ready()
                self.bridge = RosbridgeProcess(str(self.effective), self.keeper.endpoint, log=self.rundir.rosbridge_log)
                self.bridge.start()
            for name in self.config.cells:  # while the twin loads: the cells import and connect meanwhile
                self._start_cell(name, first=not self.resume)
            if self.keeper.starting is not None:
                self.keeper.wait_ready()
            self._save_pids()
            for name in self.side_args:
                self._start_side(name)
            outcome = self._supervise(started, timeout)
        except KeyboardInterrupt:
            self.console.print("stopping the line (Ctrl-C)")
            self._emit("interrupted")
            outcome = Outcome("interrupted")
        except (GaveUp, ProcessFailed) as exc:
            self.console.print(f"[red]{exc}[/red]")
            outcome = Outcome("gave_up", str(exc).splitlines()[:25])
        finally:
            clients = self.keeper.clients()
            self._stop_all()
            summary = self._summary(outcome, self.clock() - started)
            summary["twin_clients"] = clients
            self.rundir.write_json(self.rundir.summary, summary)
            self.events.close()
            write_report(self.run_dir, plot=self.plot)
        return summary

    def _pause(self) -> None:
        """Wait POLL_S between rounds, or less: until a cell process ends (its pidfd is readable),
        so the last cell's exit ends the run, and a crash is answered, at once (Linux; elsewhere a
        plain sleep)."""
        if not hasattr(os, "pidfd_open"):
            time.sleep(POLL_S)
            return
        fds = []
        for proc in self.procs.values():
            try:
                fds.append(os.pidfd_open(proc.pid))
            except OSError:  # gone already (reaped): the next round sees it
                pass
        try:
            select.select(fds, [], [], POLL_S)
        finally:
            for fd in fds:
                os.close(fd)

    def _supervise(self, started: float, timeout: float) -> Outcome:
        total = self.parts or min((c.parts or 0) for c in self.config.cells.values()) or None
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=self.console, transient=True) as progress:
            task = progress.add_task("parts out", total=total)
            while self.procs or any(name not in (TWIN, *SIDE) for name in self.due):
                outcome = self.step(started, timeout)
                progress.update(task, completed=self._delivered)
                if outcome is not None:
                    return outcome
                self._pause()
        return Outcome("done")

    def step(self, started: float, timeout: float) -> Outcome | None:
        """One round of supervision; an Outcome when the run must end. Nothing in it waits: a
        restart not yet due is left for a later round."""
        events = self.tail.read()
        self.watchdog.saw(events)
        self._delivered += sum(1 for e in events if e.get("kind") == "custody" and e.get("state") == "DELIVERED")
        self._reap_cells()
        self._keep_twin()
        self._keep_side()
        self._start_due_cells()
        if (ended := self._look_at_cells()) is not None:
            return ended
        if self.clock() - started > timeout:
            self.console.print(f"[red]line not done after {timeout}s of wall time[/red]")
            return Outcome("timeout", self._diagnosis())
        if self.watchdog.stalled():
            statuses = self._statuses()
            held = {n: s for n, s in statuses.items() if s and s.get("fault_kind") == FaultKind.OPERATOR}
            if held:  # intended: the run waits for the operator, however long
                self.watchdog.rest()
                reasons = [f"{n}: {s['state']}, {s['fault']} since {s.get('fault_since')}" for n, s in held.items()]
                self._emit("operator_wait", cells=sorted(held), reasons=reasons)
                self.console.print("waiting for the operator: " + "; ".join(reasons))
                return None
            diagnosis = diagnose(statuses)
            self.console.print(f"[red]no custody change and no motion for {self.watchdog.quiet_s:.0f}s: "
                               f"the line is stuck[/red]\n" + "\n".join(diagnosis))
            self._emit("stalled", diagnosis=diagnosis)
            return Outcome("stalled", diagnosis)
        return None

    def _reap_cells(self) -> None:
        for name, proc in list(self.procs.items()):
            code = proc.poll()
            if code is None:
                continue
            del self.procs[name]
            self._emit("process", cell=name, event="exited", code=code)
            if code == 0:
                continue  # its work order is done (or an operator stopped it)
            self._schedule_restart(name, self.rundir.cell_log(name), f"cell {name}")
            why = f"signal {-code}" if code < 0 else f"exit status {code}"
            self.console.print(f"cell {name} died ({why}); restarting")

    def _start_due_cells(self) -> None:
        if not self.keeper.alive():
            return  # a cell starts against a live twin
        for name, due in list(self.due.items()):
            if name not in (TWIN, *SIDE) and due <= self.clock():
                del self.due[name]
                self._start_cell(name, first=False)

    def _keep_twin(self) -> None:
        """The twin died (or a restart failed): once the policy says it is due, start it again from
        its checkpoint, reconcile the restored world with the ledgers."""
        if self.keeper.alive():
            return
        if TWIN not in self.due:
            self.keeper.note_death()
            self._schedule_restart(TWIN, self.rundir.twin_log, "the twin")
        if self.due[TWIN] > self.clock():
            return
        del self.due[TWIN]
        if self.keeper.restore(self.tail.last_sim_time):
            self._save_pids()

    def _status(self, name: str) -> dict | None:
        control = self.rundir.read_control(name)
        if control is None:
            return None
        try:
            return request(control.endpoint, "status", timeout=STATUS_TIMEOUT_S, keys=self.keys, cell=name)["result"]
        except (OSError, ValueError, KeyError, TimeoutError):
            return None

    def _look_at_cells(self) -> Outcome | None:
        """Once a second: the cells' statuses. A line whose feed has given all it will and whose
        cells can do nothing more ends, with the reason; cells Held only for a lost twin are
        Unheld once it answers again."""
        if self.clock() - self._statuses_at < STATUS_EVERY_S or not self.keeper.alive():
            return None
        self._statuses_at = self.clock()
        statuses = self._statuses()
        waiting = (FaultKind.STARVED, FaultKind.BLOCKED, FaultKind.DRY_FEED)
        if any(s and s.get("fault_kind") == FaultKind.DRY_FEED for s in statuses.values()) and all(
                s and (s["state"] == State.COMPLETE or s["state"] == State.SUSPENDED and s.get("fault_kind") in waiting)
                for s in statuses.values()):
            reasons = [f"{n}: {s['state']}" + (f", {s['fault']}" if s.get("fault") else "") for n, s in statuses.items()]
            self.console.print("[red]the feed has given all it will; the line can do nothing more[/red]\n"
                               + "\n".join(reasons))
            return Outcome("starved", reasons)
        if self.keeper.answers():
            self._unhold_cells(statuses)
        return None

    def _unhold_cells(self, statuses: dict[str, dict | None]) -> None:
        """In simulation the launcher resumes cells Held only because the twin was gone (killed and
        restarted, or paused), once it answers again."""
        for name, status in statuses.items():
            if status and status["state"] == State.HELD and status.get("fault_kind") == FaultKind.TWIN_LOST:
                control = self.rundir.read_control(name)
                try:
                    ok = request(control.endpoint, "command", timeout=STATUS_TIMEOUT_S, keys=self.keys, cell=name,
                                 command=Command.UNHOLD, by="launcher").get("ok") if control else None
                except (OSError, ValueError, KeyError, TimeoutError):
                    ok = None  # busy, paused or just died: asked again at the next round
                self._emit("unhold", cell=name, ok=ok, reason="the twin is back")

    def _statuses(self) -> dict[str, dict | None]:
        return {name: self._status(name) for name in self.config.cells if name in self.procs}

    def _diagnosis(self) -> list[str]:
        return diagnose(self._statuses())

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
        for child in (*self.side.values(), self.bridge):
            if isinstance(child, AnnouncedProcess):
                child.stop(STOP_WAIT_S)
        self.keeper.stop(STOP_WAIT_S)

    # -- the summary ----------------------------------------------------------------------------
    def _summary(self, outcome: Outcome, wall_s: float) -> dict:
        world = read_checkpoint(self.rundir.checkpoint)
        counts = count_parts(self.config, self.run_dir, world)
        cells = self._cell_states()
        finished = outcome.ended == "done" and all(c["state"] == State.COMPLETE for c in cells.values())
        return {
            **counts.to_json(), "finished": finished, "ended": outcome.ended, "diagnosis": outcome.diagnosis,
            "sim_s": round(world.steps / self.config.twin.physics_hz, 3) if world else 0.0,
            "wall_s": round(wall_s, 3), "cells": cells, "restarts": self.restarts, "run_dir": str(self.run_dir),
            "config": self.config_name, "machine_jobs": machine_jobs(world),
        }

    def _cell_states(self) -> dict:
        """Each cell's last PackML state (its events) and the parts it is done with (its ledger)."""
        cells = {name: {"state": State.STOPPED, "parts_done": sum(
            1 for s in custody_states(self.rundir.ledger(name)).values() if s in ("GIVEN", "DELIVERED"))}
            for name in self.config.cells}
        for e in read_events(self.rundir.events, strict=False):
            if e.get("cell") in cells and e["kind"] == "packml":
                cells[e["cell"]]["state"] = e["dest"]
        return cells


def run_line(config_path: str | None, parts: int | None = None, run_dir: str | None = None, as_json: bool = False,
             timeout: float = 900.0, crash: dict[str, str] | None = None, driver: str = "twin",
             rate: float = 4.0, watchdog_s: float = WATCHDOG_S, resume: bool = False,
             dashboard: int | None = None, opcua: int | None = None, mqtt: str | None = None) -> int:
    """``cellctl run`` (and ``demo``); with ``resume`` the line of ``run_dir`` goes on."""
    console = Console(stderr=True, highlight=False)
    stop_on_sigterm()
    directory = Path(run_dir) if run_dir else RunDir.fresh(Path("runs"), time.strftime("%Y%m%d-%H%M%S"))
    if resume:
        line = Line(directory, console, watchdog_s=watchdog_s, resume=True, dashboard=dashboard, opcua=opcua,
                    mqtt=mqtt)
        console.print(f"line {line.effective}: resuming, {len(line.config.cells)} cells")
    else:
        line = Line.create(config_path, directory, parts, console, crash, driver, rate, watchdog_s,
                           dashboard=dashboard, opcua=opcua, mqtt=mqtt)
        console.print(f"line {config_path}: {len(line.config.cells)} cells, run directory {directory}")
    s = line.run(timeout)
    say(console, s)
    if as_json:
        print(json.dumps(s))
    return 0 if ok(s, line.parts) else 1
