"""Test a line or a cell from the outside, as a partner's CI does: real processes (a twin, cells,
the launcher) on ephemeral loopback ports, started by the same commands an operator types, and
results read from what they write (the ``--json`` summary, ``events.jsonl``, the control socket).
The pytest fixtures of :mod:`cellctl.testkit.pytest_plugin` wrap these; they work without pytest too.

Every process runs in its own process group, and ``stop``/``close`` kill the whole group: nothing
a test starts outlives it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cellctl.cell.packml import Command, State
from cellctl.cell.controller import Cell, CellSetup
from cellctl.config.loader import load_config
from cellctl.cell.control import request
from cellctl.custody.ledger import Ledger
from cellctl.processes.children import TwinProcess
from cellctl import events
from cellctl.rundir import RunDir
from cellctl.drivers.fake import FakeDriver
from cellctl.drivers.fake_world import FakeWorld
from cellctl.skills.events import ListSink

CELLCTL = [sys.executable, "-m", "cellctl"]
LOCKSTEP = "lockstep"


def read_events(run_dir: Path) -> list[dict]:
    """The run's ``events.jsonl``, parsed and checked against the event schema (a line torn by a
    killed writer is skipped)."""
    return events.read_events(RunDir(Path(run_dir)).events)


def require_lockstep(config: str | Path) -> None:
    """Tests run the twin in lockstep (deterministic: the same run every time, however busy the
    machine); a realtime config is refused with the key to change."""
    mode = load_config(config).twin.mode
    if mode != LOCKSTEP:
        raise ValueError(f"{config}: twin.mode is {mode!r}; tests need 'lockstep' (deterministic runs): "
                         f"set `twin: {{mode: lockstep}}` in a test copy of the config")


class _Group:
    """A child in its own process group: killed as a whole, never left behind."""

    def __init__(self, args: Sequence[str], **popen: object) -> None:
        self.args = list(args)
        self.proc = subprocess.Popen(self.args, start_new_session=True, **popen)

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # whatever the group left (a cell's children)
        except ProcessLookupError:
            pass
        self.proc.wait()


@dataclass
class LineResult:
    """A finished run: ``summary`` is ``cellctl run --json``'s last line (parts in and out, lost,
    duplicated, stranded, finished, ...), ``events`` the parsed ``events.jsonl``."""

    summary: dict
    events: list[dict]
    run_dir: Path
    returncode: int
    stderr: str = field(repr=False, default="")

    def states(self, cell: str) -> list[str]:
        """The PackML states ``cell`` passed through, in order (its first state included)."""
        changes = [e for e in self.events if e.get("kind") == "packml" and e.get("cell") == cell]
        if not changes:
            raise AssertionError(f"no PackML state change of cell {cell!r} in {self.run_dir / 'events.jsonl'}; "
                                 f"cells seen: {sorted({e['cell'] for e in self.events if 'cell' in e})}")
        return [changes[0]["source"], *(e["dest"] for e in changes)]

    def assert_never(self, cell: str | None, state: str) -> None:
        """No cell (``cell=None``) or not ``cell`` ever entered ``state``."""
        hits = [e for e in self.events if e.get("kind") == "packml" and e.get("dest") == state
                and (cell is None or e.get("cell") == cell)]
        if hits:
            first = hits[0]
            raise AssertionError(f"{first['cell']} entered {state} at sim time {first.get('sim_time')} "
                                 f"(from {first['source']} on {first['event']}); "
                                 f"{len(hits)} time(s) in all")

    def visits(self, part: str) -> list[str]:
        """The stations ``part`` rested on, in order, from the cells' custody events."""
        out: list[str] = []
        for e in self.events:
            if e.get("kind") == "custody" and e.get("part") == part and e.get("station"):
                if not out or out[-1] != e["station"]:
                    out.append(e["station"])
        return out

    def assert_visited(self, part: str, stations: Sequence[str]) -> None:
        """``part`` rested on ``stations`` in this order (others may come between)."""
        seen = self.visits(part)
        remaining = iter(seen)
        if not all(any(s == v for v in remaining) for s in stations):
            raise AssertionError(f"{part} did not visit {list(stations)} in that order; it visited {seen}")


def run_line(config: str | Path, run_dir: Path, parts: int | None = None, timeout: float = 600.0,
             **options: object) -> LineResult:
    """``cellctl run CONFIG --json`` to the end, in lockstep. ``options`` become flags
    (``watchdog=30`` → ``--watchdog 30``; ``True`` → the bare flag)."""
    require_lockstep(config)
    args = [*CELLCTL, "run", str(config), "--json", "--run-dir", str(run_dir), "--timeout", str(timeout)]
    if parts is not None:
        args += ["--parts", str(parts)]
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        args += [flag] if value is True else [] if value in (False, None) else [flag, str(value)]
    group = _Group(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = group.proc.communicate(timeout=timeout + 60)
    except subprocess.TimeoutExpired:
        group.kill()
        raise TimeoutError(f"`{' '.join(args)}` still running after {timeout + 60:.0f}s; killed") from None
    finally:
        group.kill()
    lines = out.strip().splitlines()
    try:
        summary = json.loads(lines[-1])
    except (IndexError, ValueError):
        raise AssertionError(f"`{' '.join(args)}` exited {group.proc.returncode} without a summary:\n{err[-4000:]}") \
            from None
    return LineResult(summary, read_events(run_dir), Path(run_dir), group.proc.returncode, err)


class CellUnderTest:
    """One cell process (``cellctl cell run``) against a twin, driven through its control socket
    as an operator or a line controller would."""

    def __init__(self, config: str | Path, name: str, twin: str, run_dir: Path, parts: int | None = None,
                 start: bool = False, ready_timeout: float = 60.0) -> None:
        self.name, self.run_dir = name, Path(run_dir)
        args = [*CELLCTL, "cell", "run", str(config), "--cell", name, "--twin", twin, "--run-dir", str(run_dir)]
        args += (["--parts", str(parts)] if parts is not None else []) + (["--start"] if start else [])
        self.run = RunDir(self.run_dir)
        self.log = self.run.cell_log(name)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("w") as log:
            self._group = _Group(args, stdout=log, stderr=subprocess.STDOUT)
        self.endpoint = self._wait_endpoint(ready_timeout)

    def _wait_endpoint(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while (control := self.run.read_control(self.name)) is None:
            if self._group.proc.poll() is not None:
                raise RuntimeError(f"cell {self.name} exited {self._group.proc.returncode} before it was ready:\n"
                                   f"{self.log.read_text()[-4000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"cell {self.name} opened no control socket within {timeout}s:\n"
                                   f"{self.log.read_text()[-4000:]}")
            time.sleep(0.05)
        return control.endpoint

    def status(self) -> dict:
        """The cell's status: state, skill, phase, parts_done, part, fault, links."""
        return self._ask("status")

    def command(self, command: str) -> dict:
        """A PackML command (Reset, Start, Stop, Hold, Unhold, Suspend, Unsuspend, Abort, Clear);
        an illegal one raises with the cell's refusal."""
        return self._ask("command", command=command)

    def _ask(self, op: str, **args: object) -> dict:
        reply = request(self.endpoint, op, timeout=10.0, **args)
        if "error" in reply:
            raise RuntimeError(f"cell {self.name} refused {op} {args or ''}: {reply['error']}")
        return reply["result"]

    def wait_state(self, state: str, timeout: float = 60.0) -> dict:
        """Poll the status until the cell is in ``state``; its last status on failure."""
        deadline = time.monotonic() + timeout
        status: dict = {}
        while time.monotonic() < deadline:
            status = self.status()
            if status["state"] == state:
                return status
            if self._group.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"cell {self.name} not {state} after {timeout}s; last status {status}; "
                             f"log:\n{self.log.read_text()[-3000:]}")

    def events(self) -> list[dict]:
        return read_events(self.run_dir)

    def stop(self) -> None:
        self._group.kill()


def start_twin(config: str | Path, **options: object) -> TwinProcess:
    """A twin server for ``config`` on ephemeral loopback ports (stop it with ``stop()``)."""
    twin = TwinProcess(str(config), **options)
    twin.start()
    return twin


class FakeCell:
    """One cell's real logic (PackML, skills, custody in a real SQLite ledger) on a
    :class:`~drivers.fake.FakeDriver` in a :class:`~drivers.fake_world.FakeWorld` built from the
    config: no process, no socket, virtual time, so a whole work order takes milliseconds. Its
    neighbours are not simulated: a cell that hands off is tested with ``cellctl_line``."""

    def __init__(self, config: str | Path, name: str, ledger: Path, parts: int | None = None,
                 simulated: bool = True) -> None:
        line = load_config(config)
        robot = line.cells[name].robot
        self.world = FakeWorld.from_config(line)
        self.driver = FakeDriver.from_config(robot, line.robots[robot], self.world)
        self.events = ListSink()
        self.cell = Cell(CellSetup.from_config(line, name, self.driver, self.world, Ledger(ledger), self.events,
                                               self.world.locate, work_order=parts, simulated=simulated,
                                               wall=self.world.clock.now))

    def run_until(self, state: str, start: bool = True, max_ticks: int = 100_000) -> None:
        """Tick (sending Reset, then Start at Idle, with ``start``) until the cell is in ``state``."""
        if start and self.cell.state == State.STOPPED:
            self.cell.command(Command.RESET)
        for _ in range(max_ticks):
            if self.cell.state == state:
                return
            self.cell.tick()
            if start and self.cell.state == State.IDLE:
                self.cell.command(Command.START)
                start = False
            self.world.clock.advance(self.cell.wake_hint())
        raise AssertionError(f"cell {self.cell.name} not {state} after {max_ticks} ticks "
                             f"(sim time {self.world.clock.now():.1f}s); status {self.cell.status()}")
