"""Lines a test writes to the terminal even when it passes: the CI log keeps the evidence an issue
asks for (a campaign's summary, the refused clients), where captured output would be dropped.

Under pytest-xdist a worker's terminal is not the run's: with CELLCTL_CI_LOG=FILE the lines are
appended there too, and ``make test`` prints the file after the run."""

from __future__ import annotations

import os

import pytest


def to_ci_log(pytestconfig: pytest.Config, line: str) -> None:
    with pytestconfig.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
        print(f"\n{line}", flush=True)
    if path := os.environ.get("CELLCTL_CI_LOG"):
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
