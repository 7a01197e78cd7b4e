"""What a person watching a cell sees: events go to ``events.jsonl`` (the record) and the ones worth
a line — PackML state changes, parts started and done, faults and cleared alarms, commands — to the
console as well, stamped with the wall clock a technician reads (ISO 8601) and, in simulation, the
sim time (a real robot's driver time is the wall clock itself)."""

from __future__ import annotations

from datetime import datetime

from rich.console import Console

from cellctl.skills.events import JsonlSink


class Tee:
    def __init__(self, sink: JsonlSink, console: Console, simulated: bool = True) -> None:
        self.sink, self.console, self.simulated = sink, console, simulated

    def emit(self, event: dict) -> None:
        self.sink.emit(event)
        line = _line(event)
        if line is not None:
            stamp = datetime.fromtimestamp(event["wall_time"]).astimezone().isoformat(timespec="seconds")
            sim = f" sim {event['sim_time']:7.2f}s" if self.simulated and event["sim_time"] is not None else ""
            self.console.print(f"{stamp}{sim}  {event.get('cell', '')}: {line}", highlight=False)


def _line(event: dict) -> str | None:
    kind = event["kind"]
    if kind == "packml":
        return f"{event['source']} -> {event['dest']}"
    if kind in ("part_start", "part_done"):
        return f"{kind.replace('_', ' ')} {event['part']}"
    if kind == "fault":
        return f"fault ({event.get('fault_kind')}): {event['reason']}"
    if kind == "alarm_cleared":
        return f"cleared ({event['fault_kind']}, by {event['cleared_by']}): {event['reason']}"
    if kind == "command":
        return f"{event['command']} from {event['by']}"
    if kind == "command_refused":
        return f"{event['command']} from {event['by']} refused: {event['reason']}"
    return None
