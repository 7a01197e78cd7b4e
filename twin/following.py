"""A real machine the twin follows: its driver (OctoPrint's REST API) polled in a thread of its
own, so the twin's stepping never waits on it. The twin's machine of that name shows the real
one's state, and a print the real printer finishes puts its part on the twin's bed — the physical
world the simulated robots reach into, as a digital twin mirrors the plant. The cells reach the
real machine through its own API, never through the twin."""

from __future__ import annotations

import threading

from cellctl.drivers.errors import DriverError
from cellctl.drivers.machine import MachineDriver, MachineState, MachineStatus

POLL_S = 0.5  # wall s between looks at the real machine


class Follower:
    def __init__(self, driver: MachineDriver) -> None:
        self._driver = driver
        self.latest = MachineState(MachineStatus.OFFLINE, reason="not asked yet")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"follow-{driver.describe().name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.latest = self._driver.state()
            except DriverError as exc:  # a refused key, a broken reply: shown as the machine's state
                self.latest = MachineState(MachineStatus.OFFLINE, reason=str(exc))
            self._stop.wait(POLL_S)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._driver.close()
