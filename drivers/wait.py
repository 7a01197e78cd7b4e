"""Blocking waits for scripts, tests and examples. Skills never call these: they poll a Motion's
status from their tick. Time passes through the driver's clock (``drivers/clock.py``): wall-clock
sleeps on a realtime twin or a robot, next-event grants on a lockstep twin, so the same script runs
in both. The bound is wall time (a liveness limit, DESIGN §3): a stalled backend raises."""

from __future__ import annotations

import time

from cellctl.drivers.contract import Motion
from cellctl.drivers.clock import Clock, WallClock
from cellctl.drivers.errors import Timeout
from cellctl.drivers.types import MotionStatus

HORIZON = 3600.0  # s of driver time: "until an event", in practice


def clock_of(obj: object) -> Clock:
    return getattr(obj, "clock", None) or WallClock()


def wait(motion: Motion, timeout: float = 30.0) -> MotionStatus:
    clock = clock_of(motion)
    deadline = time.monotonic() + timeout
    while not (status := motion.status).done:
        if time.monotonic() > deadline:
            raise Timeout(f"motion still {status.value} after {timeout}s of wall time")
        clock.advance(clock.now() + HORIZON)
    return status


def sleep(driver: object, seconds: float, timeout: float = 30.0) -> None:
    """Let ``seconds`` of driver time pass."""
    clock = clock_of(driver)
    target = clock.now() + seconds
    deadline = time.monotonic() + timeout
    while clock.now() < target - 1e-9:
        if time.monotonic() > deadline:
            raise Timeout(f"driver time did not advance {seconds}s within {timeout}s of wall time")
        clock.advance(target)
