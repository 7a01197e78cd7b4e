"""Peer-to-peer messages between cell controllers: the handoff protocol runs on it.

Each cell binds one inbox (ZeroMQ PULL) and PUSHes to its neighbours' inboxes; frames are msgpack
maps ``{"from", "sent", "seq", "payload"}``, plus ``"live": true`` for liveness messages (CheckAlive):
those are sent on wall time, so they are not counted and never wake a peer in lockstep — they are
handed over with whatever grant comes next. Everything the protocol acts on is causal, so a lockstep
line runs the same way every time. A frame that is not one, or that does not come from a
neighbour, is dropped and reported (``on_reject``), never raised. The mailbox implements
:class:`cellctl.drivers.clock.PeerMessages`, so a lockstep clock can count what was sent in a period and
deliver it, causally, at the start of the next.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import zmq

from cellctl.drivers import twin_wire as P
from cellctl.drivers.curve import Keys

MAX_BUFFERED = 10_000  # messages held for a later grant; more are dropped (reported), never hoarded


class Mailbox:
    """Each message carries the sim time (in physics steps) of the period its sender sent it in.
    A grant at time G hands over every message sent before G, in (sent, sender, sequence) order,
    after waiting for the ones the twin counted. So a message sent in period k is read at the start
    of k + 1 whatever the network did, and a message that arrived late (its sender killed before it
    left the machine, say) comes with the next grant, in its place by time, without shifting later
    ones. Realtime (no grants): whatever has arrived, in arrival order."""

    def __init__(self, name: str, endpoint: str = "tcp://127.0.0.1:*",
                 on_reject: Callable[[str], None] | None = None, keys: Keys | None = None,
                 wall: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self._wall = wall
        self._on_reject = on_reject or (lambda reason: None)
        self._dropped, self._reported_at = 0, 0.0  # frames dropped since the last report; when it was
        self.stamp = 0  # the steps of the current grant: set by the clock
        self._ctx = zmq.Context.instance()
        self._pull = self._ctx.socket(zmq.PULL)
        self._pull.setsockopt(zmq.LINGER, 0)
        self._pull.setsockopt(zmq.MAXMSGSIZE, P.MAX_FRAME_BYTES)  # a bigger frame drops that connection
        self.keys = keys
        if keys is not None:  # CURVE: only allow-listed neighbours are heard at all
            keys.serve(self._pull)
        self._pull.bind(endpoint)
        self.endpoint = self._pull.getsockopt_string(zmq.LAST_ENDPOINT)
        self._push: dict[str, zmq.Socket] = {}
        self._seq = 0
        self._unacked: Counter[str] = Counter()
        self._buffer: list[tuple[int, str, int, object]] = []  # (sent steps, sender, seq, payload)
        self._live: list[tuple[str, object]] = []  # liveness messages: delivered at the next collect

    def connect(self, peer: str, endpoint: str) -> None:
        sock = self._ctx.socket(zmq.PUSH)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.IMMEDIATE, 1)  # queue only on a live connection: no backlog for a restarted peer
        if self.keys is not None:
            self.keys.connect_to(sock, peer)
        sock.connect(endpoint)
        self._push[peer] = sock

    def wait_connected(self, timeout: float) -> list[str]:
        """Wait (wall time) until every neighbour's inbox has a live connection, so that the first
        messages of a line are not dropped for a connection still being made; returns the
        neighbours still not connected after ``timeout`` (the protocol's reconnects deal with them)."""
        deadline = self._wall() + timeout
        waiting = dict(self._push)
        while waiting and self._wall() < deadline:
            poller = zmq.Poller()
            for sock in waiting.values():
                poller.register(sock, zmq.POLLOUT)  # with IMMEDIATE a PUSH is writable once connected
            ready = dict(poller.poll(100))
            waiting = {peer: sock for peer, sock in waiting.items() if sock not in ready}
        return sorted(waiting)

    def send(self, peer: str, payload: object, live: bool = False) -> bool:
        """Queue a message to a peer; False (and not counted) when the peer is not connected —
        the protocol above (liveness, resync) deals with what a gone peer missed. ``live``: a
        liveness message (not counted, not causal)."""
        msg = {"from": self.name, "sent": self.stamp, "seq": self._seq + 1, "payload": payload}
        if live:
            msg["live"] = True
        try:
            self._push[peer].send(P.pack(msg), zmq.NOBLOCK)
        except zmq.Again:
            return False
        self._seq += 1
        if not live:
            self._unacked[peer] += 1
        return True

    def _reject(self, reason: str) -> None:
        """Report a dropped frame; a flood is reported once a second with its count, so the log
        cannot be flooded in turn."""
        self._dropped += 1
        now = self._wall()
        if now - self._reported_at >= 1.0:
            more = f" (and {self._dropped - 1} more dropped in the last second)" if self._dropped > 1 else ""
            self._on_reject(reason + more)
            self._dropped, self._reported_at = 0, now

    def take_sent(self) -> dict[str, int]:
        """Messages sent since the last acknowledgement, per peer (and reset the count)."""
        sent, self._unacked = dict(self._unacked), Counter()
        return sent

    def _read(self, timeout_ms: int) -> bool:
        if not self._pull.poll(timeout_ms):
            return False
        frame = self._pull.recv()
        try:
            msg = P.unpack(frame)
            sender, sent, seq, payload = msg["from"], msg["sent"], msg["seq"], msg["payload"]
        except Exception:  # noqa: BLE001 - garbage of any kind is dropped, never raised
            self._reject(f"a frame of {len(frame)} bytes that is not a mailbox message")
            return True
        if not isinstance(sender, str) or sender not in self._push or type(sent) is not int or type(seq) is not int \
                or sent < 0:
            self._reject(f"a message from {str(sender)[:64]!r} that is not a neighbour's, or badly stamped")
        elif len(self._buffer) + len(self._live) >= MAX_BUFFERED:
            self._reject(f"a message from {sender!r} beyond the {MAX_BUFFERED} waiting for delivery")
        elif msg.get("live") is True:
            self._live.append((sender, payload))
        else:
            self._buffer.append((sent, sender, seq, payload))
        return True

    def collect(self, deliver: dict[str, int] | None, before: int | None = None,
                timeout: float = 2.0) -> list[tuple[str, object]]:
        """``deliver=None``: whatever has arrived. Otherwise wait (up to ``timeout``) until at least
        ``deliver[sender]`` messages sent before ``before`` have arrived from each sender, then
        hand over every message sent before ``before``: the same on every run."""
        while self._read(0):
            pass
        live, self._live = self._live, []
        if deliver is None:
            out, self._buffer = self._buffer, []
            return live + [(sender, payload) for _, sender, _, payload in out]
        deadline = self._wall() + timeout

        def short() -> bool:
            return any(sum(1 for m in self._buffer if m[1] == s and m[0] < before) < n for s, n in deliver.items())

        while short() and self._read(max(0, int((deadline - self._wall()) * 1000))):
            pass
        ready = sorted(m for m in self._buffer if m[0] < before)
        self._buffer = [m for m in self._buffer if m[0] >= before]
        return live + [(sender, payload) for _, sender, _, payload in ready]

    def close(self) -> None:
        for sock in [self._pull, *self._push.values()]:
            sock.close(0)
