"""How time passes for a controller: the same control loop on a realtime twin, a real robot and
a lockstep twin.

A controller calls ``clock.advance(until)`` once per tick. :class:`WallClock` (realtime twin, real
robots) sleeps one control period of wall time and hands over whatever peer messages arrived; the
lockstep clock (``drivers/twin_lockstep.py``) acknowledges the period to the twin and blocks until
the next grant. Peer messages travel through a :class:`PeerMessages` queue (the cell's mailbox,
``cellctl/handoff/mailbox.py``), which the clock only counts and drains: the clock knows when messages are
due, the mailbox knows how they travel.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

CONTROL_PERIOD = 0.02  # s, the wall clock's period (the twin's is physics steps × period_steps)


@dataclass(frozen=True)
class Grant:
    time: float
    events: list[dict] = field(default_factory=list)  # events on this controller's robots
    messages: list[tuple[str, object]] = field(default_factory=list)  # (sender, payload), in delivery order


class Clock(Protocol):
    rejoined: int  # times this controller was dropped (a long pause) and joined again: it re-plans

    def now(self) -> float: ...

    def advance(self, until: float | None = None) -> Grant:
        """Return after one control period, or (lockstep) at ``until`` or an earlier event."""

    def close(self) -> None: ...


class PeerMessages(Protocol):
    """What a clock needs of a mailbox: stamp outgoing messages with the current period, count
    them per peer for the acknowledgement, and hand over the ones due."""

    stamp: int

    def take_sent(self) -> dict[str, int]: ...

    def collect(self, deliver: dict[str, int] | None, before: int | None = None,
                timeout: float = 2.0) -> list[tuple[str, object]]: ...


class WallClock:
    """``now`` is the given time source (a driver's ``now``: sim time of a realtime twin, ``/clock``
    or wall time of a robot), or the monotonic clock."""

    rejoined = 0  # wall time never leaves a controller behind

    def __init__(self, now: Callable[[], float] | None = None, mailbox: PeerMessages | None = None,
                 period: float = CONTROL_PERIOD) -> None:
        self._now, self.mailbox, self.period = now or time.monotonic, mailbox, period

    def now(self) -> float:
        return self._now()

    def advance(self, until: float | None = None) -> Grant:
        time.sleep(self.period)
        if self.mailbox is not None:
            self.mailbox.take_sent()
        return Grant(self.now(), [], self.mailbox.collect(None) if self.mailbox else [])

    def close(self) -> None:
        pass
