"""The line as an outside client sees it, for the servers that show it to people and systems (the
operator's page, OPC UA): each cell's status socket (read-only, an observer's key is enough under
CURVE), the run directory's events when it is on this PC, and each cell's control socket for a
command — the same requests as ``cellctl status`` and ``cellctl cmd``, so a server never calls into
a cell and a command is queued for the cell's next tick or refused with the PackML reason.

The sockets are blocking ZeroMQ requests with a timeout, run in worker threads so the server's event
loop never waits on a cell; what they bring is handed to the listener on the event loop. A cell that
does not answer is shown with the reason ``cellctl status`` gives (``why_silent``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from cellctl.cell.control import request
from cellctl.drivers.curve import Keys
from cellctl.line.addresses import CellAddress, TargetError, resolve, why_silent
from cellctl.rundir import EventTail, RunDir

log = logging.getLogger("cellctl.feeds")

STATUS_EVERY_S = 0.5
STATUS_TIMEOUT_S = 1.5
EVENTS_EVERY_S = 0.25
COMMAND_TIMEOUT_S = 3.0


class Sent(StrEnum):
    QUEUED = "queued"
    REFUSED = "refused"  # the cell's PackML state forbids it (the reason says why)
    NO_ANSWER = "no_answer"


class Listener(Protocol):
    """What a server keeps of the line (``cellctl.dashboard.view.LineView``, the OPC UA address space)."""

    @property
    def cells(self) -> dict: ...  # the cells' names are its keys

    def on_status(self, cell: str, status: dict | None, why: str | None = None) -> None: ...

    def on_events(self, events: list[dict]) -> None: ...


class Commander(Protocol):
    """Where a server's commands go (``Feeds``: the cell's control socket, as ``cellctl cmd``)."""

    async def command(self, cell: str, command: str, user: str | None) -> tuple[Sent, str]: ...


@dataclass
class Feeds:
    """The cells of one target (a run directory or a line config with fixed ports)."""

    target: str
    view: Listener
    keys: Keys | None = None
    by: str = "page"  # who the cells' command events name as the sender (``cellctl.cell.control``'s ``by``)
    _tail: EventTail | None = field(default=None, init=False, repr=False)
    _reading: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def run(self) -> RunDir | None:
        return RunDir(Path(self.target)) if Path(self.target).is_dir() else None

    def _address(self, cell: str) -> CellAddress:
        """Looked up again each time: a restarted cell announces new ephemeral ports (one not
        announced yet has none)."""
        try:
            return resolve(self.target, cell)[0][0]
        except TargetError:
            return CellAddress(cell, None, None)

    async def poll_status(self, cell: str) -> None:
        while True:
            status, why = await asyncio.to_thread(self._status_once, cell)
            self.view.on_status(cell, status, why)
            await asyncio.sleep(STATUS_EVERY_S)

    def _status_once(self, cell: str) -> tuple[dict | None, str | None]:
        """The cell's status reply, or None and why it gave none."""
        address, run = self._address(cell), self.run
        try:
            if address.status is None:
                raise TimeoutError("not started")
            reply = request(address.status, "status", timeout=STATUS_TIMEOUT_S, keys=self.keys, cell=cell)
        except TimeoutError:
            return None, why_silent(run, address, self.keys is not None)
        if reply.get("ok"):
            return reply["result"], None
        return None, f"cell {cell}: {reply.get('error', {}).get('message')}"

    async def follow_events(self, run: RunDir) -> None:
        self._tail = EventTail(run.events)
        while True:
            events = await asyncio.to_thread(self._read)
            if events:
                self.view.on_events(events)
            await asyncio.sleep(EVENTS_EVERY_S)

    def _read(self) -> list[dict]:
        with self._reading:  # a cancelled follower's thread may still be in the tail
            return self._tail.read() if self._tail is not None else []

    def read_events(self) -> None:
        """A server's last look at the run's events before it stops (on its event loop)."""
        if events := self._read():
            self.view.on_events(events)

    async def command(self, cell: str, command: str, user: str | None) -> tuple[Sent, str]:
        """Send ``command`` to ``cell`` as ``cellctl cmd`` does (``by`` this server, the user
        recorded): what became of it, and the reply for the person or system that asked."""
        address, run = self._address(cell), self.run
        try:
            if address.control is None:
                raise TimeoutError("not started")
            reply = await asyncio.to_thread(request, address.control, "command", timeout=COMMAND_TIMEOUT_S,
                                            keys=self.keys, cell=cell, command=command, by=self.by,
                                            **({"user": user} if user else {}))
        except TimeoutError:
            return Sent.NO_ANSWER, why_silent(run, address, self.keys is not None)
        if not reply.get("ok"):
            return Sent.REFUSED, f"{cell}: {reply['error']['message']}"
        r = reply["result"]
        log.info(f"{self.by}: {user or 'anonymous'} sent {command} to {cell}: queued (state {r['state']})")
        return Sent.QUEUED, f"{cell}: {r['queued']} queued (state {r['state']}): applied at its next tick"

    def tasks(self) -> list:
        """The coroutines that keep the view fed."""
        run = self.run
        found = [self.poll_status(cell) for cell in self.view.cells]
        return found + ([self.follow_events(run)] if run is not None else [])
