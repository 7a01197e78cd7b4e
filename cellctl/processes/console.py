"""What a person watching a cell sees: events go to ``events.jsonl`` (the record) and the ones worth
a line — PackML state changes, parts started and done, faults — to the console as well."""

from __future__ import annotations

from rich.console import Console

from cellctl.skills.events import JsonlSink


class Tee:
    def __init__(self, sink: JsonlSink, console: Console) -> None:
        self.sink, self.console = sink, console

    def emit(self, event: dict) -> None:
        self.sink.emit(event)
        kind, t = event["kind"], event["sim_time"]
        if kind == "packml":
            self.console.print(f"t={t:7.2f}s  {event['cell']}: {event['source']} -> {event['dest']}")
        elif kind in ("part_start", "part_done", "fault"):
            detail = event.get("part") or event.get("reason")
            self.console.print(f"t={t:7.2f}s  {event.get('cell', '')}: {kind.replace('_', ' ')} {detail}")
