"""One scenario, run headless in lockstep: the line under the launcher's usual supervision, its
faults injected at their sim times from outside the cells, its expectations checked against the
summary and the events.

Timing: the fault injector is a lockstep participant of its own (``scenario``, expected by the
twin's start barrier) that asks to be woken at each fault's time, so the twin stops exactly there
and the fault lands at that sim time — a kill or a robot fault at once; a PackML command or a link
cut as soon as the cell serves its control socket again (a cell answers ``busy`` while it waits
for a grant, so they are sent from a thread, retried, and land within a few control periods).
After its last fault the injector leaves, and the line runs on alone.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console

from cellctl.cell.control import request
from cellctl.cell.packml import State
from cellctl.line.launcher import Line
from cellctl.testkit.reproducible import fingerprint
from cellctl.testkit.scenarios.schema import (CommandFault, CutLinkFault, Expect, KillFault, LoadedScenario, MachineFault,
                                              RobotFault)
from cellctl.testkit.harness import read_events
from cellctl.drivers.errors import DriverError
from cellctl.drivers.twin_client import TwinClient
from cellctl.drivers.twin_lockstep import LockstepClock

INJECTOR = "scenario"  # its lockstep participant name
SEND_RETRY_S = 30.0  # wall s a command or cut is retried while the cell answers busy
TWIN_UP_WAIT_S = 60.0


@dataclass(frozen=True)
class Check:
    """One expectation: what the scenario expected, what the run gave."""

    name: str
    expected: str
    found: str
    ok: bool


@dataclass
class ScenarioResult:
    name: str
    path: str
    passed: bool
    checks: list[Check] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)  # the file's problems: nothing was run
    faults: list[dict] = field(default_factory=list)  # what was injected, when, with what result
    summary: dict = field(default_factory=dict)
    end_s: float | None = None  # sim time the last cell completed
    fingerprint: str = ""
    wall_s: float = 0.0
    run_dir: str = ""
    started: float = 0.0  # wall clock (epoch s) when its line was set up: with the events' wall times, the
    # share of wall_s before the first tick and after the last (benchmarks/campaign.py)

    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> ScenarioResult:
        return cls(**{**data, "checks": [Check(**c) for c in data["checks"]]})


class FaultInjector:
    def __init__(self, line: Line, scenario: LoadedScenario, console: Console) -> None:
        self.line, self.scenario, self.console = line, scenario, console
        self.applied: list[dict] = []
        self._lock = threading.Lock()
        self._senders: list[threading.Thread] = []
        self.error: str | None = None

    def run(self) -> None:
        try:
            twin = self._twin()
            if twin is None:
                return
            with twin:
                clock = LockstepClock(twin, INJECTOR, robots=[], grant_timeout=3600.0)
                for index, fault in enumerate(self.scenario.faults):
                    while clock.now() < fault.at - 1e-9:
                        clock.advance(fault.at)
                    self._apply(index, fault, clock.now(), twin)
                clock.close()
        except DriverError as exc:  # the twin went away (the line ended, or was given up)
            self.error = f"{type(exc).__name__}: {exc}"

    def join(self, timeout: float) -> None:
        for sender in self._senders:
            sender.join(timeout)

    def _twin(self) -> TwinClient | None:
        deadline = time.monotonic() + TWIN_UP_WAIT_S
        while self.line.twin is None or not self.line.twin.info:
            if time.monotonic() > deadline:
                self.error = "the twin did not come up"
                return None
            time.sleep(0.02)
        return TwinClient(self.line.twin.endpoint, timeout=10.0, client=INJECTOR, keys=self.line.keys)

    def _record(self, index: int, fault: object, at: float, target: str, result: str) -> None:
        kind = type(fault).__name__
        entry = {"index": index, "fault": kind, "target": target, "at": fault.at, "applied_at": round(at, 4),
                 "result": result}
        with self._lock:
            self.applied.append(entry)
        self.line._emit("scenario", **entry)
        self.console.print(f"scenario: {kind} {target} at sim {at:.2f}s: {result}")

    def _apply(self, index: int, fault: object, now: float, twin: TwinClient) -> None:
        if isinstance(fault, KillFault):
            proc = self.line.procs.get(fault.kill)
            try:
                os.kill(proc.pid, signal.SIGKILL)
                self._record(index, fault, now, fault.kill, f"SIGKILL pid {proc.pid}")
            except (AttributeError, ProcessLookupError):
                self._record(index, fault, now, fault.kill, "not running (finished or restarting): nothing to kill")
        elif isinstance(fault, RobotFault):
            robot = self.line.config.cells[fault.robot_fault].robot
            twin.request("inject_fault", robot=robot, reason=fault.reason)
            self._record(index, fault, now, fault.robot_fault, f"drive fault on robot {robot}")
        elif isinstance(fault, CommandFault):
            for command in fault.command.send:
                self._send(index, fault, now, fault.command.cell, "command", fault.command.when, command=command, by="scenario")
        elif isinstance(fault, MachineFault):
            state = twin.request("machine_fault", machine=fault.machine_fault, fault=fault.fault, reason=fault.reason)
            self._record(index, fault, now, fault.machine_fault, f"{fault.fault}: machine {state['status']}"
                                                                  + (f" ({state['reason']})" if state["reason"] else ""))
        elif isinstance(fault, CutLinkFault):
            a, b = fault.cut_link
            self._send(index, fault, now, a, "cut_link", None, peer=b, seconds=fault.duration)
            self._send(index, fault, now, b, "cut_link", None, peer=a, seconds=fault.duration)

    def _send(self, index: int, fault: object, now: float, cell: str, op: str, when: str | None,
              **args: object) -> None:
        """A control request from a thread (the cell answers while it waits for the grant this
        injector holds), in order after the previous ones, retried while the cell is restarting.
        With ``when``, first wait (up to the scenario's timeout) until the cell's status shows that
        state."""
        previous = list(self._senders)

        def send() -> None:
            for earlier in previous:
                earlier.join()
            deadline = time.monotonic() + (self.scenario.spec.timeout if when else SEND_RETRY_S)
            result = f"the cell was never {when}" if when else "no answer"
            while time.monotonic() < deadline:
                control = self.line.rundir.read_control(cell)
                if control is None:  # not started yet, or restarting: asked again
                    time.sleep(0.05)
                    continue
                endpoint = control.endpoint
                try:
                    if when and request(endpoint, "status", timeout=1.0, keys=self.line.keys,
                                        cell=cell)["result"]["state"] != when:
                        time.sleep(0.02)
                        continue
                    reply = request(endpoint, op, timeout=1.0, keys=self.line.keys, cell=cell, **args)
                except (OSError, ValueError, KeyError, TimeoutError):
                    time.sleep(0.05)  # restarting: asked again
                    continue
                error = reply.get("error") or {}
                result = f"{error.get('code')}: {error.get('message')}" if error else "queued"
                break
            self._record(index, fault, now, cell, f"{op} {args}{f' when {when}' if when else ''}: {result}")

        thread = threading.Thread(target=send, name=f"scenario-{op}-{cell}", daemon=True)
        self._senders.append(thread)
        thread.start()


def evaluate(expect: Expect, summary: dict, events: list[dict]) -> tuple[list[Check], float | None]:
    """Every expectation the scenario names, against the run."""
    completes = [e["sim_time"] for e in events if e.get("kind") == "packml" and e.get("dest") == State.COMPLETE]
    finished = bool(summary.get("finished"))
    end_s = max(completes) if finished and completes else None
    checks = [Check(key, str(want), str(summary.get(key)), summary.get(key) == want)
              for key in ("parts_out", "lost", "duplicated", "stranded")
              if (want := getattr(expect, key)) is not None]
    if expect.within is not None:
        found = (f"finished at {end_s:.1f} s" if end_s is not None
                 else f"not finished (ended: {summary.get('ended')})")
        checks.append(Check("within", f"finished by {expect.within:g} s of sim time", found,
                            end_s is not None and end_s <= expect.within))
    for state in expect.never:
        hits = [e for e in events if e.get("kind") == "packml" and e.get("dest") == state]
        found = (f"{hits[0]['cell']} entered {state} at {hits[0]['sim_time']:.2f} s"
                 f"{f' (and {len(hits) - 1} more)' if len(hits) > 1 else ''}" if hits else "never")
        checks.append(Check(f"never {state}", f"no cell in {state}", found, not hits))
    if expect.throughput_min is not None:
        rate = summary.get("parts_out", 0) / end_s * 3600 if end_s else 0.0
        checks.append(Check("throughput_min", f">= {expect.throughput_min:g} parts/h of sim time",
                            f"{rate:.1f} parts/h" + ("" if end_s else " (not finished)"),
                            rate >= expect.throughput_min))
    return checks, end_s


def run_scenario(scenario: LoadedScenario, run_dir: Path, console: Console) -> ScenarioResult:
    started, started_at = time.monotonic(), time.time()
    line = Line.create(str(scenario.line_path), run_dir, scenario.spec.parts, console,
                       participants=[INJECTOR] if scenario.faults else [])
    line.plot = False  # a campaign's wall time goes to simulation: `cellctl report RUN_DIR` draws the timeline
    injector = FaultInjector(line, scenario, console)
    thread = threading.Thread(target=injector.run, name="scenario-faults", daemon=True)
    if scenario.faults:
        thread.start()
    summary = line.run(scenario.spec.timeout)
    if scenario.faults:
        thread.join(15.0)
        injector.join(5.0)
    events = read_events(run_dir)
    checks, end_s = evaluate(scenario.spec.expect, summary, events)
    faults = sorted(injector.applied, key=lambda f: f["index"])
    missing = len(scenario.faults) - len({f["index"] for f in faults})
    if missing > 0:  # the line finished (or died) before them: said, not hidden
        faults.append({"fault": "not injected", "count": missing, "why": injector.error or "the line ended first"})
    return ScenarioResult(scenario.name, str(scenario.path), all(c.ok for c in checks), checks, [], faults,
                          summary, end_s, fingerprint(events), round(time.monotonic() - started, 2), str(run_dir), started_at)
