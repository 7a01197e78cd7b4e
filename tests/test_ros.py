"""The ROS path: the ROS driver over real roslibpy and a real websocket against the twin's rosbridge
endpoint, an independent roslibjs client, the demo line over ROS, a dropped bridge, and protocol
edge cases."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import websockets

from cellctl.config import load_config
from cellctl.processes import RosbridgeProcess
from drivers.conformance import check_driver
from drivers.description import describe_from_config
from drivers.errors import ConnectionLost
from drivers.ros import RosDriver, RosNames
from drivers.types import MotionStatus
from drivers.wait import wait
from skills.context import SkillContext
from skills.registry import create
from skills.runner import run
from tests.conftest import CONFIGS

CONFIG = CONFIGS / "kuka_ros.yaml"
JOINTS = [f"lbr_iiwa_joint_{i}" for i in range(1, 8)]
HOME = [0.0, 0.5, 0.0, -1.2, 0.0, 1.4, 0.0]
JS_DIR = Path(__file__).parent / "js"


@pytest.fixture
def bridge(twin_factory):
    twin = twin_factory(CONFIG)
    started = []

    def start(port: int = 0) -> RosbridgeProcess:
        b = RosbridgeProcess(str(CONFIG), twin.endpoint, port)
        b.start()
        started.append(b)
        return b

    yield start
    for b in started:
        b.stop()


def _driver(port: int) -> RosDriver:
    desc = describe_from_config("press", load_config(CONFIG).robots["press"])
    return RosDriver("127.0.0.1", port, desc, RosNames.for_twin("press", desc.io_names))


def test_check_driver_passes_over_rosbridge(bridge):
    b = bridge()
    driver = _driver(b.port)
    driver.connect()
    try:
        assert check_driver(driver, break_link=b.kill) == [
            "describe", "small move", "cancel", "limits", "gripper", "io", "now", "connection lost"]
    finally:
        driver.close()


def test_roslibjs_subscribes_and_completes_a_goal(bridge):
    b = bridge()
    assert (JS_DIR / "node_modules" / "roslib").exists(), "run `make test` (it installs roslibjs into tests/js)"
    goal = ",".join(str(v) for v in [0.4, *HOME[1:]])
    result = subprocess.run(["node", str(JS_DIR / "check.mjs"), b.url, "press", ",".join(JOINTS), goal],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["joint_states"] > 0 and out["feedback"] > 0
    assert out["result"] == {"error_code": 0, "error_string": ""}


def test_demo_line_over_ros(tmp_path):
    result = subprocess.run([sys.executable, "-m", "cellctl", "demo", "--driver", "ros", "--parts", "2", "--json",
                             "--run-dir", str(tmp_path / "run")], capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["parts_in"] == summary["parts_out"] == 2 and summary["lost"] == summary["duplicated"] == 0


def test_bridge_drop_mid_motion(bridge):
    b = bridge()  # on a port of its own choosing, read back
    driver = _driver(b.port)
    driver.connect()
    try:
        motion = driver.move_joints([[1.2, *HOME[1:]]], speed=0.3)
        assert motion.status is MotionStatus.RUNNING
        b.kill()  # the bridge dies mid-motion
        with contextlib.suppress(ConnectionLost):  # the status poll may itself report the lost link
            wait(motion, timeout=10)
        assert motion.status is MotionStatus.FAILED  # the motion failed, never succeeded
        assert motion.reason.startswith("ConnectionLost")
        bridge(b.port)  # the bridge comes back on the same port
        ctx = SkillContext.create(driver)
        result = run(create("move_joints", ctx, {"positions": HOME}), timeout=60)  # reconnects, then moves
        assert result.ok, result.reason
    finally:
        driver.close()


async def _exchange(url: str, messages: list[dict | str], expect: int, timeout: float = 5.0) -> list[dict]:
    async with websockets.connect(url) as ws:
        for m in messages:
            await ws.send(m if isinstance(m, str) else json.dumps(m))
        got = []
        while len(got) < expect:
            got.append(json.loads(await asyncio.wait_for(ws.recv(), timeout)))
        return got


def test_protocol_edge_cases(bridge):
    url = bridge().url
    replies = asyncio.run(_exchange(url, [
        {"op": "set_level", "level": "warning"},
        "{not json",
        {"op": "fly"},
        {"op": "subscribe", "topic": "/nowhere", "id": "s1"},
        {"op": "subscribe", "topic": "/press/joint_states", "type": "sensor_msgs/Float64"},
        {"op": "call_service", "service": "/rosapi/nothing", "id": "c1"},
        {"op": "cancel_action_goal", "id": "never-sent", "action": "/press/joint_trajectory_controller/follow_joint_trajectory"},
        {"op": "send_action_goal", "id": "g1", "action": "/press/joint_trajectory_controller/follow_joint_trajectory",
         "action_type": "control_msgs/FollowJointTrajectory",
         "args": {"trajectory": {"joint_names": ["a", "b"], "points": [{"positions": [0, 0],
                                                                        "time_from_start": {"sec": 1}}]}}},
        {"op": "call_service", "service": "/rosapi/topics_and_raw_types", "id": "c2"},
    ], expect=10))
    status = [r["msg"] for r in replies if r["op"] == "status"]
    assert status[0].startswith("malformed message")
    assert status[1] == "unknown op 'fly'"
    assert status[2].startswith("subscribe: BadRequest: unknown topic /nowhere")
    assert "has type sensor_msgs/msg/JointState, not sensor_msgs/Float64" in status[3]
    assert any("no running goal never-sent" in s for s in status)
    service = [r for r in replies if r["op"] == "service_response"]
    assert service[0]["id"] == "c1" and service[0]["result"] is False
    assert service[1]["id"] == "c2" and service[1]["result"] is True
    assert "/press/joint_states" in service[1]["values"]["topics"]
    goal = next(r for r in replies if r["op"] == "action_result")
    assert goal["result"] is False and goal["values"]["error_code"] == -2


def test_two_clients_at_once_and_both_type_spellings(bridge):
    url = bridge().url

    async def both():
        return await asyncio.gather(
            _exchange(url, [{"op": "subscribe", "topic": "/press/joint_states", "type": "sensor_msgs/JointState"}], 3),
            _exchange(url, [{"op": "subscribe", "topic": "/press/joint_states", "type": "sensor_msgs/msg/JointState"}], 3))

    a, b = asyncio.run(both())
    assert all(m["op"] == "publish" and m["msg"]["name"] == JOINTS for m in a + b)


def test_cancel_of_a_finished_goal_is_harmless(bridge):
    b = bridge()
    driver = _driver(b.port)
    driver.connect()
    try:
        motion = driver.move_joints([[0.2, *HOME[1:]]])
        assert wait(motion, timeout=20) is MotionStatus.SUCCEEDED
        motion._client.cancel_goal(motion.goal_id)  # the goal is long finished
        assert wait(driver.move_joints([HOME]), timeout=20) is MotionStatus.SUCCEEDED  # still serving
    finally:
        driver.close()


def test_bad_input_never_drops_the_connection(bridge):
    """Once each of these closed the client's websocket; now each gets an error and the same
    connection goes on being served."""
    action = "/press/joint_trajectory_controller/follow_joint_trajectory"
    joints = [f"lbr_iiwa_joint_{i}" for i in range(1, 8)]
    goal = {"op": "send_action_goal", "action": action, "action_type": "control_msgs/action/FollowJointTrajectory"}
    replies = asyncio.run(_exchange(bridge().url, [
        {"op": "call_service", "service": "/rosapi/topic_type", "id": "t1", "args": ["/press/joint_states"]},
        {**goal, "id": "g1", "args": {"trajectory": {"joint_names": joints, "points": [
            {"positions": HOME, "time_from_start": 1}]}}},
        {**goal, "id": "g2", "args": {"trajectory": {"joint_names": joints, "points": [
            {"positions": HOME[:3], "time_from_start": {"sec": 1}}]}}},
        {**goal, "id": {"not": "a string"}, "args": {}},
        {"op": "call_service", "service": "/rosapi/topics", "id": "last"},
    ], expect=5))
    by_id = {r.get("id"): r for r in replies}
    assert by_id["t1"]["result"] is True and by_id["t1"]["values"]["type"] == "sensor_msgs/msg/JointState"
    for goal_id in ("g1", "g2"):
        assert by_id[goal_id]["op"] == "action_result" and by_id[goal_id]["result"] is False
    assert by_id[None]["op"] == "action_result" and "a goal needs an id" in by_id[None]["values"]["error_string"]
    assert by_id["last"]["result"] is True  # the same connection, still served
