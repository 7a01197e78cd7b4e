"""Lockstep co-simulation: the twin advances only when every registered controller has
acknowledged, and then only as far as the earliest of their requests (HLA-style time management,
IEEE 1516). Pure logic: the server feeds it requests and sends the grants it returns.

Time is counted in physics steps (integers) so that "the same time" is exact. A controller's
``advance`` request is its acknowledgement of the period it just worked in, and asks for its next
grant: ``until`` a time (or one period), waking early on an event of its robots (a motion or
gripper actuation ending, a part attached or released, a contact fault) or on a message from a
peer. Messages between controllers travel peer to peer; an acknowledgement only counts what it
sent to each peer, and the receiver's grant says how many to read before it ticks, so a message
sent in period k is read at the start of period k+1 whatever the network did (IEEE 1516's Next
Message Request). Grants go out as replies on the request socket, never over PUB.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from cellctl.twin.simtime import time_at


@dataclass
class Participant:
    name: str
    robots: frozenset[str] = frozenset()
    stations: frozenset[str] = frozenset()
    pending: tuple | None = None  # (envelope, req_id, until_steps) while waiting for a grant
    waiting_since: float = field(default_factory=time.monotonic)  # wall time we started waiting for its ack
    owed: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # sender -> messages to read
    events: list[dict] = field(default_factory=list)


class LockstepError(ValueError):
    pass


class UnknownParticipant(LockstepError):
    """Not registered: never, or dropped after a silence; the participant registers (again)."""


class Lockstep:
    def __init__(self, physics_hz: int, period_steps: int, silence_timeout: float,
                 expect: list[str] | None = None, max_horizon: float = 3600.0) -> None:
        self.hz = physics_hz
        self.max_horizon = max_horizon
        self._expect = set(expect or ())  # emptied once all have joined: a start barrier only
        self._barrier_deadline: float | None = None  # wall time a restart barrier gives up waiting
        # messages sent, before the barrier fell, to expected participants not registered yet
        self._early: defaultdict[str, defaultdict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.period = period_steps
        self.silence_timeout = silence_timeout
        self.participants: dict[str, Participant] = {}
        self.periods = 0

    # -- membership (between periods) ---------------------------------------------------------
    def register(self, name: str, robots: list[str], stations: list[str] = ()) -> None:
        if name in self.participants:
            raise LockstepError(f"a participant named {name!r} is registered already")
        self.participants[name] = Participant(name, frozenset(robots), frozenset(stations))
        for sender, count in self._early.pop(name, {}).items():
            self.participants[name].owed[sender] += count

    def restart_barrier(self, expect: list[str], timeout_s: float) -> None:
        """A restored world waits, at most ``timeout_s`` of wall time, for the expected participants to
        register again, so that its time does not run ahead for whoever is back first."""
        self._expect = set(expect)
        self._barrier_deadline = time.monotonic() + timeout_s

    def deregister(self, name: str) -> Participant:
        try:
            return self.participants.pop(name)
        except KeyError:
            raise UnknownParticipant(f"no participant named {name!r}") from None

    def silent(self, now: float) -> list[str]:
        """Participants that owe an acknowledgement for longer than the silence timeout (none
        while the start barrier still waits for expected participants)."""
        if self._expect:
            return []
        return [p.name for p in self.participants.values()
                if p.pending is None and now - p.waiting_since > self.silence_timeout]

    # -- acknowledgements -----------------------------------------------------------------------
    def acknowledge(self, name: str, envelope: list[bytes], req_id: object, until: float | None,
                    sent: dict[str, int], steps_now: int) -> tuple[list[bytes], object] | None:
        """Take ``name``'s advance. Returns the (envelope, id) of the advance it replaces, if one
        was pending: every request gets exactly one reply, so the caller answers that one at once
        (``superseded``); the grant goes to the newer one."""
        p = self.participants.get(name)
        if p is None:
            raise UnknownParticipant(f"no participant named {name!r}: register (again) first")
        if any(count < 0 for count in sent.values()):
            raise LockstepError("message counts cannot be negative")
        for peer, count in sent.items():
            # A peer that is not registered (gone, or not joined yet) is not in lockstep: nothing
            # to synchronise; the handoff protocol's resync deals with what it missed. One the start
            # barrier still waits for gets the count when it registers: the line's first messages
            # are delivered the same way on every run.
            if count and peer in self.participants:
                self.participants[peer].owed[name] += count
            elif count and peer in self._expect:
                self._early[peer][name] += count
        if until is not None and until > time_at(steps_now, self.hz) + self.max_horizon:
            raise LockstepError(f"until {until} is more than {self.max_horizon}s of sim time ahead of "
                                f"{time_at(steps_now, self.hz):.3f}")
        next_period = self._round_up(steps_now + 1)
        target = next_period if until is None else max(next_period, self._round_up(math.ceil(until * self.hz - 1e-6)))
        replaced = p.pending[:2] if p.pending is not None else None
        p.pending = (envelope, req_id, target)  # a repeated advance (its client gave up on the first) replaces it
        return replaced

    def _round_up(self, steps: int) -> int:
        return -(-steps // self.period) * self.period

    # -- advancing --------------------------------------------------------------------------------
    def ready(self) -> bool:
        if self._expect:
            waiting = self._barrier_deadline is None or time.monotonic() < self._barrier_deadline
            if not self._expect <= self.participants.keys() and waiting:
                return False
            self._expect, self._early = set(), defaultdict(lambda: defaultdict(int))
        return bool(self.participants) and all(p.pending is not None for p in self.participants.values())

    def advance(self, steps_now: int, step_period: Callable[[], list[dict]],
                budget: float | None = None) -> list[tuple[list[bytes], object, dict]]:
        """Step whole periods up to the earliest target, stopping early at the end of a period with
        an event someone waits on; returns (envelope, req_id, grant) for every participant woken.
        With a wall-time ``budget`` (s) it stops once that is spent and may wake nobody: the
        caller serves other requests and calls again (every participant still waits), so a long
        grant never keeps the server from answering. Where it pauses changes nothing simulated."""
        waiting = list(self.participants.values())
        target = min(p.pending[2] for p in waiting)
        if any(p.owed for p in waiting):
            target = min(target, self._round_up(steps_now + 1))
        stop_at = None if budget is None else time.monotonic() + budget
        steps = steps_now
        while steps < target and (stop_at is None or steps == steps_now or time.monotonic() < stop_at):
            events = step_period()
            steps += self.period
            self.periods += 1
            woke = False
            for ev in events:
                for p in waiting:
                    if ev.get("robot") in p.robots or ev.get("station") in p.stations:
                        p.events.append(ev)
                        woke = True
            if woke:
                break
        grants = []
        for p in waiting:
            envelope, req_id, until = p.pending
            if until <= steps or p.events or p.owed:
                grant = {"time": time_at(steps, self.hz), "steps": steps, "deliver": dict(p.owed), "events": p.events}
                p.pending, p.events, p.owed = None, [], defaultdict(int)
                p.waiting_since = time.monotonic()
                grants.append((envelope, req_id, grant))
        return grants
