"""How a cellctl process ends when it is asked to: SIGTERM (a supervisor, systemd, ``kill``) ends it
as Ctrl-C does, by raising KeyboardInterrupt in the main thread, so the same ``finally`` blocks
stop its children, close its sockets and write its summary on either path."""

from __future__ import annotations

import signal


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def stop_on_sigterm() -> None:
    """From now on SIGTERM raises KeyboardInterrupt (call it from the main thread)."""
    signal.signal(signal.SIGTERM, _interrupt)
