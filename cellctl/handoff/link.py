"""One side of a handoff link between neighbouring cells: the Hermes state machine
(``cellctl.handoff.hermes``) plus sessions, liveness and resynchronisation, over the controllers' mailbox
(``cellctl.handoff.mailbox.Mailbox``: counted, causal delivery in lockstep).

Messages are maps ``{"type", "session", ...}``. The receiving side opens a session with
ServiceDescription (its session id: ``CELL-BOOT-ATTEMPT``, unique across restarts and reproducible);
the sending side answers with its own. CheckAlive goes as a liveness message (``live=True``: sent on
wall time, so not part of lockstep's causal, reproducible delivery). Every later message carries that session id, and messages
of another session are dropped (ZeroMQ reconnects silently and may deliver stale messages). A
message of an unknown session makes the sending side answer Notification(UnknownSession), so a
receiver that missed a restart of its sender reconnects at once.

Beyond Hermes: after every (re)connection the receiver sends ``Resync {received: [part ids]}``;
the sender settles each part it has IN_TRANSIT to that receiver: received → GIVEN, otherwise
``ResyncTransfer {part, part_type}``, answered by ``ResyncAck {part, found}`` once the receiver
has checked the part rests on the handoff station and committed it OWNED.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cellctl.handoff.messages import MAX_TEXT, MalformedMessage, parse
from cellctl.handoff.hermes import HermesMachine, ProtocolError, SoftwareError
from cellctl.handoff.hermes import HermesState as H

RECONNECT_EVERY = 1.0  # wall and driver s between ServiceDescription attempts of a disconnected receiver
HERMES_VERSION = "cellctl-hermes/1"
MAX_HELD = 1000  # messages held back by a cut link (more are dropped: a cut that long is a lost link)


@dataclass
class LinkEvent:
    """What the cell needs to know: the message type (or connected / disconnected) and the message."""

    kind: str
    msg: dict = field(default_factory=dict)


class HandoffLink:
    def __init__(self, role: str, me: str, peer: str, send: Callable[..., object], boot: int,
                 emit: Callable[..., None], timeout: float = 5.0, alive_every: float = 1.0,
                 driver_now: Callable[[], float] | None = None, wall: Callable[[], float] = time.monotonic) -> None:
        """``timeout``: wall s of the peer's silence before it counts as gone; ``alive_every``: wall s
        between our CheckAlive messages (per link in config: a real Hermes peer may send them far less
        often than every second, and the peer's timeout must outlast our period). ``driver_now``: the
        cell's driver time; a receiver retries its ServiceDescription only after RECONNECT_EVERY of
        both wall and driver time, so a lockstep line's start (peers still starting while the twin's
        barrier holds time) opens the same session every run. ``wall``: the monotonic wall clock that
        liveness is judged on (a test passes a virtual one)."""
        self.role, self.me, self.peer = role, me, peer
        self._transmit = send
        self._emit = emit
        self.timeout, self.alive_every = timeout, alive_every
        self.fsm = HermesMachine(role)
        self.boot, self._attempt = boot, 0
        self.session: str | None = None
        self.events: list[LinkEvent] = []
        self._wall = wall
        self._peer_seen = self._alive_sent = self._sd_sent = wall()
        self._driver_now = driver_now or wall
        self._sd_sent_driver = 0.0
        self._rejected_at, self._rejected = 0.0, 0
        self.cut_until: float | None = None  # an injected link fault: down until this driver time
        self._held: list[dict] = []  # messages sent while cut, in order: a cut network holds them back
        if role == "receiver":
            self._open()

    @property
    def connected(self) -> bool:
        return self.fsm.state not in (H.NOT_CONNECTED, H.SOCKET_CONNECTED, H.SERVICE_DESCRIPTION_DOWNSTREAM,
                                      H.DISCONNECTED)

    # -- sending ---------------------------------------------------------------------------------
    def _send_raw(self, msg: dict) -> None:
        if self.cut_until is not None:
            if msg["type"] != "CheckAlive" and len(self._held) < MAX_HELD:  # the silence is the point
                self._held.append(msg)
            return
        if msg["type"] == "CheckAlive":  # wall-clock liveness: never counted, never wakes the peer
            self._transmit(self.peer, msg, live=True)
        else:
            self._transmit(self.peer, msg)
        self._emit("handoff", direction="send", peer=self.peer, **msg)

    def cut(self, until: float) -> None:
        """The link goes down until driver time ``until`` (a scenario's ``cut_link``, simulated
        cells only): nothing is sent, so the peer hears silence; what this side sends meanwhile is
        held back and goes out, in order, when the link mends (as a network cut's queue would)."""
        self.cut_until = until
        self._emit("handoff_link", peer=self.peer, state="cut", until=until)

    def mend(self) -> None:
        self.cut_until = None
        held, self._held = self._held, []
        self._emit("handoff_link", peer=self.peer, state="mended", held=len(held))
        for msg in held:
            self._send_raw(msg)

    def send(self, kind: str, **fields: object) -> None:
        """Send a Hermes message (the table decides if this state allows it)."""
        try:
            self.fsm.send(kind, fields.get("part"))
        except SoftwareError as exc:
            self._notify("SoftwareError", str(exc))
            self._disconnect(str(exc))
            raise
        self._send_raw({"type": kind, "session": self.session, **fields})

    def send_extra(self, kind: str, **fields: object) -> None:
        """A message beyond Hermes (resync): not in the table, sent in any connected state."""
        self._send_raw({"type": kind, "session": self.session, **fields})

    def _notify(self, code: str, text: str, session: str | None = None) -> None:
        self._send_raw({"type": "Notification", "session": session or self.session, "code": code,
                        "severity": "Fatal", "text": text})

    def _open(self) -> None:
        """Receiver: start a new session with ServiceDescription."""
        self._attempt += 1
        self.fsm.reconnect()
        self.fsm.connected()
        self.session = f"{self.me}-{self.boot}-{self._attempt}"
        self.fsm.send("ServiceDescription")
        self._send_raw({"type": "ServiceDescription", "session": self.session, "name": self.me,
                        "version": HERMES_VERSION})
        self._sd_sent, self._sd_sent_driver = self._wall(), self._driver_now()

    def _disconnect(self, reason: str) -> None:
        if self.fsm.state != H.DISCONNECTED:
            self.fsm.disconnect()
            self.events.append(LinkEvent("disconnected", {"reason": reason}))
            self._emit("handoff_link", peer=self.peer, state="disconnected", reason=reason)

    # -- receiving -------------------------------------------------------------------------------
    def handle(self, raw: object) -> None:
        """Act on a peer's message. A malformed one is dropped, logged and answered with a
        Notification (at most one per ``alive_every``): it never reaches the state machine."""
        try:
            msg = parse(raw)
        except MalformedMessage as exc:
            self.reject(f"malformed message: {exc}")
            return
        self._emit("handoff", direction="recv", peer=self.peer, **msg)
        kind, session = msg.get("type"), msg.get("session")
        if kind == "ServiceDescription":
            self._service_description(msg)
            return
        if session != self.session:
            if self.role == "sender" and kind != "Notification":
                self._notify("UnknownSession", f"no session {session!r} here", session)
            return  # stale: another session's message
        self._peer_seen = self._wall()
        if kind == "Notification" and msg.get("code") == "UnknownSession" and self.role == "receiver":
            self._disconnect("the sender does not know our session (it restarted)")
            self._open()
            return
        if kind in ("Resync", "ResyncTransfer", "ResyncAck"):
            self.events.append(LinkEvent(kind, msg))
            return
        try:
            acted = self.fsm.receive(kind, msg.get("part"))
        except ProtocolError as exc:
            self._notify("ProtocolError", str(exc))
            self._disconnect(f"protocol error: {exc}")
            return
        if acted and kind not in ("CheckAlive", "Notification", "BoardForecast"):
            self.events.append(LinkEvent(kind, msg))
        if kind == "Notification" and msg.get("severity") == "Fatal":
            self._disconnect(f"peer reported {msg.get('code')}: {msg.get('text')}")

    def reject(self, reason: str) -> None:
        """Log a dropped message and tell the peer, at most once per ``alive_every`` (with the count
        dropped since), so that a flood floods neither the log nor the peer."""
        self._rejected += 1
        now = self._wall()
        if now - self._rejected_at <= self.alive_every:
            return
        more = f" (and {self._rejected - 1} more)" if self._rejected > 1 else ""
        self._rejected_at, self._rejected = now, 0
        self._emit("handoff_rejected", peer=self.peer, reason=reason + more)
        if self.connected:
            self._send_raw({"type": "Notification", "session": self.session, "code": "MalformedMessage",
                            "severity": "Warning", "text": (reason + more)[:MAX_TEXT]})

    def _service_description(self, msg: dict) -> None:
        if msg.get("version") != HERMES_VERSION:
            self._notify("ProtocolError", f"version {msg.get('version')!r} not spoken; this side speaks "
                                          f"{HERMES_VERSION}", msg.get("session"))
            return
        if self.role == "sender":
            if self.session == msg["session"] and self.connected:
                return  # a repeated ServiceDescription of the current session
            if self.fsm.state != H.NOT_CONNECTED:
                self._disconnect("the receiver opened a new session")
            self.fsm.reconnect()
            self.fsm.connected()
            self.fsm.receive("ServiceDescription")
            self.session = msg["session"]
            self.fsm.send("ServiceDescription")
            self._send_raw({"type": "ServiceDescription", "session": self.session, "name": self.me,
                            "version": HERMES_VERSION})
        elif msg.get("session") == self.session and self.fsm.state == H.SERVICE_DESCRIPTION_DOWNSTREAM:
            self.fsm.receive("ServiceDescription")
        else:
            return
        self._peer_seen = self._wall()
        self.events.append(LinkEvent("connected", msg))
        self._emit("handoff_link", peer=self.peer, state="connected", session=self.session)

    # -- liveness --------------------------------------------------------------------------------
    def tick(self) -> None:
        now = self._wall()
        if self.connected:
            if now - self._peer_seen > self.timeout:
                self._disconnect(f"no message from {self.peer} for {self.timeout}s")
            elif now - self._alive_sent > self.alive_every:
                self._alive_sent = now
                self.fsm.send("CheckAlive")
                self._send_raw({"type": "CheckAlive", "session": self.session})
        if (self.role == "receiver" and not self.connected and now - self._sd_sent > RECONNECT_EVERY
                and self._driver_now() - self._sd_sent_driver > RECONNECT_EVERY):
            self._open()

    def take_events(self) -> list[LinkEvent]:
        events, self.events = self.events, []
        return events
