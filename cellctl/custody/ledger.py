"""The custody ledger: which parts this cell is responsible for, in a SQLite file (WAL, one per
cell), so that no part is lost or duplicated across crashes.

A transfer spans two ledgers in two processes, so it is two-phase:

    sender   OWNED ──(placed on the handoff station)──► IN_TRANSIT ──(StopTransport / resync)──► GIVEN
    receiver                          (TransportFinished received) ──► OWNED ──► ... ──► DELIVERED (sink)

A machine the cell tends (a CNC, a printer) holds a part inside this cell's custody:

    OWNED ──(placed in its fixture)──► IN_MACHINE ──(taken out)──► OWNED
    (a print started for a part id minted here) ──► IN_MACHINE ──(taken off the bed)──► OWNED

``peer`` names the machine, and the ``jobs`` table what its job for the part has done (started,
done, failed, unloaded), so a restarted cell asks the machine about the right job and never starts
one twice.

Invariant: a part is never OWNED (or IN_MACHINE) in two ledgers; after resync exactly one ledger has it OWNED (or it
was DELIVERED). Every change is also appended to a journal, and commits are synchronous (FULL), so
a change reported to a peer is on disk first. The schema version is ``PRAGMA user_version``.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

SCHEMA_VERSION = 2  # 2: IN_MACHINE and the jobs table (a version 1 file is upgraded in place)


class CustodyState(StrEnum):
    """A part's state in one cell's ledger (the two-phase transfer above)."""

    OWNED = "OWNED"
    IN_TRANSIT = "IN_TRANSIT"
    GIVEN = "GIVEN"
    DELIVERED = "DELIVERED"
    MISSING = "MISSING"
    IN_MACHINE = "IN_MACHINE"  # inside a machine this cell tends (``peer``: the machine)


OWNED, IN_TRANSIT, GIVEN, DELIVERED, MISSING, IN_MACHINE = CustodyState
HELD = (OWNED, IN_MACHINE)  # in this cell's custody, in the hand, on its take station or in its machine


class JobState(StrEnum):
    """What a machine's job for a part has done, as this cell saw it (the machine is asked again)."""

    STARTED = "started"
    DONE = "done"
    FAILED = "failed"
    UNLOADED = "unloaded"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS custody (
    part TEXT PRIMARY KEY, part_type TEXT NOT NULL, state TEXT NOT NULL,
    source TEXT NOT NULL, peer TEXT, sim_time REAL NOT NULL, wall_time REAL NOT NULL);
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, part TEXT NOT NULL, state TEXT NOT NULL, peer TEXT,
    sim_time REAL NOT NULL, wall_time REAL NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    part TEXT NOT NULL, machine TEXT NOT NULL, state TEXT NOT NULL, runs INTEGER NOT NULL,
    sim_time REAL NOT NULL, wall_time REAL NOT NULL, PRIMARY KEY (part, machine));
"""


class LedgerError(RuntimeError):
    pass


@dataclass(frozen=True)
class Custody:
    part: str
    part_type: str
    state: str
    source: str  # where it came from: a station (feed) or the upstream cell
    peer: str | None  # the cell it is being given / was given to


class Ledger:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, 1, SCHEMA_VERSION):
            raise LedgerError(f"{self.path}: ledger schema version {version}; this cellctl reads version {SCHEMA_VERSION}")
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        self._db.close()

    # -- boots (an incarnation number makes handoff session ids unique and reproducible) --------
    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One real SQLite transaction (the connection is in autocommit mode, where ``with db:``
        opens none): everything inside is on disk together, or none of it is."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def next_boot(self) -> int:
        with self._transaction():
            row = self._db.execute("SELECT value FROM meta WHERE key='boot'").fetchone()
            boot = int(row[0]) + 1 if row else 1
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('boot', ?)", (str(boot),))
        return boot

    def mint(self, prefix: str) -> str:
        """A new part id ``PREFIX-N`` (N counted in this ledger): a part that came from a feed whose
        sensor gives presence only is named by the cell that takes it, and the name travels with it."""
        with self._transaction():
            row = self._db.execute("SELECT value FROM meta WHERE key=?", (f"minted:{prefix}",)).fetchone()
            n = int(row[0]) + 1 if row else 1
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"minted:{prefix}", str(n)))
        return f"{prefix}-{n}"

    def count_from(self, source: str) -> int:
        """Parts this ledger ever took from ``source`` (a feed station, an upstream cell)."""
        return self._db.execute("SELECT COUNT(*) FROM custody WHERE source=?", (source,)).fetchone()[0]

    def order_base(self) -> int:
        """Parts finished (GIVEN or DELIVERED) before the current work order began."""
        row = self._db.execute("SELECT value FROM meta WHERE key='order_base'").fetchone()
        return int(row[0]) if row else 0

    def start_order(self, finished: int) -> None:
        """A new work order begins with ``finished`` parts already done (restart-safe)."""
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('order_base', ?)", (str(finished),))

    def clean_shutdown(self, clean: bool) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('clean', ?)", ("1" if clean else "0",))

    def was_clean(self) -> bool:
        row = self._db.execute("SELECT value FROM meta WHERE key='clean'").fetchone()
        return row is None or row[0] == "1"

    # -- custody ---------------------------------------------------------------------------------
    def _set(self, part: str, state: str, sim_time: float, part_type: str | None = None,
             source: str | None = None, peer: str | None = None) -> None:
        now = time.time()
        with self._transaction():  # the row and its journal line together, or neither
            current = self.get(part)
            self._db.execute(
                "INSERT OR REPLACE INTO custody VALUES (?, ?, ?, ?, ?, ?, ?)",
                (part, part_type or (current.part_type if current else "?"), state,
                 source or (current.source if current else "?"), peer if peer is not None else
                 (current.peer if current else None), sim_time, now))
            self._db.execute("INSERT INTO journal (part, state, peer, sim_time, wall_time) VALUES (?, ?, ?, ?, ?)",
                             (part, state, peer, sim_time, now))

    def own(self, part: str, part_type: str, source: str, sim_time: float) -> None:
        current = self.get(part)
        if current is not None and current.state in (OWNED,):
            return  # idempotent: a repeated TransportFinished or a resync
        if current is not None and current.state not in (OWNED,):
            raise LedgerError(f"part {part} is {current.state} here: it cannot be owned again")
        self._set(part, OWNED, sim_time, part_type, source)

    def in_transit(self, part: str, peer: str, sim_time: float) -> None:
        self._require(part, (OWNED, IN_TRANSIT))
        self._set(part, IN_TRANSIT, sim_time, peer=peer)

    def given(self, part: str, sim_time: float) -> None:
        if self._require(part, (IN_TRANSIT, GIVEN)).state == IN_TRANSIT:
            self._set(part, GIVEN, sim_time)

    def delivered(self, part: str, sim_time: float) -> None:
        if self._require(part, (OWNED, DELIVERED)).state == OWNED:
            self._set(part, DELIVERED, sim_time)

    def in_machine(self, part: str, machine: str, sim_time: float, part_type: str | None = None) -> None:
        """Into ``machine``'s station: a part OWNED here placed in its fixture, or (``part_type``
        given, the part unknown here) the part a print job started for will become."""
        current = self.get(part)
        if current is None and part_type is not None:
            self._set(part, IN_MACHINE, sim_time, part_type, machine, peer=machine)
        elif self._require(part, (OWNED, IN_MACHINE)).state == OWNED or current.peer != machine:
            self._set(part, IN_MACHINE, sim_time, peer=machine)

    def out_of_machine(self, part: str, part_type: str, sim_time: float) -> None:
        """Taken out of its machine (in the gripper): OWNED again, as the type the job made of it."""
        if self._require(part, (IN_MACHINE, OWNED)).state == IN_MACHINE:
            self._set(part, OWNED, sim_time, part_type)
            self.job(part, self.get(part).peer, JobState.UNLOADED, sim_time)

    def job(self, part: str, machine: str, state: JobState, sim_time: float) -> None:
        """What ``machine``'s job for ``part`` did (a start counts a run); journalled as ``job:STATE``."""
        now = time.time()
        with self._transaction():
            runs = self._db.execute("SELECT runs FROM jobs WHERE part=? AND machine=?", (part, machine)).fetchone()
            n = (runs[0] if runs else 0) + (state == JobState.STARTED)
            self._db.execute("INSERT OR REPLACE INTO jobs VALUES (?, ?, ?, ?, ?, ?)",
                             (part, machine, state, n, sim_time, now))
            self._db.execute("INSERT INTO journal (part, state, peer, sim_time, wall_time) VALUES (?, ?, ?, ?, ?)",
                             (part, f"job:{state}", machine, sim_time, now))

    def job_state(self, part: str, machine: str) -> JobState | None:
        row = self._db.execute("SELECT state FROM jobs WHERE part=? AND machine=?", (part, machine)).fetchone()
        return JobState(row[0]) if row else None

    def job_runs(self, part: str, machine: str) -> int:
        row = self._db.execute("SELECT runs FROM jobs WHERE part=? AND machine=?", (part, machine)).fetchone()
        return row[0] if row else 0

    def in_machines(self) -> dict[str, Custody]:
        """machine -> the part inside it (IN_MACHINE here)."""
        return {c.peer: c for c in self.with_state(IN_MACHINE)}

    def missing(self, part: str, sim_time: float) -> None:
        self._set(part, MISSING, sim_time)

    def _require(self, part: str, states: tuple[str, ...]) -> Custody:
        current = self.get(part)
        if current is None or current.state not in states:
            raise LedgerError(f"part {part} is {current.state if current else 'unknown'} here, "
                              f"expected {' or '.join(states)}")
        return current

    # -- queries ---------------------------------------------------------------------------------
    def get(self, part: str) -> Custody | None:
        row = self._db.execute("SELECT part, part_type, state, source, peer FROM custody WHERE part=?",
                               (part,)).fetchone()
        return Custody(*row) if row else None

    def with_state(self, state: str) -> list[Custody]:
        rows = self._db.execute("SELECT part, part_type, state, source, peer FROM custody WHERE state=? "
                                "ORDER BY part", (state,)).fetchall()
        return [Custody(*r) for r in rows]

    def count(self, *states: str) -> int:
        marks = ", ".join("?" * len(states))
        return self._db.execute(f"SELECT COUNT(*) FROM custody WHERE state IN ({marks})", states).fetchone()[0]

    def received_from(self, source: str, limit: int = 100) -> list[str]:
        rows = self._db.execute("SELECT part FROM custody WHERE source=? ORDER BY sim_time DESC LIMIT ?",
                                (source, limit)).fetchall()
        return [r[0] for r in rows]
