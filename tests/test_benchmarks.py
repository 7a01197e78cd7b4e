"""Smoke test: ``python -m benchmarks --quick --json`` runs and reports every key. No timing
asserts here: speed is measured in benchmarks, not in tests."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.process  # starts twins, cells, launchers or bridges

KEYS = ("twin_overhead_ratio", "rtt_p50_us", "rtt_raw_p50_us", "rtt_ratio", "ros_feedback_ratio", "scale",
        "skill_tick_us", "cli_start_s", "cli_start_ratio", "startup")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_quick_benchmarks_report_every_key():
    result = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--json"], capture_output=True,
                            text=True, timeout=280)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    for key in KEYS:
        assert key in report, key
    assert [row["cells"] for row in report["scale"]] == [1, 2]
    assert all(set(row) == {"cells", "rtf", "wall_ms_per_part", "peak_rss_mb", "startup_s", "cost"}
               for row in report["scale"])
    assert all(set(row["cost"]) == {"bare_us_per_step", "twin_cpu_us_per_step", "twin_python_us_per_step",
                                    "round_trips_per_part", "round_trips_per_sim_s", "controller_cpu_ms_per_part"}
               and row["cost"]["bare_us_per_step"] > 0 and row["cost"]["round_trips_per_part"] > 0
               for row in report["scale"])
    assert "peers" not in report  # opt-in (--peers): the smoke test never installs the peer
    assert report["startup"]["before_first_tick_s"] > 0 and 0 < report["startup"]["share_before"] < 1
    assert all(row["rtf"] > 0 and row["peak_rss_mb"] > 0 for row in report["scale"])
    assert report["twin_overhead_ratio"] > 0 and report["rtt_ratio"] > 0
    assert set(report["cli_start_s"]) == {"--help", "status (no cells)", "check --no-reach", "check (reach test)"}
    assert all(s > 0 for s in report["cli_start_s"].values())
