"""The config reference and the commissioning checks (issue: commissioning without guesswork): the
reference made from the schema, limits as a scalar or per joint, preset names switched off with
null, names inside skill params, every problem of a file at once, the twin's port only for cells
that talk to the twin, and a missed grip that says where the TCP was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cellctl.cli.main import main
from cellctl.config.loader import ConfigError, load_config
from cellctl.config.reference import json_schema, markdown
from cellctl.drivers.ros import RosNames

ROOT = Path(__file__).parents[1]


def test_docs_config_md_is_what_the_schema_makes():
    assert (ROOT / "docs" / "config.md").read_text() == markdown(), \
        "docs/config.md is stale: python -m cellctl.config.reference > docs/config.md"


def test_every_key_of_the_schema_says_what_it_is():
    schema = json_schema()
    bare = [f"{name}.{key}" for name, model in [("LineConfig", schema), *schema["$defs"].items()]
            for key, prop in model.get("properties", {}).items() if not prop.get("description")]
    assert bare == []


def test_cellctl_schema_prints_a_json_schema_every_shipped_config_satisfies(capsys):
    import jsonschema
    import yaml

    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema == json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    for config in sorted((ROOT / "configs").glob("*.yaml")):
        jsonschema.validate(yaml.safe_load(config.read_text()), schema)  # what an editor would check as you type


def _config(tmp_path: Path, robots: str, cells: str = "c1: {robot: ur, take: infeed, give: outfeed}") -> Path:
    path = tmp_path / "line.yaml"
    lines = ["version: 1", "twin: {mode: realtime}", "robots:", *(f"  {r}" for r in robots.splitlines()),
             "stations:", "  infeed: {position: [0.4, 0.0, 0.3], feed: {part_type: box, every: 3.0, count: 3, prefix: part}}",
             "  outfeed: {position: [0.4, 0.3, 0.3], sink: true}", "cells:", *(f"  {c}" for c in cells.splitlines())]
    path.write_text("\n".join(lines) + "\n")
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return [line.removeprefix(f"{path}: ") for line in caught.value.lines]


def test_limits_take_one_value_for_every_joint_or_one_per_joint(tmp_path):
    config = load_config(_config(tmp_path, "ur: {model: xarm, base: {position: [0, 0, 0]}, max_acceleration: 5.0, "
                                           "max_velocity: [1, 1, 1, 2, 2, 2]}"))
    robot = config.robots["ur"]
    assert robot.acceleration_limits == (5.0,) * 6 and robot.velocity_limits == (1, 1, 1, 2, 2, 2)
    assert _problems(_config(tmp_path, "ur: {model: xarm, base: {position: [0, 0, 0]}, max_acceleration: [5, 5]}")) == \
        ["robots.ur.max_acceleration: expected 6 values (one per joint of xarm), found 2"]
    assert _problems(_config(tmp_path, "ur: {model: xarm, base: {position: [0, 0, 0]}, max_acceleration: -1}")) == \
        ["robots.ur.max_acceleration: expected greater than 0, found -1"]


def test_preset_topics_are_switched_off_with_null(tmp_path):
    ros = "{ros: {url: 'ws://10.0.0.5:9090', names: {preset: ur, robot_mode: null, safety_mode: null}}}"
    config = load_config(_config(tmp_path, f"ur: {{model: xarm, base: {{position: [0, 0, 0]}}, driver: {ros}}}"))
    names = RosNames.from_config("ur", config.robots["ur"].driver.ros)
    assert names.robot_mode is None and names.safety_mode is None
    assert names.ur_io_states == "/io_and_status_controller/io_states"  # the rest of the preset stays
    kept = load_config(_config(tmp_path, "ur: {model: xarm, base: {position: [0, 0, 0]}, driver: "
                                         "{ros: {url: 'ws://10.0.0.5:9090', names: ur}}}"))
    assert RosNames.from_config("ur", kept.robots["ur"].driver.ros).robot_mode == "/io_and_status_controller/robot_mode"
    off = _config(tmp_path, "ur: {model: xarm, base: {position: [0, 0, 0]}, driver: {ros: {url: 'ws://10.0.0.5:9090', "
                            "names: {preset: ur, joint_states: null}}}}")
    assert _problems(off) == ["robots.ur.driver.ros.names: expected a topic name for joint_states: a robot cannot run "
                              "without it (null switches off optional names only), found {'preset': 'ur', "
                              "'joint_states': None}"]


def test_check_names_a_misspelt_station_or_robot_inside_skill_params(tmp_path):
    cells = ("c1: {robot: ur, take: infeed, give: outfeed, recipe: [{skill: pick, params: {station: infed}}, "
             "{skill: wait, params: {seconds: 1}, on_failure: {recover: {skill: place, params: {station: outfed}}}}]}")
    assert _problems(_config(tmp_path, "ur: {model: xarm, base: {position: [0, 0, 0]}}", cells)) == [
        "cells.c1.recipe.0.params.station: expected one of the stations ['infeed', 'outfeed'], found 'infed'",
        "cells.c1.recipe.1.on_failure.recover.params.station: expected one of the stations ['infeed', 'outfeed'], "
        "found 'outfed'"]


def test_check_reports_every_problem_of_a_file_at_once(tmp_path):
    robots = ("ur: {model: xarm, base: {position: [0, 0, 0]}, max_acceleration: -1}\n"
              "arm2: {model: kuka_iiwa, base: {position: [0, 1, 0]}}")
    cells = ("c1: {robot: ur, take: infeed, give: outfeed}\n"
             "c2: {robot: arm2, take: infeed, give: outfed, recipe: [{skill: pick, params: {station: infed}}]}")
    assert _problems(_config(tmp_path, robots, cells)) == [
        "robots.ur.max_acceleration: expected greater than 0, found -1",
        "cells.c2.give: expected one of the stations ['infeed', 'outfeed'], found 'outfed'",
        "cells.c2.recipe.0.params.station: expected one of the stations ['infeed', 'outfeed'], found 'infed'"]


def test_check_says_nothing_of_the_twins_port_for_a_cell_that_never_talks_to_the_twin(tmp_path, capsys):
    ros = "{ros: {url: 'ws://10.0.0.5:9090', names: ur}}"
    assert main(["check", "--no-reach", str(_config(tmp_path, f"ur: {{model: xarm, base: {{position: [0, 0, 0]}}, "
                                                              f"driver: {ros}}}"))]) == 0
    assert "twin.port" not in capsys.readouterr().out
    assert main(["check", "--no-reach", str(_config(tmp_path, "ur: {model: xarm, base: {position: [0, 0, 0]}}"))]) == 0
    assert "note: twin.port is 0: cells run on their own (c1) need --twin" in capsys.readouterr().out


def test_check_says_per_station_whether_the_configured_tool_reaches_the_grip_pose(capsys):
    assert main(["check", str(ROOT / "configs" / "pilot_cell.yaml")]) == 0
    out = capsys.readouterr().out
    assert ("reach: cells.press takes at infeed: the configured tool reaches the grip pose: TCP 0.5 cm above the "
            "part's top (the skills' gap 0.5 cm; robots.press.tcp)") in out


def test_a_missed_grip_says_where_the_tcp_was_against_the_parts_top():
    from cellctl.drivers.fake import FakeDriver
    from cellctl.drivers.fake_world import FakeWorld
    from cellctl.skills.context import SkillContext
    from cellctl.skills.registry import create
    from cellctl.skills.runner import run

    config = load_config(ROOT / "configs" / "demo_cell.yaml")
    world = FakeWorld.from_config(config)
    del world.parts["part-1"]  # nothing on infeed: the cup closes on air
    robot = FakeDriver.from_config("press", config.robots["press"], world)
    try:
        ctx = SkillContext.create(robot, stations={n: s.position for n, s in config.stations.items()}, robot="press")
        result = run(create("pick", ctx, {"station": "infeed", "gap": 0.042}))
    finally:
        robot.close()
    assert not result.ok
    assert result.reason.endswith("suction on, but no part attached: TCP 4.2 cm above the part's top at infeed: "
                                  "check robots.press.tcp.offset"), result.reason
