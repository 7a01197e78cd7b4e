"""When a process of the line may start again after it died: a restart policy that answers with a
due time, never by sleeping, so a crash loop does not freeze the watchdog or the twin checks.

A process that keeps dying restarts after a backoff that doubles with each restart of the last
``burst_window_s`` (a crash loop must not spin), at most ``max_per_hour`` times in any hour; past
that the line gives up on it and reports its last log lines."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_RESTARTS_PER_HOUR = 20
RESTART_BACKOFF_S = 0.5
MAX_BACKOFF_S = 10.0
BURST_WINDOW_S = 20.0
HOUR_S = 3600.0


@dataclass
class RestartPolicy:
    """Restart bookkeeping per process name, on an injected monotonic clock."""

    max_per_hour: int = MAX_RESTARTS_PER_HOUR
    backoff_s: float = RESTART_BACKOFF_S
    max_backoff_s: float = MAX_BACKOFF_S
    burst_window_s: float = BURST_WINDOW_S
    clock: Callable[[], float] = time.monotonic
    restarts: Counter[str] = field(default_factory=Counter)
    _times: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list), repr=False)

    def schedule(self, name: str) -> float | None:
        """The clock time at which ``name`` may start again, or None: it has been restarted
        ``max_per_hour`` times within the last hour (give up on it)."""
        now = self.clock()
        recent = self._times[name] = [t for t in self._times[name] if now - t < HOUR_S]
        if len(recent) >= self.max_per_hour:
            return None
        burst = sum(1 for t in recent if now - t < self.burst_window_s)
        due = now + (min(self.backoff_s * 2 ** burst, self.max_backoff_s) if burst else 0.0)
        recent.append(due)
        self.restarts[name] += 1
        return due
