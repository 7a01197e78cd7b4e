"""The chaos campaign: the demo line and line3 under seeded faults from outside their processes —
SIGKILLs of cells (a third or more mid-transport), SIGSTOP pauses of 1–10 s (most longer than the
silence timeout) and twin kills. Every run must finish with every part out once, nothing lost,
duplicated or stranded. The runs' JSON lines are printed to the terminal (the CI log keeps them)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cellctl.config.paths import CONFIG_DIR
from tests.helpers.ci_log import to_ci_log

pytestmark = [pytest.mark.process, pytest.mark.slow, pytest.mark.timeout(900)]

# (config, seed, parts): enough parts that each run outlasts its plan's faults (~90 s of them) on an
# idle machine too (a line that finishes first gets fewer; the demo line, quicker per part, more parts)
RUNS = [("demo_line", 11, 70), ("line3", 12, 50)]
PLAN = {"kills": 6, "pauses": 8, "twin_kills": 1}


@pytest.fixture(scope="module")
def campaign(tmp_path_factory, pytestconfig) -> list[dict]:
    summaries = []
    for config, seed, parts in RUNS:
        run_dir = tmp_path_factory.mktemp(config) / "run"
        result = subprocess.run(
            [sys.executable, "-m", "cellctl", "chaos", str(CONFIG_DIR / f"{config}.yaml"), "--parts", str(parts),
             "--seed", str(seed), "--kills", str(PLAN["kills"]), "--pauses", str(PLAN["pauses"]),
             "--twin-kills", str(PLAN["twin_kills"]), "--json", "--run-dir", str(run_dir)],
            capture_output=True, text=True, timeout=800)
        summary = json.loads(result.stdout.strip().splitlines()[-1])
        summary["exit"] = result.returncode
        summary["stderr_tail"] = result.stderr.splitlines()[-12:]
        to_ci_log(pytestconfig, f"chaos {config} seed {seed}: "
                                f"{json.dumps({k: v for k, v in summary.items() if k != 'stderr_tail'})}")
        summaries.append(summary)
    return summaries


@pytest.mark.parametrize("index", range(len(RUNS)), ids=[c for c, _, _ in RUNS])
def test_every_run_finishes_with_every_part_out_once(campaign, index):
    s = campaign[index]
    assert s["exit"] == 0 and s["finished"], s
    assert s["parts_in"] == s["parts_out"] >= RUNS[index][2], s
    assert s["lost"] == s["duplicated"] == s["stranded"] == 0, s


def test_the_campaign_sent_the_faults_it_promises(campaign):
    total = {k: sum(s["faults"][k] for s in campaign) for k in campaign[0]["faults"]}
    assert total["kill"] >= 10 and total["pause_over_silence"] >= 10 and total["twin_kill"] >= 2, total
    assert total["kill_in_transport"] * 3 >= total["kill"], total
    assert total["pause_in_transport"] * 3 >= total["pause"], total
