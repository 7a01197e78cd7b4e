"""``python -m benchmarks.cli_start``: how long cellctl's commands that do not simulate take to
start, against the bare interpreter's start measured in the same run (``python -c pass``): a
technician types ``cellctl status`` and waits for its answer, not for PyBullet or numpy to load."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time

from benchmarks.common import median

COMMANDS = {
    "--help": ["--help"],
    "status (no cells)": ["status", "{dir}"],
    "check --no-reach": ["check", "--no-reach", "{config}"],
    "check (reach test)": ["check", "{config}"],
}


def _wall(args: list[str], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - start)
    return median(times)


def main(quick: bool = False) -> dict:
    from cellctl.config.paths import DEMO_CONFIG

    rounds = 3 if quick else 9
    with tempfile.TemporaryDirectory() as empty:
        bare = _wall([sys.executable, "-c", "pass"], rounds)
        seconds = {name: _wall([sys.executable, "-m", "cellctl",
                                *(a.format(dir=empty, config=DEMO_CONFIG) for a in args)], rounds)
                   for name, args in COMMANDS.items()}
    return {"cli_python_start_s": round(bare, 3), "cli_start_s": {k: round(v, 3) for k, v in seconds.items()},
            "cli_start_ratio": {k: round(v / bare, 1) for k, v in seconds.items()}}


if __name__ == "__main__":
    result = main(quick="--quick" in sys.argv)
    print(f"python -c pass: {result['cli_python_start_s']} s")
    for name, s in result["cli_start_s"].items():
        print(f"cellctl {name}: {s} s ({result['cli_start_ratio'][name]}x the bare interpreter)")
