"""The event stream skills (and later cells) write: one dict per event, versioned, with sim and
wall time. ``docs/events.md`` documents the schema; reports and tests are built on it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Protocol

EVENT_SCHEMA = 1


class EventSink(Protocol):
    def emit(self, event: dict) -> None: ...


def make_event(kind: str, sim_time: float | None, **fields: object) -> dict:
    return {"schema": EVENT_SCHEMA, "kind": kind, "sim_time": sim_time, "wall_time": time.time(), **fields}


class ListSink:
    """Keeps events in memory (tests, the CLI's own summaries)."""

    def __init__(self) -> None:
        self.events: list[dict] = []

    def emit(self, event: dict) -> None:
        self.events.append(event)


class JsonlSink:
    """Appends one JSON line per event and flushes, so a crash loses at most the line in flight."""

    def __init__(self, path: str | Path) -> None:
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def emit(self, event: dict) -> None:
        self._file.write(json.dumps(event, default=str) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
