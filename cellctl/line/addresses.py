"""Where a line's cells answer: the cells a run directory, a line config with fixed ports or one
endpoint names, with their control and status endpoints. ``cellctl status``, ``cellctl cmd`` and the
operator's page find cells the same way."""

from __future__ import annotations

from dataclasses import dataclass
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
        names = run_cells(run)
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


def run_cells(run: RunDir) -> list[str]:
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
    exits = [e for e in run_events(run) if e.get("kind") == "process" and e.get("cell") == name and e.get("event") == "exited"]
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


def run_events(run: RunDir) -> list[dict]:
    from cellctl.rundir import EventTail

    return EventTail(run.events).read()
