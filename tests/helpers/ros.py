"""Waiting for a ROS driver's link from a test: the driver reconnects in a thread beside its
caller and every call meanwhile raises ConnectionLost at once, so a script that wants to block
until the bridge is back polls (a cell's tick never does)."""

from __future__ import annotations

import time

from cellctl.drivers.errors import ConnectionLost
from cellctl.drivers.ros import RosDriver


def until_linked(driver: RosDriver, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            driver.check_link()
            return
        except ConnectionLost as exc:
            assert "reconnecting" in str(exc), exc
            assert time.monotonic() < deadline, f"not reconnected within {timeout}s: {exc}"
            time.sleep(0.05)
