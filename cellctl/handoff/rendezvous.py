"""Where cells on one machine find each other's handoff inbox when the config leaves the port to
the system (``handoff_port: 0``): each cell binds an ephemeral port and announces the endpoint it
got in ``RUN_DIR/handoff-NAME.json``; a neighbour reads it from there. A restarted cell binds the
port it announced before, so its neighbours' sockets reconnect to it by themselves."""

from __future__ import annotations

import json
import time
from pathlib import Path

ANNOUNCE_WAIT = 30.0  # wall s to wait for a neighbour's announcement


class NeighbourNotFound(RuntimeError):
    pass


def _path(run_dir: Path, cell: str) -> Path:
    return run_dir / f"handoff-{cell}.json"


def announced(run_dir: Path, cell: str) -> str | None:
    path = _path(run_dir, cell)
    try:
        return json.loads(path.read_text())["endpoint"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def announce(run_dir: Path, cell: str, endpoint: str) -> None:
    tmp = _path(run_dir, cell).with_suffix(".tmp")
    tmp.write_text(json.dumps({"cell": cell, "endpoint": endpoint}))
    tmp.replace(_path(run_dir, cell))  # atomic: a reader never sees half a file


def wait_for(run_dir: Path, cell: str, timeout: float = ANNOUNCE_WAIT) -> str:
    deadline = time.monotonic() + timeout
    while (endpoint := announced(run_dir, cell)) is None:
        if time.monotonic() > deadline:
            raise NeighbourNotFound(f"neighbour {cell} announced no handoff inbox in {_path(run_dir, cell)} "
                                    f"within {timeout}s: start it with the same --run-dir, or give both cells "
                                    f"a handoff_port in the config")
        time.sleep(0.05)
    return endpoint
