"""cellctl's pytest plugin (entry point ``pytest11``: installing cellctl is enough). Factory
fixtures: each returns a function, so a test passes its own config; every process they start runs
on ephemeral loopback ports and is stopped when the test ends, passed or failed.

    def test_my_line(cellctl_line):
        result = cellctl_line("my_line.yaml", parts=5)
        assert result.summary["parts_out"] == 5 and result.summary["lost"] == 0
        result.assert_never(None, "Held")
        result.assert_visited("part-1", ["infeed", "handoff", "outfeed"])

``docs/testing.md`` has an example of each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # imported by the fixtures when used: every pytest session loads this plugin,
    # and one that does not use cellctl must not pay for PyBullet's import (nor print its banner)
    from cellctl.processes.children import TwinProcess
    from cellctl.testkit.harness import CellUnderTest, LineResult


@pytest.fixture
def cellctl_twin() -> Iterator[Callable[..., TwinProcess]]:
    """``cellctl_twin(config, **options)`` → a running twin server (``.endpoint``,
    ``.driver(robot)`` → a ``TwinDriver``). ``options``: ``extra=[...]`` flags of ``cellctl twin
    serve``, ``log=PATH``, ``ready_timeout``."""
    from cellctl.testkit.harness import start_twin

    started: list[TwinProcess] = []

    def start(config: str | Path, **options: object) -> TwinProcess:
        twin = start_twin(config, **options)
        started.append(twin)
        return twin

    yield start
    for twin in started:
        twin.stop()


@pytest.fixture
def cellctl_line(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., LineResult]:
    """``cellctl_line(config, parts=N, **options)`` → the finished run of the whole line in
    lockstep (:class:`~cellctl.testkit.harness.LineResult`). ``options`` are ``cellctl run`` flags
    (``timeout=300``, ``watchdog=30``)."""
    from cellctl.testkit.harness import run_line

    def run(config: str | Path, parts: int | None = None, **options: object) -> LineResult:
        return run_line(config, tmp_path_factory.mktemp("line") / "run", parts, **options)

    return run


@pytest.fixture
def cellctl_cell(cellctl_twin: Callable[..., TwinProcess],
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., CellUnderTest]]:
    """``cellctl_cell(config, name, parts=None, start=False)`` → one cell process against its own
    twin (:class:`~cellctl.testkit.harness.CellUnderTest`: ``status()``, ``command(...)``,
    ``wait_state(...)``, ``events()``). In lockstep the twin waits for every cell of the config:
    give a config whose only cell is ``name``."""
    from cellctl.testkit.harness import CellUnderTest, require_lockstep

    started: list[CellUnderTest] = []

    def start(config: str | Path, name: str, parts: int | None = None, start: bool = False) -> CellUnderTest:
        require_lockstep(config)
        twin = cellctl_twin(config)
        cell = CellUnderTest(config, name, twin.endpoint, tmp_path_factory.mktemp(f"cell-{name}"), parts, start)
        started.append(cell)
        return cell

    yield start
    for cell in started:
        cell.stop()
