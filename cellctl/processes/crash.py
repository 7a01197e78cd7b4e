"""Named crash points for crash-safety tests: ``CELLCTL_CRASH_AT=NAME`` makes the process SIGKILL
itself the first time it reaches ``crash_point(NAME)``, exactly as a power cut there would.

In-process tests (``cellctl.testkit.fake_line``) ``arm`` a point instead: reaching it raises
:class:`Crash`, a BaseException that no ``except Exception`` of a cell catches, so the cell's
memory is lost exactly there while its ledger file keeps what was committed."""

from __future__ import annotations

import os
import signal

ENV = "CELLCTL_CRASH_AT"
POINTS = (
    "sender_after_place_before_commit",  # the part rests on the handoff station; IN_TRANSIT not committed
    "sender_after_in_transit_commit",  # IN_TRANSIT committed; TransportFinished not sent
    "sender_after_stop_transport_before_commit",  # StopTransport received; GIVEN not committed
    "receiver_after_transport_finished_before_commit",  # TransportFinished received; OWNED not committed
)


class Crash(BaseException):
    """An armed crash point was reached (in-process tests only)."""


_armed: set[str] = set()


def arm(name: str) -> None:
    """The next time this process reaches ``crash_point(name)`` it raises Crash (once)."""
    if name not in POINTS:
        raise ValueError(f"unknown crash point {name!r}; points: {', '.join(POINTS)}")
    _armed.add(name)


def disarm() -> None:
    _armed.clear()


def crash_point(name: str) -> None:
    if name in _armed:
        _armed.discard(name)
        raise Crash(name)
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
