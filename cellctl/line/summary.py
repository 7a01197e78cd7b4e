"""What a run did to the parts, counted from the ledgers and the sinks, never from the controllers'
own counters nor from what the twin happens to still hold.

    parts_in    every part fed: the scene's initial parts and every spawn (feeds, ``spawn_part``)
    parts_out   every part a sink consumed (the sinks' log)
    lost        parts neither out nor resting on a station or in a gripper: a part dropped on the
                floor (or removed by hand) is lost, whatever the twin still holds
    stranded    parts left on the line (on a station or in a gripper) that are not out, each with
                the ledger that holds it, its custody state and where it is
    duplicated  from the ledgers' journals, over time: a part OWNED in two ledgers at the same
                moment, DELIVERED by two cells, or consumed twice

The physical end state comes from the twin's checkpoint file (saved on every part event and when
the twin stops), so the summary can be written on every exit path, even with the twin dead.
"""

from __future__ import annotations

import sqlite3
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console

from cellctl.custody import ledger as L
from cellctl.config.line import LineConfig
from cellctl.rundir import RunDir
from cellctl.twin.checkpoint import SavedPart, WorldState

SETTLED_CLEARANCE = 0.05  # m above a station's top within which a part's bottom counts as on it


@dataclass(frozen=True)
class StrandedPart:
    part: str
    where: str  # a station name, or "gripper of ROBOT"
    ledger: str | None  # the cell whose ledger holds it (OWNED, IN_MACHINE or IN_TRANSIT), if any
    state: str | None


@dataclass
class PartCounts:
    parts_in: int = 0
    parts_out: int = 0
    lost: int = 0
    duplicated: int = 0
    stranded: int = 0
    lost_parts: list[str] = field(default_factory=list)
    stranded_parts: list[StrandedPart] = field(default_factory=list)
    duplicated_parts: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def count_parts(config: LineConfig, run_dir: Path, world: WorldState | None) -> PartCounts:
    run = RunDir(run_dir)
    journals = {name: _journal(run.ledger(name)) for name in config.cells}
    custody = {name: custody_states(run.ledger(name)) for name in config.cells}
    log = list(world.log) if world else []
    fed = [p.id for p in config.parts] + [e["part"] for e in log if e["event"] == "spawned"]
    consumed = Counter(e["part"] for e in log if e["event"] == "consumed")
    on_line = {p.id: where_in_world(config, p) for p in (world.parts if world else ())}
    counts = PartCounts(parts_in=len(fed), parts_out=len(consumed))
    for part in dict.fromkeys(fed):
        if part in consumed:
            continue
        where = on_line.get(part)
        if where is None:
            counts.lost_parts.append(part)
            continue
        holder = next(((cell, rows[part]) for cell, rows in custody.items()
                       if rows.get(part) in (*L.HELD, L.IN_TRANSIT)), (None, None))
        counts.stranded_parts.append(StrandedPart(part, where, *holder))
    counts.duplicated_parts = sorted(_duplicated(journals) | {p for p, n in consumed.items() if n > 1})
    counts.lost, counts.stranded = len(counts.lost_parts), len(counts.stranded_parts)
    counts.duplicated = len(counts.duplicated_parts)
    return counts


def where_in_world(config: LineConfig, part: SavedPart) -> str | None:
    """The station the part rests on, the gripper that holds it, or None (on the floor)."""
    if part.held_by is not None:
        return f"gripper of {part.held_by}"
    size = config.part_types[part.type].size if part.type in config.part_types else (0, 0, 0)
    x, y, z = part.position
    bottom = (x, y, z - size[2] / 2)
    return next((name for name, s in config.stations.items() if s.holds(bottom, SETTLED_CLEARANCE)), None)


def _rows(path: Path, query: str) -> list[tuple]:
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute(query).fetchall()
    except sqlite3.OperationalError:  # a ledger that never got its schema (a cell killed at birth)
        return []
    finally:
        db.close()


def _journal(path: Path) -> list[tuple[float, int, str, str]]:
    return _rows(path, "SELECT wall_time, seq, part, state FROM journal ORDER BY seq")


def custody_states(path: Path) -> dict[str, str]:
    """part -> custody state, from a cell's ledger file (read-only; {} when it has none)."""
    return dict(_rows(path, "SELECT part, state FROM custody"))


def _duplicated(journals: dict[str, list[tuple[float, int, str, str]]]) -> set[str]:
    """Replay every ledger's journal in wall-time order: a part may be OWNED in one ledger at a
    time (the sender leaves OWNED, for IN_TRANSIT, before the receiver enters it) and DELIVERED once;
    a part IN_MACHINE is held by the cell whose machine it is in."""
    merged = sorted((wall, cell, seq, part, state) for cell, rows in journals.items() for wall, seq, part, state in rows)
    owners: defaultdict[str, set[str]] = defaultdict(set)
    delivered: defaultdict[str, set[str]] = defaultdict(set)
    found: set[str] = set()
    for _, cell, _, part, state in merged:
        if state in L.HELD:  # a part inside one cell's machine is in that cell's custody
            owners[part].add(cell)
            if len(owners[part]) > 1:
                found.add(part)
        elif not state.startswith("job:"):  # (a job's progress changes no custody)
            owners[part].discard(cell)
        if state == L.DELIVERED:
            delivered[part].add(cell)
            if len(delivered[part]) > 1:
                found.add(part)
    return found


def machine_jobs(world: WorldState | None) -> dict[str, dict[str, int]]:
    """machine -> job -> how many times the machine started it, by the machine's own record (the
    twin's checkpoint): a job the tending cell started twice shows as 2 (a failed job run again, too)."""
    return {name: dict(Counter(job for job, _ in m.get("started", []))) for name, m in (world.machines if world else {}).items()}


def ok(summary: dict, parts: int | None) -> bool:
    """The run did what was asked: finished, every part fed came out once, nothing left behind."""
    expected = parts if parts is not None else summary["parts_in"]
    return (summary["finished"] and summary["parts_out"] == summary["parts_in"] == expected
            and summary["lost"] == summary["duplicated"] == summary["stranded"] == 0)


def say(console: Console, s: dict) -> None:
    """The summary in one line (and a line per stranded part), for a person watching the run."""
    console.print(f"{s['parts_out']}/{s['parts_in']} parts out, lost {s['lost']}, duplicated {s['duplicated']}, "
                  f"stranded {s['stranded']}, {s['sim_s']:.1f}s sim in {s['wall_s']:.1f}s wall; "
                  + ", ".join(f"{n}: {c['state']} ({c['parts_done']} parts)" for n, c in s["cells"].items())
                  + ("" if s["finished"] else f"; not finished ({s['ended']})"))
    for part in s["stranded_parts"]:
        console.print(f"  stranded: {part['part']} on {part['where']}, ledger {part['ledger']} ({part['state']})")
