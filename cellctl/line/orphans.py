"""Processes a dead launcher left running. The launcher writes its own pid and its children's to
the run directory; ``--resume`` stops the ones still alive before it starts the line again, and
refuses to start a second launcher on a run directory that one still supervises."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from cellctl.rundir import RunDir

STOP_WAIT_S = 15.0


def ours(pid: int | None, marker: str) -> bool:
    """Whether ``pid`` is a live process whose command line mentions ``marker`` (a pid may have been
    reused by another program since it was written down)."""
    if not pid:
        return False
    try:
        return marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes() and pid != os.getpid()
    except OSError:
        return False


def live_launcher(run: RunDir) -> int | None:
    """The pid of a launcher still supervising ``run``, if any."""
    pid = run.read_json(run.pids).get("launcher")
    return pid if ours(pid, "cellctl") else None


def stop_orphans(run: RunDir) -> list[int]:
    """Stop what the dead launcher of ``run`` left running (only processes of this run): SIGTERM,
    then SIGKILL after STOP_WAIT_S. Returns the pids stopped."""
    pids = run.read_json(run.pids)
    marker = str(run.line_config)
    orphans = [p for p in [*pids.get("cells", {}).values(), pids.get("bridge"), pids.get("twin")] if ours(p, marker)]
    orphans += [p for p in [pids.get(n) for n in ("dashboard", "opcua", "mqtt")] if ours(p, str(run.path))]  # given the directory
    for pid in orphans:
        os.kill(pid, signal.SIGCONT)  # a paused orphan could not act on SIGTERM
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT_S
    while any(ours(p, marker) for p in orphans) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in orphans:
        if ours(pid, marker):
            os.kill(pid, signal.SIGKILL)
    return orphans
