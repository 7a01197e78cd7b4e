"""The ROS path: the ROS driver over real roslibpy and a real websocket against the twin's rosbridge
endpoint, an independent roslibjs client, the demo line over ROS, a dropped bridge, and protocol
edge cases."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import websockets

from cellctl.config.loader import load_config
from cellctl.cell.control import request
from cellctl.processes.children import RosbridgeProcess, TwinProcess
from cellctl.drivers.conformance import check_driver
from cellctl.drivers.description import describe_from_config
from cellctl.drivers.errors import ConnectionLost
from cellctl.drivers.twin import TwinDriver
from cellctl.drivers.ros import RosDriver, RosNames
from cellctl.drivers.types import MotionStatus
from cellctl.drivers.wait import wait
from cellctl.skills.context import SkillContext
from cellctl.skills.registry import create
from cellctl.skills.runner import run
from tests.conftest import CONFIGS
from tests.helpers.ros import until_linked

pytestmark = pytest.mark.process  # starts twins, cells, launchers or bridges

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
    # the cells reached the world only through rosbridge: no cell said hello to the twin's API
    assert set(summary["twin_clients"]) == {"rosbridge", "launcher"}, summary["twin_clients"]


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
        until_linked(driver)  # the driver reconnects beside its caller
        ctx = SkillContext.create(driver)
        result = run(create("move_joints", ctx, {"positions": HOME}), timeout=60)
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
    assert status[2].startswith("subscribe: BadRequest: cannot infer the type of topic /nowhere: it is not advertised")
    assert "has type sensor_msgs/msg/JointState, not sensor_msgs/Float64" in status[3]
    assert any("no running goal never-sent" in s for s in status)
    service = [r for r in replies if r["op"] == "service_response"]
    assert service[0]["id"] == "c1" and service[0]["result"] is False
    assert service[1]["id"] == "c2" and service[1]["result"] is True
    assert "/press/joint_states" in service[1]["values"]["topics"]
    goal = next(r for r in replies if r["op"] == "action_result")  # rejected: no status, the reason
    assert goal["result"] is False and "status" not in goal
    assert "joint names ['a', 'b'] do not match the robot's" in goal["values"]["error_string"]


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


def _control(run_dir: Path, proc: subprocess.Popen, timeout: float = 60.0) -> str:
    path = run_dir / "control-press.json"
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the cell did not open its control socket"
        time.sleep(0.05)
    return json.loads(path.read_text())["endpoint"]


@pytest.mark.timeout(180)
def test_a_real_robot_cell_restarted_after_a_crash_stays_stopped(twin_factory, tmp_path):
    """--start starts a cell once; a cell of a real (ROS) robot that comes back from a crash waits in
    Stopped for an operator, and its robot does not move by itself."""
    config = Path(__file__).parents[1] / "configs" / "ros_cell.yaml"
    twin = twin_factory(config)
    bridge = RosbridgeProcess(str(config), twin.endpoint)
    bridge.start()
    cmd = [sys.executable, "-m", "cellctl", "cell", "run", str(config), "--cell", "press", "--twin", twin.endpoint,
           "--rosbridge", bridge.url, "--run-dir", str(tmp_path), "--start"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    second = None
    try:
        endpoint = _control(tmp_path, first)
        deadline = time.monotonic() + 60
        while request(endpoint, "status")["result"]["skill"] is None:  # wait until it is working on a part
            assert time.monotonic() < deadline
            time.sleep(0.05)
        first.kill()
        first.wait()
        (tmp_path / "control-press.json").unlink()
        second = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        endpoint = _control(tmp_path, second)
        with TwinDriver(twin.endpoint, "press") as robot:
            deadline = time.monotonic() + 30  # the killed cell's last trajectory may still be running out
            while max(abs(v) for v in robot.joint_state().velocities) > 1e-3:
                assert time.monotonic() < deadline, "the robot never came to rest"
                time.sleep(0.1)
            before = robot.joint_state().positions
            time.sleep(3.0)
            after = robot.joint_state().positions
        status = request(endpoint, "status")["result"]
        assert status["state"] == "Stopped", status
        assert max(abs(a - b) for a, b in zip(before, after)) < 1e-3  # nothing moved it
        second.terminate()
        out, _ = second.communicate(timeout=30)
        assert "restarted after a crash with a real robot: it stays Stopped" in out
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        bridge.stop()


@pytest.mark.timeout(180)
def test_a_ros_cell_reaches_the_world_only_through_rosbridge(twin_factory, tmp_path):
    """Robot and station sensors over the twin's rosbridge endpoint: every part delivered, and the
    twin's request log shows that only the endpoint said hello to its ZeroMQ API."""
    config = Path(__file__).parents[1] / "configs" / "ros_cell.yaml"
    twin = twin_factory(config)
    bridge = RosbridgeProcess(str(config), twin.endpoint)
    bridge.start()
    try:
        result = subprocess.run([sys.executable, "-m", "cellctl", "cell", "run", str(config), "--cell", "press",
                                 "--twin", "tcp://127.0.0.1:1", "--rosbridge", bridge.url, "--run-dir", str(tmp_path),
                                 "--start", "--exit-when-complete"], capture_output=True, text=True, timeout=150)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "cell press: Complete, 3 parts done" in result.stdout
        with TwinDriver(twin.endpoint, "press", client="audit") as audit:
            consumed = [e["part"] for e in audit.request("part_log") if e["event"] == "consumed"]
            hellos = {r["name"] for r in audit.request("request_log") if r["op"] == "hello"}
        assert consumed == ["part-1", "part-2", "part-3"]
        assert hellos == {"rosbridge", "audit"}
    finally:
        bridge.stop()


def _probe(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cellctl", "probe", str(config), "--cell", "press"],
                          capture_output=True, text=True, timeout=60)


def _ros_config(tmp_path: Path, driver: str) -> Path:
    base = (Path(__file__).parents[1] / "configs" / "ros_cell.yaml").read_text()
    path = tmp_path / "probe.yaml"
    path.write_text(base.replace("press: {model: kuka_iiwa, base: {position: [0.0, 0.0, 0.0]}}",
                                 f"press: {{model: kuka_iiwa, base: {{position: [0.0, 0.0, 0.0]}}, driver: {driver}}}"))
    return path


@pytest.mark.timeout(180)
def test_probe_finds_everything_or_names_what_is_missing(bridge, tmp_path):
    url = bridge().url
    everything = _probe(_ros_config(tmp_path, f"{{ros: {{url: '{url}'}}}}"))
    assert everything.returncode == 0, everything.stdout + everything.stderr
    assert everything.stdout.splitlines()[-1] == "10/10 found"
    assert "trajectory action      /press/joint_trajectory_controller/follow_joint_trajectory" in everything.stdout

    no_action = _probe(_ros_config(tmp_path, f"{{ros: {{url: '{url}', names: {{gripper_action: /press/vacuum}}}}}}"))
    assert no_action.returncode == 1
    assert f"{'gripper action':<22} {'/press/vacuum':<60} missing" in no_action.stdout

    wrong_joints = _probe(_ros_config(tmp_path, f"{{ros: {{url: '{url}', joints: {{lbr_iiwa_joint_1: A1}}}}}}"))
    assert wrong_joints.returncode == 1
    assert "wrong joints: A1 not published (the bridge has lbr_iiwa_joint_1, " in wrong_joints.stdout

    wrong_type = _probe(_ros_config(tmp_path, f"{{ros: {{url: '{url}', names: {{part_present: /clock}}}}}}"))
    assert f"{'part present':<22} {'/clock':<60} wrong type: rosgraph_msgs/msg/Clock" in wrong_type.stdout

    nobody = _probe(_ros_config(tmp_path, "{ros: {url: 'ws://127.0.0.1:9'}}"))
    assert nobody.returncode == 2
    assert "cellctl probe: no rosbridge at ws://127.0.0.1:9: Failed to connect to ROS" in nobody.stderr.splitlines()


@pytest.mark.timeout(180)
def test_a_goal_the_controller_aborts_holds_the_cell_with_its_error_text(twin_factory, tmp_path):
    config = Path(__file__).parents[1] / "configs" / "ros_cell.yaml"
    twin = twin_factory(config)
    bridge = RosbridgeProcess(str(config), twin.endpoint)
    bridge.start()
    cell = subprocess.Popen([sys.executable, "-m", "cellctl", "cell", "run", str(config), "--cell", "press",
                             "--rosbridge", bridge.url, "--run-dir", str(tmp_path), "--start"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        endpoint = _control(tmp_path, cell)
        deadline = time.monotonic() + 60
        while request(endpoint, "status")["result"]["skill"] is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with TwinDriver(twin.endpoint, "press", client="audit") as audit:
            audit.request("inject_fault", robot="press", reason="servo overcurrent on A4")
        while (status := request(endpoint, "status")["result"])["state"] != "Held":
            assert time.monotonic() < deadline + 30
            time.sleep(0.05)
        assert "the robot's controller ended the goal with status 6 (aborted), error_code -5: drive fault: " \
               "servo overcurrent on A4" in status["fault"], status
    finally:
        cell.kill()
        cell.wait()
        bridge.stop()


def _write_arm(tmp_path: Path) -> Path:
    """A URDF of our own: the iiwa's geometry (meshes by absolute path) with other joint and link
    names (A1..A7, L0..L7), as a maker's URDF would name them."""
    import re

    import pybullet_data

    kuka = Path(pybullet_data.getDataPath()) / "kuka_iiwa"
    text = (kuka / "model.urdf").read_text().replace('filename="meshes/', f'filename="{kuka}/meshes/')
    text = re.sub(r"lbr_iiwa_joint_(\d)", r"A\1", text)
    text = re.sub(r"lbr_iiwa_link_(\d)", r"L\1", text)
    path = tmp_path / "arm.urdf"
    path.write_text(text)
    return path


@pytest.mark.timeout(240)
def test_a_urdf_robot_with_explicit_ros_names_runs_against_the_twin(tmp_path):
    _write_arm(tmp_path)
    base = (Path(__file__).parents[1] / "configs" / "ros_cell.yaml").read_text()
    names = ("{preset: twin, joint_states: /press/joint_states, trajectory_action: "
             "/press/joint_trajectory_controller/follow_joint_trajectory, gripper_action: "
             "/press/gripper_controller/gripper_cmd, part_present: /press/gripper/part_present, stop_service: /press/stop}")

    def config(url: str) -> Path:
        robot = (f"press: {{urdf: arm.urdf, tcp: {{link: L7, offset: [0, 0, 0.05]}}, base: {{position: [0, 0, 0]}}, "
                 f"max_velocity: [1.71, 1.71, 1.75, 2.27, 2.44, 3.14, 3.14], max_acceleration: [5, 5, 5, 5, 5, 5, 5], "
                 f"home: [0.0, 0.5, 0.0, -1.2, 0.0, 1.4, 0.0], driver: {{ros: {{url: '{url}', names: {names}}}}}}}")
        path = tmp_path / "urdf_cell.yaml"
        path.write_text(base.replace("press: {model: kuka_iiwa, base: {position: [0.0, 0.0, 0.0]}}", robot))
        return path

    check = subprocess.run([sys.executable, "-m", "cellctl", "check", str(config("ws://127.0.0.1:1"))],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    twin = TwinProcess(str(config("ws://127.0.0.1:1")))
    twin.start()
    bridge = RosbridgeProcess(str(tmp_path / "urdf_cell.yaml"), twin.endpoint)
    bridge.start()
    try:
        result = subprocess.run([sys.executable, "-m", "cellctl", "cell", "run", str(config(bridge.url)), "--cell",
                                 "press", "--run-dir", str(tmp_path / "run"), "--start", "--exit-when-complete"],
                                capture_output=True, text=True, timeout=200)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "cell press: Complete, 3 parts done" in result.stdout
        with TwinDriver(twin.endpoint, "press", client="audit") as audit:
            assert audit.describe().joint_names == tuple(f"A{i}" for i in range(1, 8))
            assert set(audit.request("clients")) == {"rosbridge", "audit"}
    finally:
        bridge.stop()
        twin.stop()


@pytest.mark.timeout(180)
def test_a_controller_that_says_it_is_not_ready_gets_no_goals(twin_factory, tmp_path):
    """`names.ready` (a Bool the controller publishes; here the twin robot's `remote` IO): while it
    is false no goal is sent and the cell stops with that reason; once it is true again the
    operator's Clear and Reset home the robot and the cell works again."""
    base = (Path(__file__).parents[1] / "configs" / "ros_cell.yaml").read_text()
    robot = "press: {model: kuka_iiwa, base: {position: [0.0, 0.0, 0.0]}, io: {remote: true}}"
    twin_config = tmp_path / "twin.yaml"
    twin_config.write_text(base.replace("press: {model: kuka_iiwa, base: {position: [0.0, 0.0, 0.0]}}", robot))
    twin = twin_factory(twin_config)
    bridge = RosbridgeProcess(str(twin_config), twin.endpoint)
    bridge.start()
    config = tmp_path / "cell.yaml"
    config.write_text(twin_config.read_text().replace(
        "io: {remote: true}}", f"io: {{remote: true}}, driver: {{ros: {{url: '{bridge.url}', "
                               f"names: {{ready: /press/io/remote}}}}}}}}"))
    with TwinDriver(twin.endpoint, "press", client="operator") as pendant:
        pendant.write_io("remote", False)  # the teach pendant took local control
        cell = subprocess.Popen([sys.executable, "-m", "cellctl", "cell", "run", str(config), "--cell", "press",
                                 "--run-dir", str(tmp_path), "--start"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            endpoint = _control(tmp_path, cell)
            deadline = time.monotonic() + 60
            while (status := request(endpoint, "status")["result"])["state"] not in ("Held", "Aborted"):
                assert time.monotonic() < deadline, status
                time.sleep(0.05)
            # homing is the first goal: refused in Resetting, where PackML allows Abort, not Hold
            assert status["state"] == "Aborted" and status["fault"] == (
                "DriverError: the robot's controller does not accept goals: /press/io/remote says false"), status
            pendant.write_io("remote", True)  # back in remote control: the operator recovers the cell
            for command in ("Clear", "Reset"):
                assert request(endpoint, "command", command=command)["ok"]
                time.sleep(0.5)
            while (status := request(endpoint, "status")["result"])["parts_done"] < 1:  # --start: Start once Idle
                assert time.monotonic() < deadline + 60, status
                time.sleep(0.05)
        finally:
            cell.kill()
            cell.wait()
            bridge.stop()


@pytest.mark.timeout(120)
def test_a_cell_whose_bridge_is_not_there_says_so_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("CELLCTL_BRIDGE_WAIT", "3")
    config = _ros_config(tmp_path, "{ros: {url: 'ws://127.0.0.1:9'}}")
    result = subprocess.run([sys.executable, "-m", "cellctl", "cell", "run", str(config), "--cell", "press",
                             "--run-dir", str(tmp_path / "run"), "--start"], capture_output=True, text=True, timeout=100)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    assert "cellctl cell run: cell press: robot press: no rosbridge at ws://127.0.0.1:9: Failed to connect to ROS " \
           "(tried for 3s)" in result.stderr.splitlines()


@pytest.mark.slow
@pytest.mark.timeout(400)
@pytest.mark.parametrize("crash", [None, "press:sender_after_place_before_commit",
                                   "pack:receiver_after_transport_finished_before_commit"])
def test_presence_only_sensors_deliver_every_part_once(tmp_path, crash):
    """Stations that tell presence only (no reader): the press names the parts it takes (minted in
    its ledger), the name travels with the handoff, and a SIGKILL mid-handoff changes nothing."""
    config = Path(__file__).parent / "configs" / "presence_line.yaml"
    result = subprocess.run([sys.executable, "-m", "cellctl", "run", str(config), "--driver", "ros", "--parts", "4",
                             "--json", "--run-dir", str(tmp_path / "run"), *(["--crash", crash] if crash else [])],
                            capture_output=True, text=True, timeout=380)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["finished"] and summary["parts_in"] == summary["parts_out"] == 4, summary
    assert summary["lost"] == summary["duplicated"] == summary["stranded"] == 0
    assert set(summary["twin_clients"]) == {"rosbridge", "launcher"}
    if crash:
        assert summary["restarts"] == {crash.split(":")[0]: 1}
    with sqlite3.connect(tmp_path / "run" / "ledger-press.sqlite") as db:
        minted = db.execute("SELECT value FROM meta WHERE key='minted:part'").fetchone()
    assert minted is not None and int(minted[0]) >= 4  # the press named them


@pytest.mark.timeout(180)
def test_probe_pose_and_teach_find_a_station_under_the_tcp(bridge, tmp_path):
    """Jog the arm until its tool touches the top of a part on infeed (here: a motion through the
    bridge), then `probe --teach infeed` prints infeed's position back, and `probe --pose` shows
    the TCP on that part's top; nothing moves while probing."""
    b = bridge()
    config_path = _ros_config(tmp_path, f"{{ros: {{url: '{b.url}'}}}}")
    config = load_config(config_path)
    height = max(t.size[2] for t in config.part_types.values())
    driver = _driver(b.port)
    driver.connect()
    try:
        ctx = SkillContext.create(driver)
        wait(driver.move_pose([ctx.above(config.stations["infeed"].position, height)], speed=0.5), timeout=60)
    finally:
        driver.close()
    taught = subprocess.run([sys.executable, "-m", "cellctl", "probe", str(config_path), "--cell", "press", "--teach",
                             "infeed"], capture_output=True, text=True, timeout=60)
    assert taught.returncode == 0, taught.stderr
    import yaml

    position = yaml.safe_load(taught.stdout)["stations"]["infeed"]["position"]
    assert max(abs(a - b) for a, b in zip(position, config.stations["infeed"].position)) < 0.003, taught.stdout
    pose = subprocess.run([sys.executable, "-m", "cellctl", "probe", str(config_path), "--cell", "press", "--pose"],
                          capture_output=True, text=True, timeout=60)
    assert pose.returncode == 0, pose.stderr
    infeed = next(line for line in pose.stdout.splitlines() if line.startswith("infeed "))
    dz = float(infeed.rsplit("z ", 1)[1])
    assert abs(dz) < 0.3, pose.stdout  # cm from the part's top
    assert pose.stdout.startswith("robot press: joints [")
    unknown = subprocess.run([sys.executable, "-m", "cellctl", "probe", str(config_path), "--cell", "press", "--teach",
                              "infed"], capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "--teach infed: expected one of the stations ['infeed', 'outfeed']" in unknown.stderr
