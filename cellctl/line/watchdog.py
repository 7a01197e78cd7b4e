"""The launcher's progress watchdog: a line in which no custody changes and no robot moves for a
configured wall time is stuck, whatever state its cells say they are in (both cells in Execute
exchanging CheckAlive for ever is stuck too). It ends the run with a diagnosis naming who waits for
whom, read from each cell's status: its state, phase, part, the neighbour it waits for and that
link's state.

Progress is read from the run's ``events.jsonl`` as it grows (:class:`cellctl.rundir.EventTail`), so the watchdog
judges what the cells did, not what they report about themselves.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cellctl.cell.packml import State

PROGRESS_KINDS = frozenset({"custody", "skill", "part_done"})  # a custody change, a robot moving


class Watchdog:
    """Whether the line made progress within ``quiet_s`` wall seconds, on an injected clock."""

    def __init__(self, quiet_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.quiet_s = quiet_s
        self._clock = clock
        self._last = clock()

    def saw(self, events: list[dict]) -> None:
        if any(e.get("kind") in PROGRESS_KINDS for e in events):
            self._last = self._clock()

    def rest(self) -> None:
        """Quiet on purpose (an operator holds the line): start the count again."""
        self._last = self._clock()

    def quiet_for(self) -> float:
        return self._clock() - self._last

    def stalled(self) -> bool:
        return self.quiet_for() > self.quiet_s


def diagnose(statuses: dict[str, dict | None]) -> list[str]:
    """One line per cell: where it is and who it waits for (None: its control socket is silent)."""
    lines = []
    for name, s in statuses.items():
        if s is None:
            lines.append(f"{name}: not answering on its control socket (dead, paused or restarting)")
            continue
        where = f"{name}: {s['state']}"
        if s.get("phase"):
            where += f", phase {s['phase']}"
        if s.get("part"):
            where += f", part {s['part']}"
        if s.get("skill"):
            where += f", skill {s['skill']}"
        if s.get("fault"):
            where += f", fault: {s['fault']}"
        peer = s.get("waiting_for")
        if peer:
            link = next((l for l in s.get("links", {}).values() if l["peer"] == peer), None)
            state = f"link {link['state']}, {'connected' if link['connected'] else 'not connected'}" if link else ""
            where += f"; waits for {peer} ({state})"
        elif s["state"] == State.EXECUTE and not s.get("skill"):
            where += "; waits for a part on its take station"
        lines.append(where)
    return lines
