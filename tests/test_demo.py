"""The README's main job: `cellctl demo` delivers every part, and --json ends stdout with the summary."""

from __future__ import annotations

import json
import subprocess
import sys


def test_demo_json_summary():
    result = subprocess.run([sys.executable, "-m", "cellctl", "demo", "--parts", "2", "--json"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["parts_in"] == summary["parts_out"] == 2
    assert summary["faults"] == 0
    assert summary["sim_s"] > 0 and summary["wall_s"] > 0
