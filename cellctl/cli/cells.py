"""Cells by name for the operator's commands: ``status`` and ``cmd`` take a run directory (or a
line config, or one endpoint) and ``--cell NAME``, and when a cell does not answer they say why —
not started, exited and restarting, paused, or a secured line asked without keys — instead of a
bare "no answer". A finished run answers from its files at once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cellctl.rundir import RunDir


@dataclass(frozen=True)
class CellAddress:
    cell: str
    control: str | None  # None: it has not announced its sockets
    status: str | None


class TargetError(ValueError):
    """A target or cell name that names no cell: the message says what was expected."""


def resolve(target: str, cell: str | None) -> tuple[list[CellAddress], RunDir | None]:
    """The cells ``target`` names (all, or ``cell``), and the run directory when it is one."""
    path = Path(target)
    if path.is_dir():
        run = RunDir(path)
        names = _run_cells(run)
        if not names:
            raise TargetError(f"{target}: no cells found (expected a run directory of `cellctl run` or `cell run`)")
        return [_announced(run, n) for n in _pick(names, cell, target)], run
    if path.is_file():
        from cellctl.config.loader import ConfigError, load_config

        try:
            config = load_config(path)
        except ConfigError as exc:
            raise TargetError(str(exc)) from None
        addresses = []
        for name in _pick(list(config.cells), cell, target):
            c = config.cells[name]
            if not c.control_port:
                raise TargetError(f"{target}: cells.{name}.control_port is 0 (chosen at start): give the run "
                                  f"directory instead, or fixed ports in the config")
            addresses.append(CellAddress(name, f"tcp://{c.host}:{c.control_port}",
                                         f"tcp://{c.host}:{c.status_port or c.control_port}"))
        return addresses, None
    if target.startswith(("tcp://", "ipc://")):
        return [CellAddress(cell or "", target, target)], None
    raise TargetError(f"{target}: expected a run directory, a line config or an endpoint (tcp://HOST:PORT)")


def _run_cells(run: RunDir) -> list[str]:
    if run.line_config.exists():
        import yaml

        data = yaml.safe_load(run.line_config.read_text()) or {}
        if isinstance(data.get("cells"), dict):
            return list(data["cells"])
    return [c.cell for c in run.controls()]


def _pick(names: list[str], cell: str | None, target: str) -> list[str]:
    if not cell:
        return names
    if cell not in names:
        raise TargetError(f"{target}: no cell {cell!r}; cells: {', '.join(names)}")
    return [cell]


def _announced(run: RunDir, name: str) -> CellAddress:
    control = run.read_control(name)
    return CellAddress(name, control.endpoint if control else None, control.status if control else None)


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


def why_silent(run: RunDir | None, address: CellAddress, has_keys: bool) -> str:
    """Why ``address`` did not answer, as far as the run's files tell."""
    name = address.cell or address.control or "?"
    if run is None:
        return f"{address.control}: no answer from the cell (is it running? on a secured line give --keys DIR)"
    if _secured(run) and not has_keys:
        return f"cell {name}: no answer: this line uses CURVE keys: give --keys DIR --as NAME"
    if address.control is None:
        return f"cell {name}: not started (it has announced no control socket in {run.path})"
    from cellctl.line.orphans import live_launcher, ours

    pid = run.read_json(run.pids).get("cells", {}).get(name)
    if ours(pid, str(run.line_config)):
        return f"cell {name}: not answering (pid {pid} is alive: paused, or busy starting); try again"
    exits = [e for e in _events(run) if e.get("kind") == "process" and e.get("cell") == name and e.get("event") == "exited"]
    code = exits[-1].get("code") if exits else None
    if code == 0:
        return f"cell {name}: done: its work order is complete and it has exited"
    how = f"signal {-code}" if isinstance(code, int) and code < 0 else f"exit status {code}"
    if live_launcher(run) is not None:
        crashes = sum(1 for e in exits if e.get("code") != 0)
        return f"cell {name}: restarting (exited with {how}; restart {crashes})"
    last = RunDir.log_tail(run.cell_log(name), 1)
    return f"cell {name}: exited ({how}); last log line: {last}"


def _secured(run: RunDir) -> bool:
    import yaml

    try:
        data = yaml.safe_load(run.line_config.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return False
    return bool(data.get("security"))


def _events(run: RunDir) -> list[dict]:
    from cellctl.rundir import EventTail

    return EventTail(run.events).read()


def where(run: RunDir, part: str) -> list[str]:
    """Where ``part`` is, from the ledgers (custody), the events (its last station) and the
    twin's checkpoint (what rests where): lines for a person."""
    from cellctl.line.summary import custody_states

    lines = []
    names = _run_cells(run)
    for name in names:
        state = custody_states(run.ledger(name)).get(part)
        if state:
            lines.append(f"{part}: {state} in the ledger of {name}")
    changes = [e for e in _events(run) if e.get("kind") == "custody" and e.get("part") == part]
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
        line += f", {r.get('fault_kind') or 'fault'}: {r['fault']}"
        if r.get("fault_since"):
            line += f" (since {r['fault_since']})"
    links = r.get("links") or {}
    down = [f"{v['peer']} {v['state']}" for v in links.values() if not v.get("connected")]
    if down:
        line += f"; links down: {', '.join(down)}"
    return line
