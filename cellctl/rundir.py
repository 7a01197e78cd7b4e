"""A run directory: what a line (or a lone cell) leaves on disk, and the one place that names its
files and reads them back.

Every process of a run writes here: the launcher its effective config, how it was launched, its
children's pids, the summary and the report; each cell its events, its ledger, its log and the
endpoints of its control and status sockets; the twin its world checkpoint. Processes that die and
come back, ``cellctl status`` and the report find each other only through these names, so they are
spelled out once, here, and read with readers that survive a writer killed mid-line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ControlFile:
    """Where a cell answers: its control socket (operators and the launcher) and its read-only
    status socket (observers)."""

    cell: str
    endpoint: str
    status: str


class EventTail:
    """The events appended to a JSONL file since the last read. A line still being written waits
    for the next read; a line torn by a writer killed mid-write is skipped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self.last_sim_time = 0.0  # the latest sim time any participant stamped an event with

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self._offset += end
        events = []
        for line in data[:end].splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a torn line of a process killed mid-write
            if isinstance(event, dict):
                events.append(event)
                t = event.get("sim_time")
                if isinstance(t, (int, float)) and t > self.last_sim_time:
                    self.last_sim_time = float(t)
        return events


class RunDirUnusable(ValueError):
    """A new run asked for a directory that holds another run, or for a path it cannot make a
    directory of (a file is there, no permission)."""


def make_dir(path: Path) -> None:
    """Make a directory for runs (and its parents): RunDirUnusable saying why it cannot be."""
    if path.exists() and not path.is_dir():
        raise RunDirUnusable(f"run directory {path} is a file, not a directory: give a new --run-dir")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirUnusable(f"cannot make the run directory {path}: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class RunDir:
    """The files of one run directory, by role."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    # -- the line's files ------------------------------------------------------------------------
    @property
    def line_config(self) -> Path:
        """The effective line config every process of the run reads."""
        return self.path / "line.yaml"

    @property
    def launch(self) -> Path:
        """How the line was launched (driver, rate, parts): ``--resume`` launches it the same way."""
        return self.path / "launch.json"

    @property
    def events(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def checkpoint(self) -> Path:
        """The twin's world, saved as it runs: a restarted twin is restored from it."""
        return self.path / "twin.sqlite"

    @property
    def pids(self) -> Path:
        return self.path / "pids.json"

    @property
    def dashboard(self) -> Path:
        """Where the operator's page serves (``{"url", "login"}``), while it runs."""
        return self.path / "dashboard.json"

    @property
    def dashboard_log(self) -> Path:
        return self.path / "dashboard.log"

    @property
    def opcua(self) -> Path:
        """Where the OPC UA server serves (``{"url", "secured", "login", "cells"}``), while it runs."""
        return self.path / "opcua.json"

    @property
    def opcua_log(self) -> Path:
        return self.path / "opcua.log"

    @property
    def mqtt(self) -> Path:
        """Where the Sparkplug B publisher publishes (``{"url", "group", "edge", "topics", "cells", "pid"}``), while it runs."""
        return self.path / "mqtt.json"

    @property
    def mqtt_bd_seq(self) -> Path:
        """The publisher's last Sparkplug ``bdSeq`` (a restarted one goes on from it)."""
        return self.path / "mqtt-bdseq.json"

    @property
    def mqtt_log(self) -> Path:
        return self.path / "mqtt.log"

    @property
    def screenshots(self) -> Path:
        """Pictures of the operator's page (the tests save theirs here, a CI artefact)."""
        return self.path / "screenshots"

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    @property
    def report(self) -> Path:
        return self.path / "report.md"

    @property
    def timeline(self) -> Path:
        return self.path / "timeline.png"

    @property
    def twin_log(self) -> Path:
        return self.path / "twin.log"

    @property
    def rosbridge_log(self) -> Path:
        return self.path / "rosbridge.log"

    # -- each cell's files -----------------------------------------------------------------------
    def cell_log(self, cell: str) -> Path:
        return self.path / f"cell-{cell}.log"

    def ledger(self, cell: str) -> Path:
        return self.path / f"ledger-{cell}.sqlite"

    def control(self, cell: str) -> Path:
        return self.path / f"control-{cell}.json"

    # -- readers and writers ---------------------------------------------------------------------
    def missing(self) -> list[str]:
        """The files a line's run directory must have to be resumed, that this one lacks."""
        return [p.name for p in (self.line_config, self.launch) if not p.exists()]

    def earlier_run(self) -> list[str]:
        """The files of a run this directory already holds. A new line started here would take
        them for its own (the cells' ledgers say their parts were delivered, the events mix two
        runs), so it starts only in a directory without them; ``--resume`` continues that run."""
        found = [p for p in (self.line_config, self.launch, self.events, self.checkpoint) if p.exists()]
        return [p.name for p in (*found, *sorted(self.path.glob("ledger-*.sqlite")))]

    def make_fresh(self) -> None:
        """Create the directory for a new run: RunDirUnusable when it holds a run already, or
        cannot be made."""
        if held := self.earlier_run():
            raise RunDirUnusable(f"run directory {self.path} holds a run already ({', '.join(held)}): give a new "
                                 f"--run-dir, or continue that run with `cellctl run --resume {self.path}`")
        make_dir(self.path)

    @staticmethod
    def fresh(parent: Path, name: str) -> Path:
        """``parent/name``, or ``parent/name-2``, ``-3``… when that is taken (two runs started in the
        same second get a directory each)."""
        path, n = parent / name, 1
        while path.exists():
            n += 1
            path = parent / f"{name}-{n}"
        return path

    def write_control(self, control: ControlFile) -> None:
        tmp = self.control(control.cell).with_suffix(".tmp")
        tmp.write_text(json.dumps({"cell": control.cell, "endpoint": control.endpoint, "status": control.status}))
        tmp.replace(self.control(control.cell))  # atomic: a reader never sees half a file

    def read_control(self, cell: str) -> ControlFile | None:
        """The cell's announced sockets, or None when it has announced none (yet)."""
        return _control(self.control(cell))

    def controls(self) -> list[ControlFile]:
        """Every cell that announced its sockets here, by name."""
        found = (_control(p) for p in sorted(self.path.glob("control-*.json")))
        return [c for c in found if c is not None]

    def read_json(self, path: Path) -> dict:
        """One of the run's JSON files; {} when it is absent or unreadable (a run cut short)."""
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def write_json(self, path: Path, data: dict) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(path)

    @staticmethod
    def log_tail(path: Path, lines: int = 20) -> str:
        """The last lines of a process's log, for a report of why it gave up."""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"


def _control(path: Path) -> ControlFile | None:
    try:
        data = json.loads(path.read_text())
        return ControlFile(data["cell"], data["endpoint"], data.get("status", data["endpoint"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
