"""No motion races a stop, and nothing blocks a tick: the ROS driver against the twin's rosbridge
endpoint playing what a real rosbridge 2.x and ros2_controllers do — goals reaching the action
server out of send order (``goal_setup``), a connection's goals queued behind its running one
(``goals_in_new_thread: false``), a cancel for a goal not yet registered dropped — each on both
threading settings, halting by the stop service (the twin's preset) and by a holding goal (UR's).
The end codes a real controller sends, and feedback only when asked, with the raw protocol."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import websockets
import yaml

from cellctl.config.loader import load_config
from cellctl.drivers.description import describe_from_config
from cellctl.drivers.errors import ConnectionLost
from cellctl.drivers.ros import RosDriver, RosNames
from cellctl.drivers.types import MotionStatus
from cellctl.drivers.wait import wait
from cellctl.processes.children import RosbridgeProcess
from tests.conftest import CONFIGS
from tests.helpers.ci_log import to_ci_log
from tests.helpers.ros import until_linked

pytestmark = [pytest.mark.process, pytest.mark.timeout(240)]
HOME = [0.0, 0.5, 0.0, -1.2, 0.0, 1.4, 0.0]
AWAY = [1.0, 0.7, 0.2, -1.0, 0.3, 1.2, 0.4]
OTHER = [-1.0, 0.6, -0.2, -1.4, -0.3, 1.0, -0.4]
THREADING = pytest.mark.parametrize("new_thread", [False, True], ids=["threads-off", "threads-on"])
HALT = pytest.mark.parametrize("halt", ["stop_service", "holding_goal"])


@pytest.fixture
def endpoint(twin_factory, tmp_path):
    """start(new_thread) → a rosbridge endpoint for the twin, goals reaching the server after 0 to
    150 ms each (out of send order across connections)."""
    started = []

    def start(new_thread: bool, port: int = 0, config: Path | None = None) -> RosbridgeProcess:
        if config is None:
            data = yaml.safe_load((CONFIGS / "kuka_ros.yaml").read_text())
            data["twin"]["rosbridge"] = {"goals_in_new_thread": new_thread, "goal_setup": [0.0, 0.15],
                                         "preemption": "humble"}
            config = tmp_path / f"bridge-{new_thread}.yaml"
            config.write_text(yaml.safe_dump(data))
            start.twin = twin_factory(config)
        b = RosbridgeProcess(str(config), start.twin.endpoint, port)
        b.start()
        b.config = config
        started.append(b)
        return b

    yield start
    for b in started:
        b.stop()


def _driver(port: int, halt: str = "stop_service") -> RosDriver:
    desc = describe_from_config("press", load_config(CONFIGS / "kuka_ros.yaml").robots["press"])
    names = RosNames.for_twin("press", desc.io_names)
    if halt == "holding_goal":  # as UR's preset: no stop service, halted by a goal that holds the position
        from dataclasses import replace

        names = replace(names, stop_service=None)
    return RosDriver("127.0.0.1", port, desc, names)


def _near(driver: RosDriver, target, tol: float = 0.02) -> bool:
    return max(abs(a - b) for a, b in zip(driver.joint_state().positions, target)) < tol


def _home(driver: RosDriver) -> None:
    if not _near(driver, HOME):
        assert wait(driver.move_joints([HOME]), timeout=60) is MotionStatus.SUCCEEDED


@THREADING
@HALT
def test_reset_with_the_arm_away_from_home_ends_at_home(endpoint, new_thread, halt, pytestconfig):
    """What a cell's Reset does: stop whatever moves, then the homing goal at once. The homing goal
    goes out only once the stop is acknowledged, so the halt can never preempt it."""
    driver = _driver(endpoint(new_thread).port, halt)
    driver.connect()
    try:
        for attempt in range(3):
            away = driver.move_joints([AWAY], speed=0.5)
            deadline = time.monotonic() + 30
            while _near(driver, HOME, 0.15) and time.monotonic() < deadline:
                time.sleep(0.02)  # the arm is on its way, away from home
            assert away.status is MotionStatus.RUNNING
            driver.stop()
            homing = driver.move_joints([HOME])
            assert wait(homing, timeout=60) is MotionStatus.SUCCEEDED, homing.reason
            assert away.status in (MotionStatus.CANCELLED, MotionStatus.FAILED) and _near(driver, HOME)  # halted: the
            # stop service's halt ends it ABORTED, a cancel CANCELED, whichever reached the controller first
    finally:
        driver.close()
    to_ci_log(pytestconfig, f"ros stop: Reset away from home, threads {'on' if new_thread else 'off'}, halt by {halt}: "
                            f"3/3 homing goals SUCCEEDED after the stop")


@THREADING
def test_unhold_after_a_bridge_restart_moves_again(endpoint, new_thread):
    b = endpoint(new_thread)
    driver = _driver(b.port, "holding_goal")
    driver.connect()
    try:
        moving = driver.move_joints([AWAY], speed=0.3)
        b.kill()  # the bridge dies mid-motion
        with contextlib.suppress(ConnectionLost):  # the robot's clock (/clock) is gone with it
            wait(moving, timeout=20)
        assert moving.status is MotionStatus.FAILED and moving.link_lost
        endpoint(new_thread, b.port, b.config)  # back on the same port
        until_linked(driver)  # the driver reconnects beside its caller: every call meanwhile says so at once
        driver.stop()  # Unhold: whatever still moves ends first, then the motion again
        again = driver.move_joints([HOME])
        assert wait(again, timeout=60) is MotionStatus.SUCCEEDED, again.reason
        assert _near(driver, HOME)
    finally:
        driver.close()


@THREADING
def test_a_goal_asked_while_another_runs_is_held_and_a_stop_drops_it(endpoint, new_thread):
    driver = _driver(endpoint(new_thread).port, "holding_goal")
    driver.connect()
    try:
        _home(driver)
        first = driver.move_joints([AWAY], speed=0.3)
        second = driver.move_joints([OTHER], speed=0.3)
        assert second.status is MotionStatus.RUNNING and second.waiting is not None  # held in the driver
        time.sleep(0.5)
        driver.stop()
        assert wait(first, timeout=20) in (MotionStatus.CANCELLED, MotionStatus.FAILED)
        assert second.status is MotionStatus.CANCELLED and second.reason == "cancelled before it was sent"
        time.sleep(0.5)  # the halt settles
        before = driver.joint_state().positions
        time.sleep(1.0)
        after = driver.joint_state().positions
        assert max(abs(a - b) for a, b in zip(before, after)) < 0.01, "the arm moved on after the stop"
    finally:
        driver.close()


@THREADING
def test_a_cancel_of_a_held_goal_never_reaches_the_arm(endpoint, new_thread):
    driver = _driver(endpoint(new_thread).port)
    driver.connect()
    try:
        _home(driver)
        first = driver.move_joints([AWAY], speed=0.6)
        second = driver.move_joints([OTHER], speed=0.6)
        second.cancel()
        assert second.status is MotionStatus.CANCELLED
        assert wait(first, timeout=60) is MotionStatus.SUCCEEDED, first.reason
        time.sleep(1.0)
        assert _near(driver, AWAY), "a cancelled goal moved the arm"
    finally:
        driver.close()


async def _raw(url: str, steps: list[tuple[dict, object]], timeout: float = 20.0) -> list[dict]:
    """Each message sent once what came so far satisfies its condition (None: at once)."""
    got: list[dict] = []
    async with websockets.connect(url) as ws:
        deadline = time.monotonic() + timeout
        for message, after in steps:
            while after is not None and not after(got):
                got.append(json.loads(await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic()))))
            if message is not None:
                await ws.send(json.dumps(message))
    return got


def _feedback_for(goal_id: str):
    return lambda got: any(m.get("op") == "action_feedback" and m.get("id") == goal_id for m in got)


def _result_for(goal_id: str):
    return lambda got: _result(got, goal_id) is not None


def _goal(goal_id: str, target, seconds: float = 2.0, feedback: bool | None = True) -> dict:
    joints = [f"lbr_iiwa_joint_{i}" for i in range(1, 8)]
    msg = {"op": "send_action_goal", "id": goal_id, "action": "/press/joint_trajectory_controller/follow_joint_trajectory",
           "action_type": "control_msgs/action/FollowJointTrajectory",
           "args": {"trajectory": {"joint_names": joints, "points": [
               {"positions": target, "velocities": [0.0] * 7, "time_from_start": {"sec": int(seconds), "nanosec": 0}}]}}}
    if feedback is not None:
        msg["feedback"] = feedback
    return msg


def _result(got: list[dict], goal_id: str) -> dict | None:
    return next((m for m in got if m.get("op") == "action_result" and m.get("id") == goal_id), None)


@THREADING
def test_the_endpoint_ends_goals_with_a_real_controllers_codes(endpoint, new_thread):
    url = endpoint(new_thread).url
    action = "/press/joint_trajectory_controller/follow_joint_trajectory"
    cancel = {"op": "cancel_action_goal", "id": "g1", "action": action}
    got = asyncio.run(_raw(url, [(_goal("g1", AWAY), None), (cancel, _feedback_for("g1")), (None, _result_for("g1"))]))
    r = _result(got, "g1")
    if new_thread:  # the cancel reaches the running goal: JTC's cancel_callback, CANCELED with a default result
        assert (r["status"], r["values"]["error_code"]) == (5, 0)
    else:  # on the goal's own connection the cancel waits behind the goal (rosbridge_suite #909)
        assert (r["status"], r["values"]["error_code"]) == (4, 0)
    stop = {"op": "call_service", "id": "s1", "service": "/press/stop", "args": {}}
    got = asyncio.run(_raw(url, [(_goal("g2", HOME), None), (stop, _feedback_for("g2")), (None, _result_for("g2"))]))
    r = _result(got, "g2")
    if new_thread:  # the arm halted under the goal: it did not end its own way
        assert (r["status"], r["values"]["error_code"], r["values"]["error_string"]) == \
            (6, -1, "halted by the stop service")
    else:  # the service call waited behind the goal on its connection, as a cancel does
        assert r["status"] == 4


def test_a_preempted_goal_ends_with_humbles_code_and_text(endpoint):
    url = endpoint(True).url
    got = asyncio.run(_raw(url, [(_goal("g3", AWAY, 4.0), None), (_goal("g4", HOME), _feedback_for("g3")),
                                 (None, _result_for("g3"))]))
    r = _result(got, "g3")
    assert (r["status"], r["values"]["error_code"]) == (5, -1) and r["values"]["error_string"]


def test_feedback_comes_only_when_asked_and_says_desired_actual_and_error(endpoint):
    url = endpoint(True).url
    quiet = asyncio.run(_raw(url, [(_goal("q", AWAY, 1.0, feedback=None), None), (None, _result_for("q"))]))
    assert [m for m in quiet if m.get("op") == "action_feedback"] == []
    loud = asyncio.run(_raw(url, [(_goal("l", HOME, 2.0), None), (None, _result_for("l"))]))
    feedback = [m["values"] for m in loud if m.get("op") == "action_feedback"]
    assert len(feedback) >= 3
    moving = [f for f in feedback if max(abs(e) for e in f["error"]["positions"]) > 1e-4]
    assert moving, "desired never differed from actual while the arm moved"
    for f in moving:
        expected = [d - a for d, a in zip(f["desired"]["positions"], f["actual"]["positions"])]
        assert max(abs(e - x) for e, x in zip(f["error"]["positions"], expected)) < 1e-9


@pytest.mark.timeout(300)
def test_a_cell_answers_its_status_while_its_bridge_is_paused(endpoint, tmp_path):
    """The bridge stops answering mid-run (SIGSTOP): the cell's ticks go on, so its status socket
    keeps answering within its usual time, and the cell says the robot's link is lost."""
    b = endpoint(True)
    config = Path(__file__).parents[1] / "configs" / "ros_cell.yaml"
    run_dir = tmp_path / "run"
    cell = subprocess.Popen([sys.executable, "-m", "cellctl", "cell", "run", str(config), "--cell", "press",
                             "--rosbridge", b.url, "--simulated", "--run-dir", str(run_dir), "--start"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        from cellctl.cell.control import request
        from cellctl.rundir import RunDir

        deadline = time.monotonic() + 60
        while (control := RunDir(run_dir).read_control("press")) is None:
            assert cell.poll() is None and time.monotonic() < deadline, cell.stdout.read()
            time.sleep(0.1)
        # mid-run: once it works (in Resetting, its homing goal may wait longer than the pause below
        # before anything says the link is gone — on a busy machine that is where it may still be)
        while request(control.status, "status", timeout=5.0)["result"]["state"] != "Execute":
            assert cell.poll() is None and time.monotonic() < deadline, "the cell never reached Execute"
            time.sleep(0.1)
        os.kill(b.pid, signal.SIGSTOP)
        try:
            answers = []
            for _ in range(10):
                answers.append(request(control.status, "status", timeout=2.0)["result"])
                time.sleep(0.5)
        finally:
            os.kill(b.pid, signal.SIGCONT)
        assert len(answers) == 10  # each within 2 s, while the bridge said nothing for 5 s
        assert any((a["links"]["robot"] or {}).get("connected") is False or a.get("fault") for a in answers), answers[-1]
    finally:
        cell.terminate()
        cell.wait(30)


def _ur_like(tmp_path: Path, url: str) -> Path:
    """configs/ros_cell.yaml with its robot behind ``url`` the UR way: no stop service, halted by a
    holding goal."""
    base = (Path(__file__).parents[1] / "configs" / "ros_cell.yaml").read_text()
    config = tmp_path / "ur_like.yaml"
    config.write_text(base.replace("press: {model: kuka_iiwa, base: {position: [0.0, 0.0, 0.0]}}",
                                   f"press: {{model: kuka_iiwa, base: {{position: [0.0, 0.0, 0.0]}}, driver: {{ros: "
                                   f"{{url: '{url}', names: {{preset: twin, stop_service: null}}}}}}}}"))
    return config


@THREADING
@pytest.mark.timeout(240)
def test_a_cells_reset_with_the_arm_away_from_home_homes_it_and_starts(endpoint, new_thread, tmp_path, pytestconfig):
    """The reported failure, end to end: a cell of a UR-like robot (halted by a holding goal, no
    stop service) started with its arm away from home, goals reaching the server out of order.
    Its Reset stops, homes and goes on to Execute — never Aborted by its own halt."""
    b = endpoint(new_thread)
    driver = _driver(b.port)
    driver.connect()
    try:
        assert wait(driver.move_joints([AWAY]), timeout=60) is MotionStatus.SUCCEEDED
    finally:
        driver.close()
    config = _ur_like(tmp_path, b.url)
    run_dir = tmp_path / "run"
    cell = subprocess.Popen([sys.executable, "-m", "cellctl", "cell", "run", str(config), "--cell", "press",
                             "--run-dir", str(run_dir), "--start"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        from cellctl.cell.control import request
        from cellctl.rundir import RunDir

        deadline = time.monotonic() + 90
        seen = []
        while True:
            control = RunDir(run_dir).read_control("press")
            state = request(control.status, "status", timeout=2.0)["result"]["state"] if control else None
            if state and (not seen or seen[-1] != state):
                seen.append(state)
            if state in ("Execute", "Suspended", "Complete"):
                break
            assert state not in ("Aborted", "Aborting", "Held") and cell.poll() is None, (seen, state)
            assert time.monotonic() < deadline, seen
            time.sleep(0.1)
        events = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]
        assert [e for e in events if e["kind"] == "fault"] == []
    finally:
        cell.terminate()
        cell.wait(30)
    to_ci_log(pytestconfig, f"ros stop: a cell's Reset away from home (holding-goal halt, goals out of order), threads "
                            f"{'on' if new_thread else 'off'}: {' -> '.join(seen)}, no fault")


@THREADING
@pytest.mark.timeout(300)
def test_a_cells_unhold_after_a_bridge_restart_goes_back_to_work(endpoint, new_thread, tmp_path, pytestconfig):
    """The other reported failure, end to end: the bridge dies under a working cell of a UR-like
    robot (Held, robot_link_lost), comes back, and the operator's Unhold — a stop, then the work
    again — brings the cell back to Execute instead of Held at once."""
    from cellctl.cell.control import request
    from cellctl.rundir import RunDir

    b = endpoint(new_thread)
    config = _ur_like(tmp_path, b.url)
    run_dir = tmp_path / "run"
    log = tmp_path / "cell.log"
    with open(log, "w") as out:
        cell = subprocess.Popen([sys.executable, "-m", "cellctl", "cell", "run", str(config), "--cell", "press",
                                 "--run-dir", str(run_dir), "--start"], stdout=out, stderr=subprocess.STDOUT, text=True)

    def status() -> dict:
        control = RunDir(run_dir).read_control("press")
        return request(control.status, "status", timeout=2.0)["result"] if control else {}

    def until(what, timeout: float = 90.0) -> dict:
        deadline = time.monotonic() + timeout
        while not what(s := status()):
            assert cell.poll() is None and time.monotonic() < deadline, (s, log.read_text()[-4000:])
            time.sleep(0.1)
        return s

    try:
        until(lambda s: s.get("state") == "Execute")
        b.kill()  # the bridge dies under the working cell
        held = until(lambda s: s.get("state") == "Held")
        assert held["fault_kind"] == "robot_link_lost", held
        endpoint(new_thread, b.port, b.config)  # back on the same port
        until(lambda s: s["links"]["robot"]["connected"])  # the cell sees the robot answer again
        control = RunDir(run_dir).read_control("press")
        assert request(control.endpoint, "command", command="Unhold", by="cli")["ok"]
        until(lambda s: s.get("state") == "Execute", 60)
        time.sleep(3.0)  # and it stays there: no halt of its own preempting its next motion
        after = status()
        assert after["state"] in ("Execute", "Suspended", "Complete"), (after, log.read_text()[-4000:])
    finally:
        cell.terminate()
        cell.wait(30)
    to_ci_log(pytestconfig, f"ros stop: a cell's Unhold after a bridge restart (holding-goal halt), threads "
                            f"{'on' if new_thread else 'off'}: Held robot_link_lost -> Execute, {after['state']} 3 s later")
