"""Lines a test writes to the terminal even when it passes: the CI log keeps the evidence an issue
asks for (a campaign's summary, the refused clients), where captured output would be dropped."""

from __future__ import annotations

import pytest


def to_ci_log(pytestconfig: pytest.Config, line: str) -> None:
    with pytestconfig.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
        print(f"\n{line}", flush=True)
