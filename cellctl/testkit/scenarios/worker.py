"""``python -m cellctl.testkit.scenarios.worker SCENARIO RUN_DIR``: one scenario in this process, for
``cellctl test`` (a local worker or a Ray task). Its last stdout line is the result as JSON after
``RESULT_PREFIX``; the line's own output goes to stderr."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console

from cellctl.testkit.scenarios.campaign import RESULT_PREFIX
from cellctl.config.loader import ConfigError
from cellctl.processes.signals import stop_on_sigterm
from cellctl.testkit.scenarios.schema import load_scenario
from cellctl.testkit.scenarios.run import ScenarioResult, run_scenario


def main(argv: list[str]) -> int:
    path, run_dir = Path(argv[0]), Path(argv[1])
    try:
        scenario = load_scenario(path)
    except ConfigError as exc:
        result = ScenarioResult(path.stem, str(path), False, malformed=exc.lines)
    else:
        stop_on_sigterm()
        result = run_scenario(scenario, run_dir, Console(stderr=True, highlight=False))
    print(RESULT_PREFIX + json.dumps(result.to_json()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
