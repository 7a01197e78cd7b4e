"""Broken configs: each gets its exact message (file, key path, expected, found), exit 2, and no
traceback from the CLI."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cellctl.config.loader import ConfigError, load_config

GOOD = """\
version: 1
robots:
  r1: {model: kuka_iiwa, base: {position: [0, 0, 0]}}
stations:
  s1: {position: [0.5, 0, 0.3]}
parts:
  - {id: p1, station: s1}
"""

BUILTIN_SKILLS = ["load_machine", "move_joints", "move_pose", "pick", "place", "start_job", "unload_machine", "wait",
                  "wait_job"]

CASES = [
    ("version: 2\nrobots: {r1: {model: kuka_iiwa, base: {position: [0, 0, 0]}}}\n",
     ["version: expected 1, found 2"]),
    ("robots: {}\n", ["version: expected the config format version (1), found nothing"]),
    ("version: 1\nrobots:\n  r1: {model: ur5, base: {position: [0, 0, 0]}}\n",
     ["robots.r1.model: expected 'kuka_iiwa', 'franka_panda' or 'xarm', found 'ur5'"]),
    ("version: 1\nrobots:\n  r1: {model: xarm, base: {position: [0, 0, 0]}, tcpp: {link: x}}\n",
     ["robots.r1.tcpp: expected only keys of the schema (misspelt?), found unknown key 'tcpp'"]),
    ("version: 1\nrobots:\n  r1: {model: xarm, base: {position: [0, zero, 0]}}\n",
     ["robots.r1.base.position.1: expected a valid number, unable to parse string as a number, found 'zero'"]),
    ("version: 1\nrobots:\n  r1: {model: xarm, base: {position: [0, 0, 0]}, max_velocity: [1, 2]}\n",
     ["robots.r1.max_velocity: expected 6 values (one per joint of xarm), found 2"]),
    ("version: 1\nrobots:\n  r1: {model: xarm, base: {position: [0, 0, 0]}, max_velocity: [1, 2, 3, 4, 5, -6]}\n",
     ["robots.r1.max_velocity.5: expected greater than 0, found -6"]),
    (GOOD.replace("station: s1", "station: s9"),
     ["parts.0.station: expected one of the stations ['s1'], found 's9'"]),
    ("version: 1\nrobots: [oops\n", ["3:1: not valid YAML: expected ',' or ']', but got '<stream end>'"]),
    ("version: 1\nrobots:\n  r1: {urdf: nothere.urdf, tcp: {link: L7}, max_acceleration: [1], base: {position: [0, 0, 0]}}\n",
     ["robots.r1.urdf: expected a readable URDF with the TCP link, found 'no URDF file nothere.urdf'"]),
    ("version: 1\nrobots:\n  r1: {urdf: kuka_iiwa/model.urdf, max_acceleration: [1], base: {position: [0, 0, 0]}}\n",
     ["robots.r1: expected tcp: {link, offset} and max_acceleration with urdf (URDFs carry no acceleration limits), "
      "found {'urdf': 'kuka_iiwa/model.urdf', 'max_acceleration': [1], 'base': {'position': [0, 0, 0]}}"]),
    ("version: 1\nrobots:\n  r1: {urdf: kuka_iiwa/model.urdf, tcp: {link: lbr_iiwa_link_7}, max_acceleration: [1, 1], "
     "base: {position: [0, 0, 0]}}\n",
     ["robots.r1.max_acceleration: expected 7 values (one per joint of model.urdf), found 2"]),
    ("version: 1\ntwin: {mode: lockstep}\nrobots:\n  r1: {model: xarm, base: {position: [0, 0, 0]}, "
     "driver: {ros: {url: 'ws://10.0.0.5:9090'}}}\n",
     ["twin.mode: expected realtime: robots reached through ROS (r1: driver.ros) do not take part in lockstep, "
      "found 'lockstep'"]),
    ("version: 1\nrobots:\n  r1: {model: xarm, base: {position: [0, 0, 0]}, driver: {ros: {url: 'http://x'}}}\n",
     ["robots.r1.driver.ros.url: expected a rosbridge URL, ws://HOST:PORT or wss://HOST:PORT, found 'http://x'"]),
    ("version: 1\nrobots:\n  r1: {model: xarm, base: {position: [0, 0, 0]}, driver: {ros: {url: 'ws://h:1', "
     "names: {preset: abb}}}}\n",
     ["robots.r1.driver.ros.names.preset: expected 'twin', 'ur', 'franka' or 'kuka_lbr', found 'abb'"]),
    ("version: 1\nrobots:\n  r1: {model: xarm, base: {position: [0, 0, 0]}, driver: {ros: {url: 'ws://h:1', "
     "joints: {j9: X}}}}\n",
     ["robots.r1.driver.ros.joints.j9: expected a joint of xarm (joint1, joint2, joint3, joint4, joint5, joint6), "
      "found 'j9'"]),
]


@pytest.mark.parametrize("text,expected", CASES)
def test_broken_config_messages(tmp_path, text, expected):
    path = tmp_path / "line.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.lines == [f"{path}: {e}" if not e[0].isdigit() else f"{path}:{e}" for e in expected]


def test_good_config_loads(tmp_path):
    path = tmp_path / "line.yaml"
    path.write_text(GOOD)
    config = load_config(path)
    assert config.robots["r1"].tcp_link == "lbr_iiwa_link_7"
    assert [p.id for p in config.parts] == ["p1"]


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "nope.yaml")
    assert err.value.lines == [f"{tmp_path / 'nope.yaml'}: cannot read the file: No such file or directory"]


def _cellctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cellctl", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.process
def test_check_cli_exit_codes(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(textwrap.dedent(CASES[2][0]))
    result = _cellctl("check", str(bad))
    assert result.returncode == 2
    assert result.stderr.strip() == f"{bad}: {CASES[2][1][0]}"
    assert "Traceback" not in result.stderr
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    result = _cellctl("check", str(good))
    assert result.returncode == 0, result.stderr
    assert "ok (1 robots, 1 stations, 1 parts, 0 cells)" in result.stdout


@pytest.mark.process
def test_twin_serve_refuses_non_loopback():
    result = _cellctl("twin", "serve", "configs/demo_cell.yaml", "--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 2
    assert ("cellctl twin serve: configs/demo_cell.yaml: refusing to bind the twin to '0.0.0.0' without keys: anyone "
            "reaching the port could command it. Set security: {keys: DIR} in the config") in result.stderr


@pytest.mark.process
def test_skills_cli():
    listed = _cellctl("skills", "list")
    assert listed.returncode == 0
    assert [line.split()[0] for line in listed.stdout.splitlines()] == BUILTIN_SKILLS
    shown = _cellctl("skills", "show", "pick")
    assert shown.returncode == 0
    assert "```mermaid\n---\ntitle: skill pick\n---\nstateDiagram-v2\n" in shown.stdout
    assert "\n  idle --> approach: start\n" in shown.stdout
    assert "| station | str or None | None | pick whatever rests on this station |" in shown.stdout
    unknown = _cellctl("skills", "show", "fly")
    assert unknown.returncode == 2 and "unknown skill 'fly'" in unknown.stderr


@pytest.mark.process
def test_binary_file_is_a_config_error(tmp_path):
    path = tmp_path / "line.yaml"
    path.write_bytes(b"version: 1\n\xff\xfe\x00robots")
    result = _cellctl("check", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"{path}: (top level): expected a YAML text file (UTF-8), " \
                                     f"found a byte 0xff that is not UTF-8 at offset 11"


def test_messages_keep_their_cause(tmp_path):
    path = tmp_path / "line.yaml"
    path.write_text(GOOD + "cells:\n  c1: {robot: r1, take: s1, give: s1, recipe: [{skill: wait, params: {secs: 1}}]}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.lines == [f"{path}: cells.c1.recipe.0: expected a valid skill step (wait: skill wait: parameter "
                               f"seconds: Field required; parameter secs: Extra inputs are not permitted), found "
                               f"{{'skill': 'wait', 'params': {{'secs': 1}}}}"]


def test_removed_twin_seed_says_so(tmp_path):
    path = tmp_path / "line.yaml"
    path.write_text(GOOD.replace("robots:", "twin: {seed: 3}\nrobots:", 1))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.lines == [f"{path}: twin: expected twin.seed was removed: it had no effect (the twin's physics "
                               f"makes no random choice); delete the key, found {{'seed': 3}}"]


@pytest.mark.process
def test_a_broken_skill_entry_point_is_one_line_and_the_others_load(tmp_path):
    dist = tmp_path / "site" / "broken_skills-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-skills\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[cellctl.skills]\nglue = no_such_module:Glue\n")
    env = {**__import__("os").environ, "PYTHONPATH": str(tmp_path / "site")}
    result = subprocess.run([sys.executable, "-m", "cellctl", "skills", "list"], capture_output=True, text=True,
                            timeout=60, env=env)
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "cellctl: skill entry point glue = no_such_module:Glue cannot be loaded: " \
                                    "ModuleNotFoundError: No module named 'no_such_module'"
    assert [line.split()[0] for line in result.stdout.splitlines()] == BUILTIN_SKILLS


@pytest.mark.process
@pytest.mark.parametrize("args,message", [
    (["run", "configs/demo_line.yaml", "--parts", "0"], "argument --parts: expected a whole number of at least 1, found 0"),
    (["chaos", "configs/demo_line.yaml", "--kills", "-3"], "argument --kills: expected a whole number of at least 0, found -3"),
    (["run", "configs/demo_line.yaml", "--watchdog", "nan"], "argument --watchdog: expected a number of seconds above 0, found nan"),
    (["demo", "--parts", "x"], "argument --parts: expected a number, found 'x'"),
    (["run", "--resume", "."], "cellctl run: --resume .: not a run directory (no line.yaml, launch.json)"),
    (["run"], "cellctl run: give a CONFIG (or --resume RUN_DIR)"),
    (["run", "configs/demo_line.yaml", "--timeout", "-5"], "argument --timeout: expected a number of seconds above 0, found -5"),
    (["run", "configs/demo_line.yaml", "--timeout", "nan"], "argument --timeout: expected a number of seconds above 0, found nan"),
    (["demo", "--timeout", "inf"], "argument --timeout: expected a number of seconds above 0, found inf"),
    (["demo", "--driver", "ros", "--rate", "0"], "argument --rate: expected a factor above 0, found 0"),
    (["twin", "serve", "configs/demo_line.yaml", "--port", "70000"],
     "argument --port: expected a port from 0 to 65535 (0: any free port), found 70000"),
    (["twin", "serve", "configs/demo_line.yaml", "--resume-at", "-1"],
     "argument --resume-at: expected a number of seconds of at least 0, found -1"),
    (["cmd", "tcp://127.0.0.1:9", "Start", "--keys", "no-such-dir"],
     "cellctl cmd: no-such-dir/operator.key_secret: no such key file"),
])
def test_command_line_counts_are_checked(args, message):
    result = subprocess.run([sys.executable, "-m", "cellctl", *args], capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).parents[1])
    assert result.returncode == 2 and message in result.stderr, result.stderr
