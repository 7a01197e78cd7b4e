"""Named crash points for crash-safety tests: ``CELLCTL_CRASH_AT=NAME`` makes the process SIGKILL
itself the first time it reaches ``crash_point(NAME)``, exactly as a power cut there would."""

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


def crash_point(name: str) -> None:
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
