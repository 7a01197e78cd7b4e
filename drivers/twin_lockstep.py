"""The lockstep clock: a controller's side of the twin's co-simulation (DESIGN §3).

``advance`` acknowledges the period just worked in and blocks until the twin grants the next one —
one period, or until a time or an event on this controller's robots (next-event advance). Messages
sent to peers in a period are counted in the acknowledgement and read, exactly, at the start of the
next (causal delivery), through the controller's :class:`~drivers.clock.PeerMessages` queue.
"""

from __future__ import annotations

import time

from drivers.clock import Grant, PeerMessages
from drivers.errors import ConnectionLost, DriverError
from drivers.twin_client import TwinClient
from drivers.twin_wire import MAX_HORIZON_S, UNKNOWN_PARTICIPANT


class LockstepClock:
    """One lockstep participant: registered on creation, deregistered by ``close()``."""

    def __init__(self, twin: TwinClient, name: str, robots: list[str], mailbox: PeerMessages | None = None,
                 grant_timeout: float = 60.0, register_timeout: float = 30.0, stations: list[str] = ()) -> None:
        self._twin, self.name, self.mailbox = twin, name, mailbox
        self.grant_timeout, self.register_timeout = grant_timeout, register_timeout
        self._robots, self._stations = list(robots), list(stations)
        self.rejoined = 0  # times the twin had dropped us (a pause beyond its silence timeout) and we re-joined
        self._register()

    def _register(self) -> None:
        deadline = time.monotonic() + self.register_timeout
        while True:  # a restarted controller waits until the twin has dropped its old registration
            try:
                info = self._twin.request("register", name=self.name, robots=self._robots, stations=self._stations)
                break
            except DriverError as exc:
                if "registered already" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self._time = info["time"]
        if self.mailbox is not None:
            self.mailbox.stamp = info["steps"]
        self._registered = True

    def now(self) -> float:
        return self._time

    def advance(self, until: float | None = None) -> Grant:
        if until is not None:  # a wait longer than the twin grants at once is a series of waits
            until = min(until, self._time + MAX_HORIZON_S)
        sent = self.mailbox.take_sent() if self.mailbox else {}
        try:
            grant = self._twin.request("advance", _timeout=self.grant_timeout, name=self.name, until=until, sent=sent)
        except DriverError as exc:
            if not str(exc).startswith(f"[{UNKNOWN_PARTICIPANT}]"):
                raise
            # Dropped while we were paused: join again (the others did not wait for us meanwhile).
            self.rejoined += 1
            self._register()
            grant = self._twin.request("advance", _timeout=self.grant_timeout, name=self.name, until=until, sent={})
        self._time = grant["time"]
        messages = []
        if self.mailbox:
            messages = self.mailbox.collect(grant["deliver"], before=grant["steps"])
            self.mailbox.stamp = grant["steps"]
        return Grant(self._time, grant["events"], messages)

    def close(self) -> None:
        if not self._registered:
            return
        self._registered = False
        try:
            self._twin.request("deregister", name=self.name)
        except ConnectionLost:
            pass  # the twin is gone, and with it the registration
