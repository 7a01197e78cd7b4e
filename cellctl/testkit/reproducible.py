"""What must be the same, run against run: a lockstep run with the same config, parts and seed and no
process faults gives the same events at the same sim times. ``canonical_events`` is that part of a
run's ``events.jsonl``; ``fingerprint`` its hash, printed by ``cellctl test`` so two runs (two
machines, two workers) can be compared at a glance.

Left out, because they are wall-clock facts by design, not the line's behaviour: ``wall_time``; the
launcher's own events (process ids, supervision; they have no sim time); and CheckAlive messages,
the Hermes liveness heartbeat, sent every ``check_alive`` wall seconds. The file's interleaving of
two cells' lines is not part of it either (each process appends its own): events are ordered by
sim time, then cell, then each cell's own order.
"""

from __future__ import annotations

import hashlib
import json

WALL_CLOCK_MESSAGES = frozenset({"CheckAlive"})


def canonical_events(events: list[dict]) -> list[dict]:
    kept = [(e.get("sim_time"), str(e.get("cell") or e.get("robot") or ""), i, e) for i, e in enumerate(events)
            if e.get("sim_time") is not None and e.get("type") not in WALL_CLOCK_MESSAGES]
    kept.sort(key=lambda k: (k[0], k[1], k[2]))
    return [{k: v for k, v in e.items() if k != "wall_time"} for *_, e in kept]


def fingerprint(events: list[dict]) -> str:
    """sha256 of the canonical events (the first 16 hex digits)."""
    digest = hashlib.sha256()
    for event in canonical_events(events):
        digest.update(json.dumps(event, sort_keys=True).encode())
        digest.update(b"\n")
    return digest.hexdigest()[:16]
