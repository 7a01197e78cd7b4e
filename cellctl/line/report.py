"""``cellctl report RUN_DIR``: KPIs and a timeline from a run directory's ``events.jsonl`` (the
documented event schema) — throughput, cycle time per cell, time in each PackML state,
availability and the time lost per cause, every fault with its kind and reason, every operator
command and every restart (a resumed run's too) — written as ``report.md`` and ``timeline.png``
next to the events. Everything is recomputed from the events; ``cellctl run`` and ``cellctl demo``
write it at the end of every run."""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import datetime
from dataclasses import dataclass, field
from pathlib import Path

from cellctl.cell.packml import State
from cellctl.events import read_events
from cellctl.rundir import RunDir

STATE_COLORS = {State.EXECUTE: "tab:green", State.SUSPENDED: "tab:orange", State.HELD: "tab:red", State.ABORTED: "black",
                State.COMPLETE: "tab:blue", State.IDLE: "tab:gray", State.STOPPED: "lightgray"}


STOPPED_STATES = {State.HELD, State.HOLDING, State.SUSPENDED, State.SUSPENDING, State.STOPPED, State.STOPPING,
                  State.ABORTED, State.ABORTING}


@dataclass
class CellKpis:
    parts: list[float] = field(default_factory=list)  # sim time of each part done
    states: list[tuple[float, str]] = field(default_factory=list)  # (sim time entered, state)
    faults: list[dict] = field(default_factory=list)  # the fault events
    commands: list[dict] = field(default_factory=list)  # operators' and the launcher's commands
    restarts: int = 0

    def lost_per_cause(self, end: float) -> dict[str, float]:
        """Sim seconds out of Execute while the run went on, by the cause in force: the fault kind
        last raised before the stop (or the state's name when none was)."""
        lost: dict[str, float] = defaultdict(float)
        spans = zip(self.states, [*self.states[1:], (end, "")])
        for (t, state), (t_next, _) in spans:
            if state in STOPPED_STATES and t_next > t:
                cause = next((f["fault_kind"] for f in reversed(self.faults) if f["sim_time"] <= t + 1e-9), state)
                lost[cause] += t_next - t
        return dict(lost)

    def availability(self, end: float) -> float | None:
        """Share of its working time — from its first Execute until its work order was Complete
        (or the run's end) — that the cell spent in Execute."""
        first = next((t for t, s in self.states if s == State.EXECUTE), None)
        done = next((t for t, s in reversed(self.states) if s == State.COMPLETE), end)
        if first is None or done <= first:
            return None
        return self.durations(done).get(State.EXECUTE, 0.0) / (done - first)

    def cycle_times(self) -> list[float]:
        return [b - a for a, b in zip(self.parts, self.parts[1:])]

    def durations(self, end: float) -> dict[str, float]:
        spans: dict[str, float] = defaultdict(float)
        for (t, state), (t_next, _) in zip(self.states, [*self.states[1:], (end, "")]):
            spans[state] += max(0.0, t_next - t)
        return dict(spans)


@dataclass
class LineKpis:
    """Every cell's KPIs, event by event: the report reads a finished run's events into it, the
    operator's page a live run's as they come."""

    cells: dict[str, CellKpis] = field(default_factory=lambda: defaultdict(CellKpis))
    end: float = 0.0  # the latest sim time seen

    def add(self, e: dict) -> None:
        if e.get("kind") == "process" and e.get("cell") and e.get("event") == "exited" and e.get("code") != 0:
            self.cells[e["cell"]].restarts += 1  # a cell the launcher restarts (a resumed run's too)
        cell, t = e.get("cell"), e.get("sim_time")
        if cell is None or not isinstance(t, (int, float)):
            return
        self.end = max(self.end, t)
        if e["kind"] == "packml":
            self.cells[cell].states.append((t, e["dest"]))
        elif e["kind"] == "part_done":
            self.cells[cell].parts.append(t)
        elif e["kind"] == "fault":
            self.cells[cell].faults.append(e)
        elif e["kind"] == "command":
            self.cells[cell].commands.append(e)


def _load(run_dir: Path) -> tuple[dict[str, CellKpis], float, dict]:
    kpis = LineKpis()
    run = RunDir(run_dir)
    for e in read_events(run.events, strict=False):
        kpis.add(e)
    return dict(kpis.cells), kpis.end, run.read_json(run.summary)


def _timeline(cells: dict[str, CellKpis], end: float, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # headless
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 1.4 + 0.6 * len(cells)))
    for row, (_, kpis) in enumerate(sorted(cells.items())):
        for (t, state), (t_next, _) in zip(kpis.states, [*kpis.states[1:], (end, "")]):
            ax.broken_barh([(t, max(t_next - t, 1e-6))], (row - 0.3, 0.6), color=STATE_COLORS.get(state, "tab:purple"))
        ax.plot(kpis.parts, [row] * len(kpis.parts), "k|", markersize=14)
        ax.plot([f["sim_time"] for f in kpis.faults], [row + 0.35] * len(kpis.faults), "rv", markersize=7)
        ax.plot([c["sim_time"] for c in kpis.commands], [row - 0.35] * len(kpis.commands), "b^", markersize=7)
    ax.set_yticks(range(len(cells)), sorted(cells))
    ax.set_xlabel("sim seconds from the start   (| part done, red ▼ fault, blue ▲ command)")
    ax.set_title(title, fontsize="small", loc="left", pad=22)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in STATE_COLORS.values()]
    ax.legend(handles, STATE_COLORS, loc="lower center", bbox_to_anchor=(0.5, 1.02), ncol=len(STATE_COLORS),
              fontsize="small", frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(run_dir: str | Path, plot: bool = True) -> str:
    """``report.md`` and, with ``plot``, ``timeline.png`` (matplotlib: ~0.4 s, which a scenario
    campaign spends on no simulation; ``cellctl report RUN_DIR`` draws it later)."""
    run = RunDir(Path(run_dir))
    cells, end, summary = _load(run.path)
    lines = [f"# Run report: {run.path.name}", ""]
    if summary:
        lines += [f"- parts in / out: {summary['parts_in']} / {summary['parts_out']}; lost {summary['lost']}, "
                  f"duplicated {summary['duplicated']}, stranded {summary.get('stranded', 0)}",
                  f"- finished: {'yes' if summary.get('finished') else 'no'} (ended: {summary.get('ended', '?')})",
                  f"- {summary['sim_s']} s of sim time in {summary['wall_s']} s of wall time "
                  f"({summary['sim_s'] / max(summary['wall_s'], 1e-9):.1f}x real time); restarts (from the "
                  f"events): {', '.join(f'{n} {k.restarts}' for n, k in sorted(cells.items()) if k.restarts) or 'none'}"]
        if summary["parts_out"] and end > 0:
            lines.append(f"- throughput: {summary['parts_out'] / end * 3600:.0f} parts per hour of sim time")
    lines += ["", "| cell | parts | cycle time median (s) | availability | time lost per cause (s) | faults | "
                  "restarts | time per PackML state (s) |", "|---|---|---|---|---|---|---|---|"]
    for name, k in sorted(cells.items()):
        cycles = k.cycle_times()
        median = f"{statistics.median(cycles):.2f}" if cycles else "-"
        states = ", ".join(f"{s} {d:.1f}" for s, d in sorted(k.durations(end).items(), key=lambda x: -x[1])
                           if d >= 0.05)  # acting states pass in a period or two: not worth a column
        available = k.availability(end)
        lost = ", ".join(f"{c} {s:.1f}" for c, s in sorted(k.lost_per_cause(end).items(), key=lambda x: -x[1])
                         if s >= 0.05) or "-"
        lines.append(f"| {name} | {len(k.parts)} | {median} | {'-' if available is None else f'{available:.0%}'} | "
                     f"{lost} | {len(k.faults)} | {k.restarts} | {states} |")
    faults = sorted((f for k in cells.values() for f in k.faults), key=lambda f: f["sim_time"])
    if faults:
        lines += ["", "## Faults", "", "| sim s | wall time | cell | kind | source | reason |", "|---|---|---|---|---|---|"]
        lines += [f"| {f['sim_time']:.2f} | {_iso(f['wall_time'])} | {f['cell']} | {f['fault_kind']} | {f['source']} | "
                  f"{f['reason']} |" for f in faults]
    commands = sorted((c for k in cells.values() for c in k.commands), key=lambda c: c["sim_time"])
    if commands:
        lines += ["", "## Commands", "", "| sim s | wall time | cell | command | by |", "|---|---|---|---|---|"]
        lines += [f"| {c['sim_time']:.2f} | {_iso(c['wall_time'])} | {c['cell']} | {c['command']} | {c['by']} |"
                  for c in commands]
    if summary.get("diagnosis"):
        lines += ["", "## Diagnosis", "", *(f"- {line}" for line in summary["diagnosis"])]
    if summary.get("stranded_parts") or summary.get("lost_parts"):
        lines += ["", "## Parts not out", ""]
        lines += [f"- lost: {part}" for part in summary.get("lost_parts", [])]
        lines += [f"- stranded: {p['part']} on {p['where']}, ledger {p['ledger'] or '-'} ({p['state'] or '-'})"
                  for p in summary.get("stranded_parts", [])]
    lines += ["", "![timeline](timeline.png)" if plot else f"(no timeline drawn: `cellctl report {run.path}` draws "
                                                             f"timeline.png)", ""]
    text = "\n".join(lines)
    run.report.write_text(text)
    if plot:
        _timeline(cells, end, run.timeline, f"run {run.path.name}" + (f" — {summary['config']}" if summary.get("config")
                                                                       else ""))
    return text


def _iso(wall: float) -> str:
    return datetime.fromtimestamp(wall).astimezone().isoformat(timespec="seconds")
