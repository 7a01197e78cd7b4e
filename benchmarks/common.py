"""Shared helpers: percentiles, and a temporary config derived from a shipped one."""

from __future__ import annotations

import statistics
import tempfile
from contextlib import contextmanager
from pathlib import Path

import yaml

from cellctl.config.paths import CONFIG_DIR


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def median(values: list[float]) -> float:
    return statistics.median(values)


@contextmanager
def config_variant(name: str, **twin: object):
    """``configs/NAME`` with ``twin:`` keys overridden, as a temporary file."""
    data = yaml.safe_load((CONFIG_DIR / name).read_text())
    data["twin"] = {**data.get("twin", {}), **twin}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_text(yaml.safe_dump(data))
        yield path
