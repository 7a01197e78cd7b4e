"""What the operator's page shows, as one model fed by what a cell shows to the outside — its
status replies and, where the run directory is on this PC, its events — and rendered as one JSON
snapshot that the page draws.

Cells started one per PC share no run directory: then the view has only their status replies and
makes the events the page needs (state changes, parts done, faults) from the differences between
two replies, stamped with the cell's own clock. So KPIs, alarms and the last events come from one
code path either way (``cellctl.line.report.LineKpis``, the same as ``cellctl report``).
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from cellctl.config.line import LineConfig
from cellctl.faults import ADVICE, FaultKind, with_kind
from cellctl.line.report import LineKpis

MAX_EVENTS = 60  # the last events the page lists
MAX_PARTS = 2000  # parts whose whereabouts the view keeps (the oldest delivered ones go first)
QUIET_KINDS = frozenset({"skill", "step", "handoff", "handoff_link", "waiting", "replan"})  # too many for a person


@dataclass
class CellView:
    name: str
    robot: str
    take: str
    give: str
    upstream: str | None
    downstream: str | None
    status: dict | None = None  # the last status reply
    silent: str | None = "not heard from yet"  # why there is no fresh status, for a person
    faults: int = 0
    commands: int = 0


@dataclass
class LineView:
    """The line as the page draws it; ``on_status`` and ``on_events`` say whether anything changed."""

    config: LineConfig
    title: str
    derive_events: bool  # no run directory here: make events from status differences
    cells: dict[str, CellView] = field(default_factory=dict)
    events: deque = field(default_factory=lambda: deque(maxlen=MAX_EVENTS))
    parts: dict[str, dict] = field(default_factory=dict)  # part id → where it is
    kpis: LineKpis = field(default_factory=LineKpis)
    version: int = 0  # bumped on every change: the pusher sends a snapshot when it moved

    def __post_init__(self) -> None:
        for name in _in_flow_order(self.config):
            c = self.config.cells[name]
            self.cells[name] = CellView(name, c.robot, c.take, c.give, c.upstream, c.downstream)

    # -- feeding ---------------------------------------------------------------------------------
    def on_status(self, cell: str, status: dict | None, why: str | None = None) -> None:
        view = self.cells[cell]
        if status is None:
            if view.silent != why:
                view.silent = why
                self.version += 1
            return
        before, view.status, view.silent = view.status, status, None
        if self.derive_events:
            self.on_events(_differences(before, status))
        if status.get("part"):
            self._place(status["part"], {"state": "in work", "cell": cell, "station": None,
                                         "sim_time": status.get("sim_time")})
        if before != status or before is None:
            self.version += 1

    def on_events(self, events: list[dict]) -> None:
        for e in events:
            self.kpis.add(e)
            cell = self.cells.get(e.get("cell") or "")
            if cell is not None and e.get("kind") == "fault":
                cell.faults += 1
            if cell is not None and e.get("kind") == "command":
                cell.commands += 1
            if e.get("kind") == "custody" and isinstance(e.get("part"), str):
                self._place(e["part"], {"state": e.get("state"), "cell": e.get("cell"), "station": e.get("station"),
                                        "sim_time": e.get("sim_time")})
            if e.get("kind") not in QUIET_KINDS:
                self.events.append(_line(e))
            self.version += 1

    def _place(self, part: str, where: dict) -> None:
        self.parts.pop(part, None)  # re-inserted: the dict's order is the order of last change
        self.parts[part] = where
        while len(self.parts) > MAX_PARTS:
            del self.parts[next(iter(self.parts))]

    # -- rendering -------------------------------------------------------------------------------
    def snapshot(self) -> dict:
        return {"title": self.title, "version": self.version, "at": _iso(time.time()),
                "line": self._drawing(), "cells": {n: self._cell(v) for n, v in self.cells.items()},
                "counters": self._counters(), "kpis": self._kpis(), "events": list(self.events)[::-1],
                "alarms": self._alarms(), "parts": [{"part": p, **w} for p, w in reversed(self.parts.items())]}

    def _drawing(self) -> list[dict]:
        """Stations and cells in the order parts flow: station, cell, station, cell, ..."""
        items: list[dict] = []
        for view in self.cells.values():
            if not items or items[-1].get("station") != view.take:
                items.append(self._station(view.take))
            items += [{"cell": view.name, "robot": view.robot}, self._station(view.give)]
        return items

    def _station(self, name: str) -> dict:
        s = self.config.stations.get(name)
        role = "feed" if s is not None and s.feed is not None else "sink" if s is not None and s.sink else "handoff"
        return {"station": name, "role": role}

    def _cell(self, view: CellView) -> dict:
        s = view.status or {}
        links = {"robot": (s.get("links") or {}).get("robot")} if s else {}
        for role, link in (s.get("links") or {}).items():
            if role != "robot":
                links[role] = link
        return {"name": view.name, "robot": view.robot, "reachable": view.silent is None, "silent": view.silent,
                "state": s.get("state"), "state_number": s.get("state_number"), "skill": s.get("skill"),
                "phase": s.get("phase"), "part": s.get("part"), "parts_done": s.get("parts_done"),
                "work_order": s.get("work_order"), "reason": s.get("fault"), "fault_kind": s.get("fault_kind"),
                "waiting_for": s.get("waiting_for"), "links": _links(links), "faults": view.faults,
                "commands": view.commands}

    def _counters(self) -> dict:
        done = {n: (v.status or {}).get("parts_done") or 0 for n, v in self.cells.items()}
        last = [n for n, v in self.cells.items() if v.downstream is None]
        return {"parts_out": sum(done[n] for n in last), "in_work": sum(1 for v in self.cells.values()
                                                                          if (v.status or {}).get("part")),
                "faults": sum(v.faults for v in self.cells.values()),
                "commands": sum(v.commands for v in self.cells.values()), "parts_done": done}

    def _kpis(self) -> dict:
        end = self.kpis.end
        cells = {}
        for name, k in self.kpis.cells.items():
            cycles = k.cycle_times()
            available = k.availability(end)
            cells[name] = {"parts": len(k.parts), "cycle_s": round(statistics.median(cycles), 2) if cycles else None,
                           "availability": round(available, 3) if available is not None else None,
                           "lost_s": {c: round(s, 1) for c, s in sorted(k.lost_per_cause(end).items(),
                                                                          key=lambda x: -x[1]) if s >= 0.05}}
        out = self._counters()["parts_out"]
        return {"sim_s": round(end, 1), "throughput_per_h": round(out / end * 3600, 1) if end > 0 and out else None,
                "cells": cells}

    def _alarms(self) -> dict:
        active, history = [], []
        for name, view in self.cells.items():
            s = view.status or {}
            if s.get("fault"):
                active.append({"cell": name, "kind": s.get("fault_kind"), "reason": s["fault"],
                               "text": with_kind(s.get("fault_kind"), s["fault"]),
                               "source": s.get("fault_source"), "since": s.get("fault_since"),
                               "todo": _advice(s.get("fault_kind"))})
            if view.silent and view.status is not None:
                active.append({"cell": name, "kind": "silent", "reason": view.silent,
                               "text": with_kind("silent", view.silent), "source": "dashboard",
                               "since": None, "todo": "check the cell's PC and process; its neighbours hold if it "
                                                      "stays away"})
            history += [{"cell": name, **a, "text": with_kind(a.get("kind") or a.get("fault_kind"),
                                                               a.get("reason") or a.get("fault"))}
                        for a in s.get("alarm_history") or []]
        history.sort(key=lambda a: str(a.get("cleared") or ""), reverse=True)
        return {"active": active, "history": history}


def _in_flow_order(config: LineConfig) -> list[str]:
    """Cells from the first (no upstream) along their downstream neighbours; lone cells after."""
    order: list[str] = []
    for name, cell in config.cells.items():
        if cell.upstream is None or cell.upstream not in config.cells:
            while name is not None and name not in order and name in config.cells:
                order.append(name)
                name = config.cells[name].downstream
    return order + [n for n in config.cells if n not in order]


def _links(links: dict) -> list[dict]:
    out = []
    for role, link in links.items():
        if not isinstance(link, dict):
            continue
        up = link.get("connected")
        out.append({"role": role, "peer": link.get("peer") or role, "up": bool(up) if up is not None else None,
                    "state": link.get("state")})
    return out


def _advice(kind: str | None) -> str:
    try:
        return ADVICE[FaultKind(kind)]
    except ValueError:
        return "read the reason and the cell's log"


def _differences(before: dict | None, now: dict) -> list[dict]:
    """The events a cell wrote between two of its status replies, as far as they show."""
    t, cell, wall = now.get("sim_time"), now.get("cell"), time.time()
    base = {"cell": cell, "sim_time": t, "wall_time": wall, "derived": True}
    before = before or {}
    events = []
    if now.get("state") != before.get("state"):
        events.append({**base, "kind": "packml", "source": before.get("state"), "dest": now.get("state")})
    for _ in range(max(0, (now.get("parts_done") or 0) - (before.get("parts_done") or 0))):
        events.append({**base, "kind": "part_done", "part": before.get("part")})
    if now.get("fault") and (now.get("fault"), now.get("fault_since")) != (before.get("fault"), before.get("fault_since")):
        events.append({**base, "kind": "fault", "fault_kind": now.get("fault_kind"), "reason": now["fault"],
                       "source": now.get("fault_source")})
    return events


def _line(e: dict) -> dict:
    """One event as a line for a person."""
    kind, cell = e.get("kind"), e.get("cell") or e.get("source") or "line"
    text = {
        "packml": lambda: f"{e.get('source') or '?'} → {e.get('dest')}" + (f" ({e['event']})" if e.get("event") else ""),
        "custody": lambda: f"{e.get('part')} {e.get('state')}" + (f" at {e['station']}" if e.get("station") else ""),
        "fault": lambda: with_kind(e.get("fault_kind"), e.get("reason")),
        "command": lambda: f"{e.get('command')} by {e.get('user') or e.get('by')}" + (
            f" via {e.get('by')}" if e.get("user") else ""),
        "command_refused": lambda: f"{e.get('command')} refused: {e.get('reason')}",
        "part_done": lambda: f"part done {e.get('part') or ''}".rstrip(),
        "alarm_cleared": lambda: f"alarm cleared: {e.get('reason')} ({e.get('cleared_by')})",
        "process": lambda: f"process {e.get('event')}" + (f" (code {e['code']})" if e.get("code") is not None else ""),
    }.get(kind, lambda: ", ".join(f"{k} {v}" for k, v in e.items() if k not in ("schema", "kind", "cell", "source",
                                                                              "sim_time", "wall_time"))[:200])
    return {"sim_time": e.get("sim_time"), "at": _iso(e.get("wall_time") or time.time()), "cell": cell,
            "kind": kind, "text": text()}


def _iso(wall: float) -> str:
    return datetime.fromtimestamp(wall).astimezone().strftime("%H:%M:%S")
