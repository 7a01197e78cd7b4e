"""The line as a Sparkplug B edge node: each cell a device, published to an MQTT broker.

The edge node is a ``cellctl.line.feeds.Listener``: its cells' tags change as status replies and
events come; it turns the changes into Sparkplug messages and a sender publishes them.

- Connected: NBIRTH (``seq`` 0, ``bdSeq``, ``Node Control/Rebirth``, the node's counters), then a
  DBIRTH per cell that has answered; then DDATA with the metrics that changed, a DDEATH when a cell
  stops answering (a DBIRTH when it answers again). The NDEATH is the connection's MQTT will, with
  the same ``bdSeq`` as the NBIRTH that follows, and is also published on a clean stop.
- Broker gone: nothing is queued for it (the state moves on); on every (re)connect a new ``bdSeq``
  and a rebirth, so a host application sees the state as it is, never replayed history.
- Slow broker: messages wait in a bounded queue; a full queue drops its oldest with a counter
  (``Node Info/Dropped``) and the next message sent is a rebirth, so no host is left with a gap. The
  cells never wait for any of it: this is a process of its own, reading them like any client.
- Commands: an NCMD ``Node Control/Rebirth`` (at most one a second) and a DCMD ``Device
  Control/Rebirth`` are honoured;
  a DCMD ``PackML/Command`` (Hold, Unhold, ...) only where the config allows it, sent as the
  configured operator through the cell's control socket like ``cellctl cmd``; anything else is
  ignored and logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from cellctl.cell.packml import COMMANDS
from cellctl.line.feeds import Commander, Sent
from cellctl.line.tags import LineTags
from cellctl.mqtt.metrics import cell_metrics, changed
from cellctl.mqtt.sparkplug import DataType, Metric, PayloadError, Sequence, Topics, decode, encode

log = logging.getLogger("cellctl.mqtt")

REBIRTH = "Node Control/Rebirth"
DEVICE_REBIRTH = "Device Control/Rebirth"
COMMAND = "PackML/Command"
REBIRTH_EVERY_S = 1.0  # NCMD rebirths closer together are ignored: a flood of them cannot keep the node busy


@dataclass(frozen=True)
class Message:
    """One Sparkplug message waiting to be sent: its ``seq`` is given when it is (no gaps)."""

    topic: str
    metrics: list[Metric]
    kind: str  # NBIRTH, DBIRTH, DDATA, DDEATH


@dataclass
class Outbox:
    """The bounded queue between the changes and the broker."""

    size: int
    messages: deque = field(default_factory=deque)
    dropped: int = 0
    gap: bool = False  # something was dropped since the last rebirth: the next send is a rebirth

    def put(self, message: Message) -> None:
        if len(self.messages) >= self.size:
            self.messages.popleft()
            self.dropped += 1
            self.gap = True
        self.messages.append(message)


class EdgeNode(LineTags):
    def __init__(self, topics: Topics, cells: list[str], from_events: bool, queue: int = 1000,
                 commander: Commander | None = None, command_user: str | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(cells, from_events)
        self.topics = topics
        self.outbox = Outbox(queue)
        self.seq = Sequence()
        self.bd_seq = 0
        self.commander = commander  # None: DCMD commands are not taken
        self.command_user = command_user
        self.sent: dict[str, dict[str, Metric]] = {}  # device → the metrics as last sent (born devices only)
        self.ignored = 0  # commands ignored (unconfigured, malformed, too often)
        self.clock = clock
        self._asked = -REBIRTH_EVERY_S  # when an NCMD last asked for a rebirth

    # -- messages --------------------------------------------------------------------------------
    def node_metrics(self) -> list[Metric]:
        return [Metric("bdSeq", DataType.UINT64, self.bd_seq), Metric(REBIRTH, DataType.BOOLEAN, False),
                Metric("Node Info/Dropped", DataType.UINT64, self.outbox.dropped),
                Metric("Node Info/Cells", DataType.STRING, ",".join(self.tags))]

    def death(self, bd_seq: int) -> bytes:
        """The NDEATH payload (the will): bdSeq only, no seq."""
        return encode([Metric("bdSeq", DataType.UINT64, bd_seq)], None)

    def rebirth(self) -> None:
        """NBIRTH and a DBIRTH per answering cell, ahead of anything queued (which they supersede)."""
        self.outbox.messages.clear()
        self.outbox.gap = False
        self.sent.clear()
        self.outbox.messages.append(Message(self.topics.node("NBIRTH"), self.node_metrics(), "NBIRTH"))
        for name in self.tags:
            self._device(name)

    def changes(self) -> None:
        """Queue what changed since the last look."""
        for name in self.tags:
            self._device(name)

    def _device(self, name: str) -> None:
        tags = self.tags[name]
        if tags.silent or tags.status is None:
            if name in self.sent:
                del self.sent[name]
                self.outbox.put(Message(self.topics.device("DDEATH", name), [], "DDEATH"))
            return
        now = cell_metrics(tags)
        before = self.sent.get(name)
        if before is None or set(before) != set(now):  # new, back, or a metric the birth did not declare
            self.outbox.put(Message(self.topics.device("DBIRTH", name), list(now.values()), "DBIRTH"))
        elif diff := changed(before, now):
            self.outbox.put(Message(self.topics.device("DDATA", name), diff, "DDATA"))
        self.sent[name] = now

    def next_payload(self) -> tuple[Message, bytes] | None:
        """The next message to send with its payload (a rebirth first after a drop), or None."""
        if self.outbox.gap:
            log.warning(f"mqtt: {self.outbox.dropped} messages dropped (the broker is slow): sending a rebirth")
            self.rebirth()
        if not self.outbox.messages:
            return None
        message = self.outbox.messages.popleft()
        seq = self.seq.restart() if message.kind == "NBIRTH" else self.seq.take()
        return message, encode(message.metrics, seq)

    # -- commands --------------------------------------------------------------------------------
    async def on_command(self, topic: str, payload: bytes) -> None:
        try:
            metrics = decode(payload)
        except PayloadError as exc:
            self._ignore(topic, str(exc))
            return
        device = topic.rsplit("/", 1)[-1] if "/DCMD/" in topic else None
        for name, value in metrics:
            if device is None and name == REBIRTH and value is True:
                if self.clock() - self._asked < REBIRTH_EVERY_S:
                    self._ignore(topic, f"a rebirth was asked for less than {REBIRTH_EVERY_S:g}s ago")
                    continue
                self._asked = self.clock()
                log.info("mqtt: NCMD rebirth: publishing NBIRTH and the DBIRTHs")
                self.rebirth()
            elif device in self.tags and name == DEVICE_REBIRTH and value is True:
                self.sent.pop(device, None)
                self._device(device)
            elif device in self.tags and name == COMMAND:
                await self._packml(device, value)
            else:
                self._ignore(topic, f"metric {str(name)[:80]!r} = {str(value)[:80]!r} is not a command this edge "
                                    f"node takes")
        self.wake.set()

    async def _packml(self, cell: str, command: object) -> None:
        if self.commander is None:
            self._ignore(f"DCMD/{cell}", f"{COMMAND} {str(command)[:40]!r}: commands over MQTT are off (mqtt.commands "
                                         f"in the config)")
            return
        if command not in COMMANDS:
            self._ignore(f"DCMD/{cell}", f"{COMMAND} {str(command)[:40]!r}: expected one of {', '.join(COMMANDS)}")
            return
        sent, why = await self.commander.command(cell, str(command), self.command_user)
        (log.info if sent is Sent.QUEUED else log.warning)(f"mqtt: DCMD {command} for {cell} as "
                                                            f"{self.command_user}: {why}")

    def _ignore(self, topic: str, why: str) -> None:
        self.ignored += 1
        log.warning(f"mqtt: ignored a command on {topic[:120]}: {why}")


async def publish_until(node: EdgeNode, publish: Callable, stop: asyncio.Event) -> None:
    """Queue the node's changes as they come and send them as the broker takes them, until ``stop``
    (then one last round); ``publish(topic, payload)`` raises when the connection is gone (the caller
    reconnects). Changes are queued while a send waits, so a slow broker fills the bounded outbox
    (oldest dropped, a rebirth after) instead of holding anything up."""
    queued = asyncio.Event()

    async def produce() -> None:
        while True:
            await node.wake.wait()
            node.wake.clear()
            node.changes()
            queued.set()

    producer = asyncio.create_task(produce())
    try:
        while True:
            node.changes()
            while (out := node.next_payload()) is not None:
                await publish(out[0].topic, out[1])
            if stop.is_set():
                return
            queued.clear()
            waiting = [asyncio.ensure_future(queued.wait()), asyncio.ensure_future(stop.wait())]
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            for task in waiting:
                task.cancel()
    finally:
        producer.cancel()
