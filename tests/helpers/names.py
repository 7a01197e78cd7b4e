"""Which modules of this repository are loaded under more than one name."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MAPPED_FOLDERS = ("drivers", "skills", "twin", "configs")  # beneath cellctl when installed
OURS = ("cellctl", *MAPPED_FOLDERS, "tests", "benchmarks")


def loaded_twice() -> dict[str, list[str]]:
    """Files of this repository loaded as more than one module (``drivers.errors`` and
    ``cellctl.drivers.errors`` would be two classes to ``except``), by file."""
    names: dict[str, list[str]] = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path and any(Path(path).resolve().is_relative_to(REPO / folder) for folder in OURS):
            names.setdefault(str(Path(path).resolve()), []).append(name)
    return {path: sorted(n) for path, n in names.items() if len(n) > 1}
