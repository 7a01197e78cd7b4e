"""``python -m benchmarks [--quick] [--json] [--peers]``: every benchmark, each against its baseline
measured in the same run. ``--json`` prints one JSON object as the last line of stdout. ``--peers``
(opt-in) also runs pybullet-fleet on the same job as an all-Panda line (``benchmarks/peers.py``; its
virtualenv is made on first use)."""

from __future__ import annotations

import argparse
import json
import platform
import os

from benchmarks import cli_start, line_scale, peers, ros_path, rtt, skill_tick, startup, twin_overhead

GOALS = {"twin_overhead_ratio": 1.25, "rtt_ratio": 1.3}


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks")
    ap.add_argument("--quick", action="store_true", help="fewer rounds and sizes: under a minute")
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    ap.add_argument("--peers", action="store_true", help="also run pybullet-fleet 0.8 on the same job (installs it "
                                                         "into .cache/peers/venv on first use)")
    args = ap.parse_args()
    result: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
                    "quick": args.quick}
    for module in (twin_overhead, rtt, ros_path, skill_tick, line_scale, cli_start, startup,
                   *([peers] if args.peers else [])):
        result.update(module.main(quick=args.quick))
    print(f"machine: {result['machine']}")
    cost = result["twin_overhead_cost"]
    print(f"twin overhead (pick-and-place, lockstep next-event / raw PyBullet replay): {result['twin_overhead_ratio']}"
          f"  (goal <= {GOALS['twin_overhead_ratio']}); {result['twin_overhead_ours_s']} s against "
          f"{result['twin_overhead_raw_s']} s raw: the controller's Python (skills, planning, IK, envelope) "
          f"{cost['controller_s']} s, inside {cost['requests']} requests {cost['in_requests_s']} s, of which beyond "
          f"the raw replay {cost['twin_extra_s']} s ({cost['steps']} steps)")
    print(f"round trip p50/p99: twin driver {result['rtt_p50_us']}/{result['rtt_p99_us']} us, bare pyzmq "
          f"{result['rtt_raw_p50_us']}/{result['rtt_raw_p99_us']} us, ratio {result['rtt_ratio']} "
          f"(goal <= {GOALS['rtt_ratio']})")
    print(f"goal -> first feedback: ROS {result['ros_feedback_ms']} ms, twin driver {result['twin_feedback_ms']} ms, "
          f"ratio {result['ros_feedback_ratio']}")
    print(f"skill tick: idle {result['skill_tick_us']['idle']} us, moving {result['skill_tick_us']['moving']} us")
    for row in result["scale"]:
        c = row["cost"]
        print(f"line of {row['cells']} cells: {row['rtf']}x real time, {row['wall_ms_per_part']} ms wall per part, "
              f"peak {row['peak_rss_mb']} MB; cost: bare step {c['bare_us_per_step']} us, twin CPU "
              f"{c['twin_cpu_us_per_step']} us/step (+{c['twin_python_us_per_step']}), round trips "
              f"{c['round_trips_per_part']}/part {c['round_trips_per_sim_s']}/sim s, controllers "
              f"{c['controller_cpu_ms_per_part']} ms CPU/part")
    for row in result.get("peers", {}).get("sizes", []):
        ratio = row["peer_ratio"] if row["peer_ratio"] is not None else f"none (physics differ: {row['physics_differ']})"
        print(f"{row['arms']} Panda arms: ours {row['ours_rtf']}x, {result['peers']['peer']} {row['peer_rtf']}x, "
              f"peer_ratio {ratio} (goal >= {row['goal']}; ceiling {row['ceiling']}: the peer's wall / bare "
              f"stepSimulation {row['bare_rtf']}x)")
    print(f"command start-up (python -c pass: {result['cli_python_start_s']} s): "
          + ", ".join(f"cellctl {k} {v} s ({result['cli_start_ratio'][k]}x)" for k, v in result["cli_start_s"].items()))
    st = result["startup"]
    print(f"demo line, 1 part: {st['before_first_tick_s']} s from `cellctl run` to the first tick "
          f"({st['first_tick_ratio']}x a bare `import pybullet, zmq`, {st['import_pybullet_zmq_s']} s; goal <= 2; "
          f"the first process started at {st['launcher_s']} s, the twin announced itself at {st['twin_ready_s']} s), "
          f"{st['ticking_s']} s ticking, {st['after_last_part_s']} s after the last part")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
