"""``cellctl chaos CONFIG --parts N --seed S [--kills K] [--pauses P] [--twin-kills T] [--json]``:
the line under seeded faults sent from outside its processes, as an operator's bad day brings
them — SIGKILLs of cells and SIGSTOP pauses of cells for 1–10 s (two in three longer than the
twin's silence timeout), of both at least a third while a handoff is in Transporting — and SIGKILLs
of the twin. Not the named crash points: the processes do not know a fault is coming.

The launcher supervises as it always does; this module only injects. The last stdout line (with
``--json``) is the run's summary plus ``faults``: how many of each kind were sent (fewer than
asked when the line finished first). Exit 0 only when the line finished and nothing was lost,
duplicated or stranded.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console

from cellctl.line.launcher import Line
from cellctl.line.summary import ok, say
from cellctl.processes.signals import stop_on_sigterm
from cellctl.rundir import EventTail, RunDir

FIRST_FAULT_AFTER_S = 3.0  # wall s after the cells start: past start-up
GAP_S = (1.0, 3.5)  # wall s between faults, drawn uniformly
PAUSE_S = (1.0, 10.0)
TRANSPORT_WAIT_S = 60.0  # wall s to wait for a handoff in Transporting before killing anyway
TRANSPORT_FRESH_S = 3.0  # wall s a StartTransport without its end counts as a transport under way
TWIN_BACK_WAIT_S = 60.0


class TransportWatch:
    """Which cells are in a Transporting handoff, read from the handoff messages in the run's
    events as they are written: a StartTransport not yet followed by TransportFinished or
    StopTransport. Asking each cell for its status would miss most transports of a line running
    faster than real time (they last a fraction of a wall second)."""

    def __init__(self, events: Path) -> None:
        self.tail = EventTail(events)
        self._started: dict[frozenset[str], float] = {}  # the two cells of a transport → wall time seen

    def cells(self) -> set[str]:
        for e in self.tail.read():
            if e.get("kind") != "handoff" or not isinstance(e.get("peer"), str):
                continue
            pair = frozenset((str(e.get("cell")), e["peer"]))
            if e.get("type") == "StartTransport":
                self._started[pair] = time.monotonic()
            elif e.get("type") in ("TransportFinished", "StopTransport"):
                self._started.pop(pair, None)
        now = time.monotonic()
        return {cell for pair, seen in self._started.items() if now - seen < TRANSPORT_FRESH_S for cell in pair}


@dataclass(frozen=True)
class ChaosPlan:
    seed: int
    kills: int = 4
    pauses: int = 4
    twin_kills: int = 1


@dataclass
class FaultCounts:
    kill: int = 0
    pause: int = 0
    twin_kill: int = 0
    kill_in_transport: int = 0
    pause_in_transport: int = 0
    pause_over_silence: int = 0
    log: list[dict] = field(default_factory=list)  # each fault: kind, target, wall time, details


class Chaos:
    def __init__(self, line: Line, plan: ChaosPlan, console: Console) -> None:
        self.line, self.plan, self.console = line, plan, console
        self.rng = random.Random(plan.seed)
        self.faults = FaultCounts()
        self._stop = threading.Event()
        self._silence = line.config.twin.silence_timeout
        self.transports = TransportWatch(line.rundir.events)

    def stop(self) -> None:
        self._stop.set()

    def schedule(self) -> list[str]:
        """The faults in a seeded order. Twin kills go into the first half: a line that finishes
        before the schedule does (a short run) has still lost its twin, the rarest and hardest fault."""
        kinds = ["kill"] * self.plan.kills + ["pause"] * self.plan.pauses
        self.rng.shuffle(kinds)
        for _ in range(self.plan.twin_kills):
            kinds.insert(self.rng.randint(0, len(kinds) // 2), "twin_kill")
        return kinds

    def run(self) -> None:
        """Inject the plan's faults one after another while the line runs."""
        if self._idle(FIRST_FAULT_AFTER_S):
            return
        pauses = 0
        for kind in self.schedule():
            if self._idle(self.rng.uniform(*GAP_S)) or not self.line.procs:
                return
            # while fewer than half the kills (pauses) so far hit a transport, the next one waits for
            # one: the promise is a third or more, also when a wait finds none in TRANSPORT_WAIT_S
            if kind == "kill":
                self._kill(in_transport=self.faults.kill_in_transport * 2 < self.faults.kill + 1)
            elif kind == "pause":
                low = pauses % 3 == 2  # one in three may be shorter than the silence timeout
                self._pause(self.rng.uniform(PAUSE_S[0], self._silence) if low else
                            self.rng.uniform(min(self._silence + 0.5, PAUSE_S[1]), PAUSE_S[1]),
                            in_transport=self.faults.pause_in_transport * 2 < self.faults.pause + 1)
                pauses += 1
            else:
                self._kill_twin()

    def _idle(self, seconds: float) -> bool:
        """Wait, following the handoffs meanwhile (so a transport is judged by when it was seen);
        True when the run ended."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if self._stop.wait(min(left, 0.05)):
                return True
            self.transports.cells()
        return self._stop.is_set()

    def _record(self, kind: str, target: str, **details: object) -> None:
        entry = {"fault": kind, "target": target, "wall_time": time.time(), **details}
        self.faults.log.append(entry)
        self.line._emit("chaos", **entry)
        self.console.print(f"chaos: {kind} {target} " + " ".join(f"{k}={v}" for k, v in details.items()))

    def _cell(self, in_transport: bool) -> tuple[str, int, bool] | None:
        """A live cell to hit: with ``in_transport``, one whose handoff is in Transporting (waiting
        for one up to TRANSPORT_WAIT_S)."""
        deadline = time.monotonic() + (TRANSPORT_WAIT_S if in_transport else 0.0)
        while not self._stop.is_set():
            procs = dict(self.line.procs)
            if not procs:
                return None
            transporting = sorted(self.transports.cells() & set(procs))
            if in_transport and transporting:
                name = self.rng.choice(transporting)
                return name, procs[name].pid, True
            if time.monotonic() >= deadline:
                name = self.rng.choice(sorted(procs))
                return name, procs[name].pid, name in transporting
            time.sleep(0.01)
        return None

    def _hit(self, in_transport: bool, sig: signal.Signals) -> tuple[str, int, bool] | None:
        """Send ``sig`` to a cell chosen by :meth:`_cell`; None when there was none (or it just ended)."""
        target = self._cell(in_transport)
        if target is None:
            return None
        try:
            os.kill(target[1], sig)
        except ProcessLookupError:
            return None
        return target

    def _kill(self, in_transport: bool) -> None:
        if (target := self._hit(in_transport, signal.SIGKILL)) is None:
            return
        name, pid, transporting = target
        self.faults.kill += 1
        self.faults.kill_in_transport += transporting
        self._record("kill", name, pid=pid, in_transport=transporting)

    def _pause(self, seconds: float, in_transport: bool) -> None:
        if (target := self._hit(in_transport, signal.SIGSTOP)) is None:
            return
        name, pid, transporting = target
        self.faults.pause += 1
        self.faults.pause_in_transport += transporting
        self.faults.pause_over_silence += seconds > self._silence
        self._record("pause", name, pid=pid, seconds=round(seconds, 2), in_transport=transporting)
        try:
            self._idle(seconds)
        finally:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def _kill_twin(self) -> None:
        twin = self.line.twin
        if twin is None or not twin.alive():
            return
        pid = twin.pid
        os.kill(pid, signal.SIGKILL)
        self.faults.twin_kill += 1
        self._record("twin_kill", "twin", pid=pid)
        deadline = time.monotonic() + TWIN_BACK_WAIT_S  # one twin fault at a time: wait until it is back
        while not self._stop.is_set() and time.monotonic() < deadline:
            current = self.line.twin
            if current is not None and current.pid != pid and current.alive():
                return
            self._idle(0.1)


def run_chaos(config_path: str, parts: int, plan: ChaosPlan, run_dir: str | None = None, as_json: bool = False,
              timeout: float = 900.0, watchdog_s: float = 60.0) -> int:
    console = Console(stderr=True, highlight=False)
    stop_on_sigterm()
    directory = Path(run_dir) if run_dir else RunDir.fresh(Path("runs"), time.strftime("chaos-%Y%m%d-%H%M%S"))
    line = Line.create(config_path, directory, parts, console, watchdog_s=watchdog_s)
    console.print(f"chaos on {config_path}: seed {plan.seed}, {parts} parts, {plan.kills} kills, {plan.pauses} "
                  f"pauses, {plan.twin_kills} twin kills; run directory {directory}")
    chaos = Chaos(line, plan, console)
    thread = threading.Thread(target=chaos.run, name="chaos", daemon=True)
    thread.start()
    try:
        summary = line.run(timeout)
    finally:
        chaos.stop()
        thread.join()
    faults = asdict(chaos.faults)
    summary["faults"] = {k: v for k, v in faults.items() if k != "log"}
    summary["seed"] = plan.seed
    (directory / "chaos.json").write_text(json.dumps({"plan": asdict(plan), "faults": faults}, indent=2))
    say(console, summary)
    console.print("faults sent: " + ", ".join(f"{k} {v}" for k, v in summary["faults"].items()))
    if as_json:
        print(json.dumps(summary))
    return 0 if ok(summary, parts) else 1
