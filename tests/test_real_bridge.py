"""The ROS driver against the twin's rosbridge endpoint playing the real rosbridge_suite 2.x and
ros2_controllers where they are less kind than one would hope (``twin.rosbridge``, docs/ros.md
"Real bridges"): rejected goals never answered and the client's later messages held up, goals
preempted by a new one, goals that outlive their client, cancels handled only after the goal, goal
ids shared between clients, throttled and per-id subscriptions, topics relayed between clients."""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import replace
from pathlib import Path

import pytest
import websockets

from cellctl.config.loader import load_config
from cellctl.processes.children import RosbridgeProcess
from cellctl.drivers.description import describe_from_config
from cellctl.drivers.errors import DriverError
from cellctl.drivers.ros import RosDriver, RosNames
from cellctl.drivers.twin_client import TwinClient
from cellctl.drivers.types import MotionStatus
from cellctl.drivers.wait import wait
from cellctl.skills.context import SkillContext
from cellctl.skills.registry import create
from cellctl.skills.runner import run
from tests.helpers.ros import until_linked

ACTION = "/press/joint_trajectory_controller/follow_joint_trajectory"
NOBODY = "/scaled_joint_trajectory_controller/follow_joint_trajectory"  # a name the twin does not serve
FJT = "control_msgs/action/FollowJointTrajectory"
JOINTS = [f"lbr_iiwa_joint_{i}" for i in range(1, 8)]
HOME = [0.0, 0.5, 0.0, -1.2, 0.0, 1.4, 0.0]
FAR = [0.8, 0.5, 0.0, -1.2, 0.0, 1.4, 0.0]
PREEMPTED = "Current goal cancelled due to new incoming action."

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]


@pytest.fixture
def real_bridge(twin_factory, tmp_path):
    """A twin (realtime, rate 1) and its rosbridge endpoint with ``twin.rosbridge`` set as asked."""
    started = []

    def start(rate: float = 1.0, **behaviour) -> tuple[RosbridgeProcess, Path, str]:
        options = ", ".join(f"{k}: {json.dumps(v)}" for k, v in behaviour.items())
        config = tmp_path / f"bridge{len(started)}.yaml"
        config.write_text(f"""version: 1
twin: {{mode: realtime, rate: {rate}, rosbridge: {{{options}}}}}
robots:
  press: {{model: kuka_iiwa, base: {{position: [0.0, 0.0, 0.0]}}, io: {{lamp: false}}}}
stations:
  infeed: {{position: [0.55, -0.35, 0.3]}}
parts:
  - {{id: part-1, station: infeed}}
""")
        twin = twin_factory(config)
        bridge = RosbridgeProcess(str(config), twin.endpoint)
        bridge.start()
        started.append(bridge)
        return bridge, config, twin.endpoint

    yield start
    for bridge in started:
        bridge.stop()


def _driver(bridge: RosbridgeProcess, config: Path, action: str = ACTION, accept_timeout: float = 3.0) -> RosDriver:
    desc = describe_from_config("press", load_config(config).robots["press"])
    names = replace(RosNames.for_twin("press", desc.io_names), trajectory_action=action)
    driver = RosDriver("127.0.0.1", bridge.port, desc, names, accept_timeout=accept_timeout)
    driver.connect()
    return driver


def _goal(goal_id: str, positions: list[float], seconds: int) -> dict:
    return {"op": "send_action_goal", "id": goal_id, "action": ACTION, "action_type": FJT, "feedback": False,
            "args": {"trajectory": {"joint_names": JOINTS, "points": [
                {"positions": positions, "time_from_start": {"sec": seconds, "nanosec": 0}}]}}}


async def _results(ws, ids: set[str], timeout: float) -> dict[str, dict]:
    got: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    while not ids <= set(got):
        msg = json.loads(await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic())))
        if msg.get("op") == "action_result":
            got[msg["id"]] = msg
    return got


def test_an_unanswered_goal_fails_with_the_reason_and_the_driver_starts_afresh(real_bridge):
    """rosbridge 2.1 never answers a goal to an action nobody serves (or one the controller
    rejects) and, by default, handles nothing more from that client while joint states keep flowing."""
    bridge, config, _ = real_bridge(goal_rejections="silent", goals_in_new_thread=False)
    driver = _driver(bridge, config, action=NOBODY, accept_timeout=1.0)
    try:
        started = time.monotonic()
        motion = driver.move_joints([FAR], speed=0.5)
        assert wait(motion, timeout=20) is MotionStatus.FAILED
        assert time.monotonic() - started < 10
        assert motion.reason == (f"no answer from {driver.url} to the goal on {NOBODY} within 1s: the action is not "
                                 f"served or the goal was rejected (rosbridge 2.0-2.1 answers neither)")
        until_linked(driver)  # a fresh connection, made beside the caller
        driver.stop()  # the fresh connection (and the halting one) are served
    finally:
        driver.close()


def test_a_rejected_goal_is_answered_where_the_bridge_is_fixed(real_bridge):
    bridge, config, _ = real_bridge(goal_rejections="answered")
    driver = _driver(bridge, config, action=NOBODY)
    try:
        motion = driver.move_joints([FAR], speed=0.5)
        assert wait(motion, timeout=20) is MotionStatus.FAILED
        assert motion.reason.startswith("the robot's controller rejected the goal: send_action_goal: Rejected: "
                                        f"unknown action {NOBODY}; actions:")
    finally:
        driver.close()


@pytest.mark.parametrize("version, status, said", [("jazzy", 6, "aborted"), ("humble", 5, "canceled")])
def test_a_second_goal_preempts_the_first_as_the_controller_does(real_bridge, version, status, said):
    bridge, _, _ = real_bridge(preemption=version, goals_in_new_thread=True)

    async def exchange():
        async with websockets.connect(bridge.url) as ws:
            await ws.send(json.dumps(_goal("first", FAR, 6)))
            await asyncio.sleep(0.5)
            await ws.send(json.dumps(_goal("second", HOME, 1)))
            return await _results(ws, {"first", "second"}, 20)

    results = asyncio.run(exchange())
    assert results["first"]["status"] == status and results["first"]["result"] is True
    assert results["first"]["values"] == {"error_code": -1, "error_string": PREEMPTED}
    assert results["second"]["status"] == 4 and results["second"]["values"]["error_code"] == 0


def test_the_driver_reports_a_preempted_goal_with_the_controllers_words(real_bridge):
    bridge, config, _ = real_bridge(preemption="jazzy")
    driver, other = _driver(bridge, config), _driver(bridge, config)
    try:
        motion = driver.move_joints([FAR], speed=0.1)
        time.sleep(0.5)
        other.move_joints([HOME], speed=0.5)  # another client takes the controller
        assert wait(motion, timeout=30) is MotionStatus.FAILED
        assert motion.reason == ("the robot's controller ended the goal with status 6 (aborted), error_code -1: "
                                 + PREEMPTED)
    finally:
        driver.close()
        other.close()


def test_a_goal_outlives_the_client_that_sent_it(real_bridge):
    """rosbridge does not cancel a disconnected client's goals: the arm finishes the trajectory."""
    bridge, _, twin = real_bridge()

    async def send_and_leave():
        async with websockets.connect(bridge.url) as ws:
            await ws.send(json.dumps(_goal("orphan", FAR, 3)))
            await asyncio.sleep(0.5)

    asyncio.run(send_and_leave())
    time.sleep(4.0)
    with TwinClient(twin, client="test") as client:
        positions = client.request("joint_state", robot="press")["positions"]
    assert abs(positions[0] - FAR[0]) < 0.02, positions


def test_a_cancel_on_the_goals_own_connection_waits_for_the_goal(real_bridge):
    """rosbridge_suite #909: with send_action_goals_in_new_thread off (its default) the client's
    cancel is handled after the goal ended, which then reports SUCCEEDED."""
    bridge, _, _ = real_bridge(goals_in_new_thread=False)

    async def exchange():
        async with websockets.connect(bridge.url) as ws:
            await ws.send(json.dumps(_goal("slow", FAR, 3)))
            await asyncio.sleep(0.3)
            await ws.send(json.dumps({"op": "cancel_action_goal", "id": "slow", "action": ACTION}))
            return await _results(ws, {"slow"}, 20)

    started = time.monotonic()
    result = asyncio.run(exchange())["slow"]
    assert result["status"] == 4 and time.monotonic() - started > 2.5


def test_the_driver_cancels_at_once_through_its_second_connection(real_bridge):
    bridge, config, _ = real_bridge(goals_in_new_thread=False)
    driver = _driver(bridge, config)
    try:
        motion = driver.move_joints([FAR], speed=0.05)  # many seconds
        time.sleep(0.5)
        cancelled_at = time.monotonic()
        motion.cancel()
        assert wait(motion, timeout=20) is MotionStatus.CANCELLED
        assert time.monotonic() - cancelled_at < 2.0
        stopping = driver.move_joints([HOME], speed=0.05)
        time.sleep(0.5)
        driver.stop()  # a cancel and the stop service, also through the second connection
        # whichever reaches the controller first ends it: CANCELED, or ABORTED "halted by the stop service"
        assert wait(stopping, timeout=5) in (MotionStatus.CANCELLED, MotionStatus.FAILED)
        assert stopping.status is MotionStatus.CANCELLED or "halted by the stop service" in stopping.reason
    finally:
        driver.close()


def test_goal_ids_are_unique_across_connections_and_two_clients_ids_never_collide(real_bridge):
    bridge, config, _ = real_bridge(goals_in_new_thread=True)
    first = _driver(bridge, config)
    try:
        a = first.move_joints([FAR], speed=1.0)
        assert wait(a, timeout=20) is MotionStatus.SUCCEEDED
        first.reconnect("test")
        until_linked(first)
        b = first.move_joints([HOME], speed=1.0)
        assert wait(b, timeout=20) is MotionStatus.SUCCEEDED
        assert a.goal_id != b.goal_id  # roslibpy's counter restarted; the ids did not
    finally:
        first.close()

    async def same_id_from_two_clients():
        async with websockets.connect(bridge.url) as one, websockets.connect(bridge.url) as two:
            await one.send(json.dumps(_goal("send_action_goal:x:1", FAR, 1)))
            await asyncio.sleep(1.5)
            await two.send(json.dumps({**_goal("send_action_goal:x:1", HOME, 1), "action": ACTION}))
            return await asyncio.gather(_results(one, {"send_action_goal:x:1"}, 20),
                                        _results(two, {"send_action_goal:x:1"}, 20))

    one, two = asyncio.run(same_id_from_two_clients())
    assert one["send_action_goal:x:1"]["status"] == two["send_action_goal:x:1"]["status"] == 4


def test_throttled_and_per_id_subscriptions_and_relayed_topics(real_bridge):
    bridge, _, _ = real_bridge()
    sub = {"op": "subscribe", "topic": "/press/joint_states", "type": "sensor_msgs/msg/JointState"}

    async def exchange():
        async with websockets.connect(bridge.url) as ws, websockets.connect(bridge.url) as talker:
            await ws.send(json.dumps({**sub, "id": "slow", "throttle_rate": 500}))
            counted, end = 0, time.monotonic() + 2.0
            while time.monotonic() < end:
                try:
                    json.loads(await asyncio.wait_for(ws.recv(), 0.1))
                    counted += 1
                except asyncio.TimeoutError:
                    pass
            await ws.send(json.dumps({**sub, "id": "fast"}))
            await ws.send(json.dumps({"op": "unsubscribe", "topic": "/press/joint_states", "id": "slow"}))
            await asyncio.sleep(0.3)
            still = json.loads(await asyncio.wait_for(ws.recv(), 2))  # "fast" goes on
            await ws.send(json.dumps({"op": "subscribe", "topic": "/chatter", "type": "std_msgs/msg/String"}))
            await talker.send(json.dumps({"op": "advertise", "topic": "/chatter", "type": "std_msgs/msg/String"}))
            await asyncio.sleep(0.2)
            await talker.send(json.dumps({"op": "publish", "topic": "/chatter", "msg": {"data": "hello"}}))
            while (m := json.loads(await asyncio.wait_for(ws.recv(), 2)))["topic"] != "/chatter":
                pass
            return counted, still, m

    counted, still, relayed = asyncio.run(exchange())
    assert 2 <= counted <= 6, counted  # 2 s at one message per 500 ms (the publisher runs at 50 Hz)
    assert still["topic"] == "/press/joint_states"
    assert relayed["msg"] == {"data": "hello"}


@pytest.mark.parametrize("allow_stalling", [False, True])
def test_a_close_that_stalls_on_the_part_is_a_grasp(real_bridge, allow_stalling):
    """ros2_controllers' GripperActionController aborts a close that stalls on the part unless
    allow_stalling; the driver counts a stalled close as the grasp it is."""
    bridge, config, _ = real_bridge(rate=4.0, gripper_allow_stalling=allow_stalling)
    driver = _driver(bridge, config)
    try:
        ctx = SkillContext.create(driver, stations={"infeed": (0.55, -0.35, 0.3)})
        result = run(create("pick", ctx, {"station": "infeed"}), timeout=90)
        assert result.ok, result.reason
        assert driver.gripper_state().part_present and driver.gripper_state().state == "closed"
    finally:
        driver.close()


def test_a_preset_without_a_stop_service_is_halted_by_a_holding_goal(real_bridge):
    bridge, config, twin = real_bridge(goals_in_new_thread=False)
    driver = _driver(bridge, config)
    driver.names = replace(driver.names, stop_service=None)  # as the ur, franka and kuka_lbr presets
    try:
        motion = driver.move_joints([FAR], speed=0.05)
        time.sleep(1.0)
        driver.stop()
        assert wait(motion, timeout=10) in (MotionStatus.CANCELLED, MotionStatus.FAILED)
        time.sleep(1.0)  # the holding goal's point is 0.2 s ahead; then the arm stands
        with TwinClient(twin, client="test") as client:
            first = client.request("joint_state", robot="press")["positions"][0]
            time.sleep(1.0)
            second = client.request("joint_state", robot="press")["positions"][0]
        assert abs(second - first) < 1e-3 and abs(first - FAR[0]) > 0.3, (first, second)
    finally:
        driver.close()


def test_ur_io_goes_through_io_states_and_the_set_io_service(real_bridge):
    """UR's IO is ur_msgs/msg/IOStates plus the SetIO service, not Bool topics: the driver reads
    a pin's state from the one and sets an output through the other."""
    bridge, config, twin = real_bridge()
    driver = _driver(bridge, config)
    driver.names = replace(driver.names, io={}, ur_io={"lamp": ("out", 0), "lamp_in": ("in", 0), "nine": ("out", 9)})
    driver.reconnect("names changed")
    until_linked(driver)
    try:
        assert driver.read_io("lamp") is False
        driver.write_io("lamp", True)  # returns at once: IOStates reports the pin once it is set
        deadline = time.monotonic() + 5
        while driver.read_io("lamp") is not True and time.monotonic() < deadline:
            time.sleep(0.02)
        assert driver.read_io("lamp") is True and driver.read_io("lamp_in") is True
        with TwinClient(twin, client="test") as client:
            assert client.request("read_io", robot="press", name="lamp") is True
        driver.write_io("nine", True)  # SetIO answers success false: a read of that IO then says so
        said, deadline = "", time.monotonic() + 5
        while "set_io" not in said and time.monotonic() < deadline:
            try:
                driver.read_io("nine")
            except DriverError as exc:
                said = str(exc)
            time.sleep(0.02)
        assert re.search(r"/press/set_io at ws://127.0.0.1:\d+ did not set pin 9 \(IO 'nine'\)", said), said
        with pytest.raises(Exception, match="IO 'lamp_in' is UR digital input pin 0: only outputs are set"):
            driver.write_io("lamp_in", False)
    finally:
        driver.close()
