"""Blocking waits for scripts, tests and examples. Skills never call these: they poll a Motion's
status from their tick. The bound is wall time (a liveness limit, DESIGN §3), so a stalled
backend raises instead of hanging."""

from __future__ import annotations

import time

from drivers.contract import Motion
from drivers.errors import Timeout
from drivers.types import MotionStatus

POLL_S = 0.005


def wait(motion: Motion, timeout: float = 30.0) -> MotionStatus:
    deadline = time.monotonic() + timeout
    while not (status := motion.status).done:
        if time.monotonic() > deadline:
            raise Timeout(f"motion still {status.value} after {timeout}s of wall time")
        time.sleep(POLL_S)
    return status
