"""The lockstep clock: a controller's side of the twin's co-simulation (DESIGN §3).

``advance`` acknowledges the period just worked in and blocks until the twin grants the next one —
one period, or until a time or an event on this controller's robots (next-event advance). Messages
sent to peers in a period are counted in the acknowledgement and read, exactly, at the start of the
next (causal delivery), through the controller's :class:`~drivers.clock.PeerMessages` queue.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cellctl.drivers.clock import Grant, PeerMessages
from cellctl.drivers.errors import ConnectionLost, DriverError
from cellctl.drivers.twin_client import TwinClient
from cellctl.drivers.twin_wire import MAX_HORIZON_S, UNKNOWN_PARTICIPANT

GRANT_POLL_S = 5.0  # wall s of waiting for a grant before checking that the twin is still there
HELLO_TIMEOUT_S = 2.0  # a twin that does not answer a hello within this is gone


class LockstepClock:
    """One lockstep participant: registered on creation, deregistered by ``close()``."""

    def __init__(self, twin: TwinClient, name: str, robots: list[str], mailbox: PeerMessages | None = None,
                 grant_timeout: float = 60.0, register_timeout: float = 30.0, stations: list[str] = ()) -> None:
        self._twin, self.name, self.mailbox = twin, name, mailbox
        self.grant_timeout, self.register_timeout = grant_timeout, register_timeout
        self._robots, self._stations = list(robots), list(stations)
        self.rejoined = 0  # times the twin had dropped us (a pause beyond its silence timeout) and we re-joined
        # called every ~0.1 s while a grant is awaited (which may take long: the peers are slow, paused,
        # or not there yet): a cell answers status queries meanwhile
        self.idle: Callable[[], None] | None = None
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
            grant = self._await_grant(until, sent)
        except DriverError as exc:
            if exc.code != UNKNOWN_PARTICIPANT:
                raise
            # Dropped while we were paused, or the twin was restarted: join again (the others did
            # not wait for us meanwhile).
            self.rejoined += 1
            self._register()
            grant = self._await_grant(until, {})
        self._time = grant["time"]
        messages = []
        if self.mailbox:
            messages = self.mailbox.collect(grant["deliver"], before=grant["steps"])
            self.mailbox.stamp = grant["steps"]
        return Grant(self._time, grant["events"], messages)

    def _await_grant(self, until: float | None, sent: dict[str, int]) -> dict:
        """The next grant. A grant may take long (another participant is slow or paused), a twin
        may be gone: every GRANT_POLL_S the twin must answer a hello on a fresh socket, and then the
        advance is asked again (it replaces the first; the message counts went with the first).
        ConnectionLost when the twin is gone or no grant came within ``grant_timeout``."""
        deadline = time.monotonic() + self.grant_timeout
        while True:
            try:
                return self._twin.request("advance", _timeout=GRANT_POLL_S, _idle=self.idle, name=self.name,
                                          until=until, sent=sent)
            except ConnectionLost:
                if not self._twin.alive(HELLO_TIMEOUT_S):
                    raise ConnectionLost(f"twin at {self._twin.endpoint} is gone: no answer to a hello within "
                                         f"{HELLO_TIMEOUT_S}s") from None
                if time.monotonic() > deadline:
                    raise ConnectionLost(f"no lockstep grant within {self.grant_timeout}s: the twin answers but "
                                         f"does not advance") from None
                sent = {}

    def close(self) -> None:
        if not self._registered:
            return
        self._registered = False
        try:
            self._twin.request("deregister", name=self.name)
        except ConnectionLost:
            pass  # the twin is gone, and with it the registration
