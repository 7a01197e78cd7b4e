"""The twin's world, saved often enough to restart from it: a killed twin is a normal fault, and
the line must go on from where the world was, not from the config's first frame.

A checkpoint is one row in a SQLite file (WAL, written in one transaction, so a kill mid-write
leaves the previous checkpoint): sim time, every part with its pose and holder, each robot's joints,
gripper and IO, the feeds' counters and the part log (spawns and consumptions are the line's
own record of what went in and out), each machine's job (a print or a cycle goes on where it
was, as a real machine's controller keeps its job through a network outage) with the jobs it
started, and the next motion id (ids are never reused across a
restart, so a stale motion id of a dead twin can never name a new motion).

What it does not hold: running motions (a restart ends them; the cells were Held when the twin went
and re-plan from the restored world) and lockstep participants (they register again).
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

SCHEMA_VERSION = 1
MOTION_ID_GAP = 100_000  # motion ids after a restore start this far past the saved counter


@dataclass(frozen=True)
class SavedPart:
    id: str
    type: str
    position: tuple[float, float, float]
    orientation: tuple[float, float, float, float]
    held_by: str | None


@dataclass(frozen=True)
class SavedRobot:
    positions: tuple[float, ...]
    gripper: str  # "open" | "closed" (an actuation in progress counts as done)
    io: dict[str, bool]


@dataclass(frozen=True)
class WorldState:
    steps: int
    parts: tuple[SavedPart, ...]
    robots: dict[str, SavedRobot]
    made: dict[str, int]  # feed station -> parts made
    log: tuple[dict, ...]  # the part log
    next_motion: int
    fault_seq: int
    machines: dict[str, dict] = field(default_factory=dict)  # machine -> its state (twin.machines.SimMachine.saved)

    def to_json(self) -> str:
        return json.dumps({"steps": self.steps, "parts": [vars(p) for p in self.parts],
                           "robots": {n: vars(r) for n, r in self.robots.items()}, "made": self.made,
                           "log": list(self.log), "next_motion": self.next_motion, "fault_seq": self.fault_seq,
                           "machines": self.machines})

    @classmethod
    def from_json(cls, text: str) -> WorldState:
        d = json.loads(text)
        return cls(d["steps"], tuple(SavedPart(p["id"], p["type"], tuple(p["position"]), tuple(p["orientation"]),
                                               p["held_by"]) for p in d["parts"]),
                   {n: SavedRobot(tuple(r["positions"]), r["gripper"], dict(r["io"])) for n, r in d["robots"].items()},
                   dict(d["made"]), tuple(d["log"]), int(d["next_motion"]), int(d["fault_seq"]),
                   dict(d.get("machines", {})))


class CheckpointError(RuntimeError):
    pass


class Checkpoint:
    """The checkpoint file of one twin (``twin serve --checkpoint PATH``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            raise CheckpointError(f"{self.path}: checkpoint schema version {version}; this twin reads {SCHEMA_VERSION}")
        self._db.execute("CREATE TABLE IF NOT EXISTS checkpoint (id INTEGER PRIMARY KEY CHECK (id = 1), "
                         "sim_time REAL NOT NULL, wall_time REAL NOT NULL, state TEXT NOT NULL)")
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def save(self, state: WorldState, sim_time: float) -> None:
        self._db.execute("INSERT OR REPLACE INTO checkpoint VALUES (1, ?, ?, ?)",
                         (sim_time, time.time(), state.to_json()))

    def load(self) -> WorldState | None:
        row = self._db.execute("SELECT state FROM checkpoint WHERE id = 1").fetchone()
        return WorldState.from_json(row[0]) if row else None

    def close(self) -> None:
        self._db.close()


def read_checkpoint(path: Path) -> WorldState | None:
    """The world saved in ``path`` without writing to it (a run's summary); None if there is none."""
    if not Path(path).exists():
        return None
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT state FROM checkpoint WHERE id = 1").fetchone()
    except sqlite3.OperationalError:
        return None
    finally:
        db.close()
    return WorldState.from_json(row[0]) if row else None
