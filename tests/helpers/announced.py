"""Waiting for a server a line starts beside itself (the page, OPC UA) to announce itself in the run
directory — or for the line to end first, which fails the test with the line's output."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path


def announced(path: Path, line: subprocess.Popen, timeout: float = 60) -> dict:
    """The JSON the server wrote to ``path`` (``dashboard.json``, ``opcua.json``) once it serves."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            pass  # not yet, or being written
        assert line.poll() is None, f"the line ended before {path.name} was written: {line.stdout.read()}"
        time.sleep(0.1)
    raise AssertionError(f"no {path.name}: the server did not announce itself")


def running(pid: int, command: str) -> bool:
    """``pid`` is still a ``cellctl COMMAND`` (not gone, not reused by another program)."""
    try:
        return command.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def gone_with(pid: int, command: str, what: str, timeout: float = 15) -> None:
    """Wait until the server ``pid`` has followed its SIGKILLed cell; fail saying ``what`` outlived it."""
    deadline = time.monotonic() + timeout
    while running(pid, command):
        assert time.monotonic() < deadline, f"{what} outlived the SIGKILLed cell"
        time.sleep(0.2)
