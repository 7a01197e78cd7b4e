"""Where the page's facts come from and where its commands go: each cell's status socket (read-only,
an observer's key is enough under CURVE), the run directory's events when it is on this PC, and each
cell's control socket for a command — the same requests as ``cellctl status`` and ``cellctl cmd``.

The sockets are blocking ZeroMQ requests with a timeout, run in worker threads so the web server's
event loop never waits on a cell. A cell that does not answer is shown with the reason
``cellctl status`` gives (``cellctl.line.addresses.why_silent``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from enum import StrEnum

from cellctl.cell.control import request
from cellctl.dashboard.view import LineView
from cellctl.drivers.curve import Keys
from cellctl.line.addresses import CellAddress, resolve, why_silent
from cellctl.rundir import EventTail, RunDir

log = logging.getLogger("cellctl.dashboard")

STATUS_EVERY_S = 0.5
STATUS_TIMEOUT_S = 1.5
EVENTS_EVERY_S = 0.25
COMMAND_TIMEOUT_S = 3.0


class Sent(StrEnum):
    QUEUED = "queued"
    REFUSED = "refused"  # the cell's PackML state forbids it (the reason says why)
    NO_ANSWER = "no_answer"


@dataclass
class Feeds:
    """The cells of one target (a run directory or a line config with fixed ports)."""

    target: str
    view: LineView
    keys: Keys | None = None

    @property
    def run(self) -> RunDir | None:
        return resolve(self.target, None)[1]

    def _address(self, cell: str) -> CellAddress:
        """Looked up again each time: a restarted cell announces new ephemeral ports."""
        return resolve(self.target, cell)[0][0]

    async def poll_status(self, cell: str) -> None:
        while True:
            await asyncio.to_thread(self._status_once, cell)
            await asyncio.sleep(STATUS_EVERY_S)

    def _status_once(self, cell: str) -> None:
        address, run = self._address(cell), self.run
        try:
            if address.status is None:
                raise TimeoutError("not started")
            reply = request(address.status, "status", timeout=STATUS_TIMEOUT_S, keys=self.keys, cell=cell)
        except TimeoutError:
            self.view.on_status(cell, None, why_silent(run, address, self.keys is not None))
            return
        if reply.get("ok"):
            self.view.on_status(cell, reply["result"])
        else:
            self.view.on_status(cell, None, f"cell {cell}: {reply.get('error', {}).get('message')}")

    async def follow_events(self, run: RunDir) -> None:
        tail = EventTail(run.events)
        while True:
            events = await asyncio.to_thread(tail.read)
            if events:
                self.view.on_events(events)
            await asyncio.sleep(EVENTS_EVERY_S)

    async def command(self, cell: str, command: str, user: str) -> tuple[Sent, str]:
        """Send ``command`` to ``cell`` as ``cellctl cmd`` does (``by`` page, the user recorded):
        what became of it, and the reply for the person who pressed the button."""
        address, run = self._address(cell), self.run
        try:
            if address.control is None:
                raise TimeoutError("not started")
            reply = await asyncio.to_thread(request, address.control, "command", timeout=COMMAND_TIMEOUT_S,
                                            keys=self.keys, cell=cell, command=command, by="page", user=user)
        except TimeoutError:
            return Sent.NO_ANSWER, why_silent(run, address, self.keys is not None)
        if not reply.get("ok"):
            return Sent.REFUSED, f"{cell}: {reply['error']['message']}"
        r = reply["result"]
        log.info(f"dashboard: {user} sent {command} to {cell}: queued (state {r['state']})")
        return Sent.QUEUED, f"{cell}: {r['queued']} queued (state {r['state']}): applied at its next tick"

    def tasks(self) -> list:
        """The coroutines that keep the view fed."""
        run = self.run
        found = [self.poll_status(cell) for cell in self.view.cells]
        return found + ([self.follow_events(run)] if run is not None else [])
