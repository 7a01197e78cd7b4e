"""Cells by name for the operator's commands: ``status`` and ``cmd`` take a run directory (or a
line config, or one endpoint) and ``--cell NAME``, and when a cell does not answer they say why —
not started, exited and restarting, paused, or a secured line asked without keys — instead of a
bare "no answer". A finished run answers from its files at once."""

from __future__ import annotations

from datetime import datetime

from cellctl.line.addresses import CellAddress, TargetError, resolve, run_cells, run_events, why_silent
from cellctl.faults import with_kind
from cellctl.rundir import RunDir

__all__ = ["CellAddress", "TargetError", "resolve", "finished", "finished_cells", "why_silent", "where", "status_line"]


def finished(run: RunDir) -> str | None:
    """For a run whose launcher has written its summary and is gone: one line saying so."""
    from cellctl.line.orphans import live_launcher

    summary = run.read_json(run.summary)
    if not summary or live_launcher(run) is not None:
        return None
    at = datetime.fromtimestamp(run.summary.stat().st_mtime).astimezone().isoformat(timespec="seconds")
    return (f"run finished at {at} ({summary.get('ended', '?')}): {summary.get('parts_out', '?')}/"
            f"{summary.get('parts_in', '?')} parts out, lost {summary.get('lost', '?')}, stranded "
            f"{summary.get('stranded', '?')}; see {run.summary}")


def finished_cells(run: RunDir) -> dict[str, dict]:
    return run.read_json(run.summary).get("cells", {})


def where(run: RunDir, part: str) -> list[str]:
    """Where ``part`` is, from the ledgers (custody), the events (its last station) and the
    twin's checkpoint (what rests where): lines for a person."""
    from cellctl.line.summary import custody_states

    lines = []
    for name in run_cells(run):
        state = custody_states(run.ledger(name)).get(part)
        if state:
            lines.append(f"{part}: {state} in the ledger of {name}")
    changes = [e for e in run_events(run) if e.get("kind") == "custody" and e.get("part") == part]
    if changes:
        e = changes[-1]
        at = datetime.fromtimestamp(e["wall_time"]).astimezone().isoformat(timespec="seconds")
        lines.append(f"{part}: last custody change {e['state']} by {e['cell']} at sim {e['sim_time']:.1f} s ({at})"
                     + (f", at station {e['station']}" if e.get("station") else ""))
    placed = _in_world(run, part)
    if placed:
        lines.append(f"{part}: {placed}")
    return lines


def _in_world(run: RunDir, part: str) -> str | None:
    from cellctl.config.loader import load_config
    from cellctl.line.summary import where_in_world
    from cellctl.twin.checkpoint import read_checkpoint

    world = read_checkpoint(run.checkpoint)
    if world is None or not run.line_config.exists():
        return None
    saved = next((p for p in world.parts if p.id == part), None)
    if saved is None:
        consumed = [e for e in world.log if e.get("event") == "consumed" and e.get("part") == part]
        return f"consumed by the sink at {consumed[-1]['station']}" if consumed else "not in the twin's world"
    spot = where_in_world(load_config(run.line_config), saved)
    return f"in the twin's world: {spot}" if spot else "in the twin's world, on no station (on the floor)"


def status_line(r: dict) -> str:
    """One cell's status for a person."""
    line = (f"{r['cell']}: {r['state']} ({r['state_number']}), skill {r['skill'] or '-'}, "
            f"parts done {r['parts_done']}/{r['work_order'] or '-'}, part {r['part'] or '-'}")
    if r.get("fault"):
        line += f", {with_kind(r.get('fault_kind') or 'fault', r['fault'])}"
        if r.get("fault_since"):
            line += f" (since {r['fault_since']})"
    links = r.get("links") or {}
    down = [f"{v['peer']} {v['state']}" for v in links.values() if not v.get("connected")]
    if down:
        line += f"; links down: {', '.join(down)}"
    return line
