"""Time and messages for controllers, the same code in both twin modes.

- :class:`WallClock` (realtime twin, real robots): ``advance`` sleeps one control period of wall
  time; messages are read as they arrive.
- :class:`LockstepClock` (lockstep twin): ``advance`` acknowledges the period just worked in and
  blocks until the twin grants the next one — one period, or until a time or an event on this
  controller's robots (next-event advance). Messages sent to peers in a period are counted in
  the acknowledgement and read, exactly, at the start of the next (causal delivery).
- :class:`Mailbox`: peer-to-peer messages between controllers (ZeroMQ PULL here, PUSH to peers),
  msgpack frames ``{"from", "seq", "payload"}``; the handoff protocol runs on it.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import zmq

from drivers.errors import ConnectionLost, DriverError
from twin import protocol as P

if TYPE_CHECKING:
    from drivers.twin import TwinDriver

CONTROL_PERIOD = 0.02  # s, the wall clock's period (the twin's is physics steps × period_steps)


@dataclass(frozen=True)
class Grant:
    time: float
    events: list[dict] = field(default_factory=list)  # events on this controller's robots
    messages: list[tuple[str, object]] = field(default_factory=list)  # (sender, payload), in delivery order


class Clock(Protocol):
    def now(self) -> float: ...

    def advance(self, until: float | None = None) -> Grant:
        """Return after one control period, or (lockstep) at ``until`` or an earlier event."""

    def close(self) -> None: ...


class Mailbox:
    """Each message carries the sim time (in physics steps) of the period its sender sent it in.
    A grant at time G hands over every message sent before G, in (sent, sender, sequence) order,
    after waiting for the ones the twin counted. So a message sent in period k is read at the start
    of k + 1 whatever the network did, and a message that arrived late (its sender killed before it
    left the machine, say) comes with the next grant, in its place by time, without shifting later
    ones. Realtime (no grants): whatever has arrived, in arrival order."""

    def __init__(self, name: str, endpoint: str = "tcp://127.0.0.1:*") -> None:
        self.name = name
        self.stamp = 0  # the steps of the current grant: set by the clock
        self._ctx = zmq.Context.instance()
        self._pull = self._ctx.socket(zmq.PULL)
        self._pull.setsockopt(zmq.LINGER, 0)
        self._pull.bind(endpoint)
        self.endpoint = self._pull.getsockopt_string(zmq.LAST_ENDPOINT)
        self._push: dict[str, zmq.Socket] = {}
        self._seq = 0
        self._unacked: Counter[str] = Counter()
        self._buffer: list[tuple[int, str, int, object]] = []  # (sent steps, sender, seq, payload)

    def connect(self, peer: str, endpoint: str) -> None:
        sock = self._ctx.socket(zmq.PUSH)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.IMMEDIATE, 1)  # queue only on a live connection: no backlog for a restarted peer
        sock.connect(endpoint)
        self._push[peer] = sock

    def send(self, peer: str, payload: object) -> bool:
        """Queue a message to a peer; False (and not counted) when the peer is not connected —
        the protocol above (liveness, resync) deals with what a gone peer missed."""
        frame = P.pack({"from": self.name, "sent": self.stamp, "seq": self._seq + 1, "payload": payload})
        try:
            self._push[peer].send(frame, zmq.NOBLOCK)
        except zmq.Again:
            return False
        self._seq += 1
        self._unacked[peer] += 1
        return True

    def take_sent(self) -> dict[str, int]:
        """Messages sent since the last acknowledgement, per peer (and reset the count)."""
        sent, self._unacked = dict(self._unacked), Counter()
        return sent

    def _read(self, timeout_ms: int) -> bool:
        if not self._pull.poll(timeout_ms):
            return False
        msg = P.unpack(self._pull.recv())
        self._buffer.append((msg["sent"], msg["from"], msg["seq"], msg["payload"]))
        return True

    def collect(self, deliver: dict[str, int] | None, before: int | None = None,
                timeout: float = 2.0) -> list[tuple[str, object]]:
        """``deliver=None``: whatever has arrived. Otherwise wait (up to ``timeout``) until at least
        ``deliver[sender]`` messages sent before ``before`` have arrived from each sender, then
        hand over every message sent before ``before``: the same on every run."""
        while self._read(0):
            pass
        if deliver is None:
            out, self._buffer = self._buffer, []
            return [(sender, payload) for _, sender, _, payload in out]
        deadline = time.monotonic() + timeout

        def short() -> bool:
            return any(sum(1 for m in self._buffer if m[1] == s and m[0] < before) < n for s, n in deliver.items())

        while short() and self._read(max(0, int((deadline - time.monotonic()) * 1000))):
            pass
        ready = sorted(m for m in self._buffer if m[0] < before)
        self._buffer = [m for m in self._buffer if m[0] >= before]
        return [(sender, payload) for _, sender, _, payload in ready]

    def close(self) -> None:
        for sock in [self._pull, *self._push.values()]:
            sock.close(0)


class WallClock:
    def __init__(self, driver: TwinDriver | None = None, mailbox: Mailbox | None = None,
                 period: float = CONTROL_PERIOD) -> None:
        self._driver, self.mailbox, self.period = driver, mailbox, period

    def now(self) -> float:
        return self._driver.now() if self._driver is not None else time.monotonic()

    def advance(self, until: float | None = None) -> Grant:
        time.sleep(self.period)
        if self.mailbox is not None:
            self.mailbox.take_sent()
        return Grant(self.now(), [], self.mailbox.collect(None) if self.mailbox else [])

    def close(self) -> None:
        pass


class LockstepClock:
    """One lockstep participant: registered on creation, deregistered by ``close()``."""

    def __init__(self, driver: TwinDriver, name: str, robots: list[str], mailbox: Mailbox | None = None,
                 grant_timeout: float = 60.0, register_timeout: float = 30.0, stations: list[str] = ()) -> None:
        self._driver, self.name, self.mailbox = driver, name, mailbox
        self.grant_timeout = grant_timeout
        deadline = time.monotonic() + register_timeout
        while True:  # a restarted controller waits until the twin has dropped its old registration
            try:
                info = driver.request("register", name=name, robots=robots, stations=list(stations))
                break
            except DriverError as exc:
                if "registered already" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self._time = info["time"]
        if mailbox is not None:
            mailbox.stamp = info["steps"]
        self._registered = True

    def now(self) -> float:
        return self._time

    def advance(self, until: float | None = None) -> Grant:
        sent = self.mailbox.take_sent() if self.mailbox else {}
        grant = self._driver.request("advance", _timeout=self.grant_timeout, name=self.name, until=until, sent=sent)
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
            self._driver.request("deregister", name=self.name)
        except ConnectionLost:
            pass  # the twin is gone, and with it the registration
