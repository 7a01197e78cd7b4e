"""``python -m tests.helpers.installed_layout SITE``: check that the wheel unpacked in SITE holds
every module of the repository beneath the one top-level name ``cellctl``, as import-linter sees
it there (grimp walks the installed package, where drivers/, skills/ and twin/ are
``cellctl.drivers``, ``cellctl.skills`` and ``cellctl.twin``). A package left out of
pyproject.toml's list would be missing from the wheel and from the contracts: exit 1, naming it."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MAPPED = {"cellctl": "cellctl", "drivers": "cellctl.drivers", "skills": "cellctl.skills",
          "twin": "cellctl.twin", "configs": "cellctl.configs"}


def repository_modules() -> set[str]:
    """Every module of the repository under the name it has when installed."""
    names = set()
    for folder, prefix in MAPPED.items():
        for path in (REPO / folder).rglob("*.py"):
            parts = list(path.relative_to(REPO / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            names.add(".".join([prefix, *parts]))
    return names


def main(site: str) -> int:
    sys.path.insert(0, str(Path(site).resolve()))
    import grimp

    seen = set(grimp.build_graph("cellctl").modules)
    tops = {p.name for p in Path(site).iterdir() if p.is_dir() and not p.name.endswith(".dist-info")}
    missing = sorted(repository_modules() - seen)
    for name in missing:
        print(f"installed layout: {name} is not in the wheel (add its package to pyproject.toml)", file=sys.stderr)
    if tops != {"cellctl"}:
        print(f"installed layout: top-level names {sorted(tops)}; expected only cellctl", file=sys.stderr)
    print(f"installed layout: {len(seen)} modules beneath cellctl, {len(missing)} missing")
    return 1 if missing or tops != {"cellctl"} else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
