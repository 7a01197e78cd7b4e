"""``check_driver(driver)``: the same assertions on every driver implementation (Gymnasium's
``check_env`` habit). A driver that passes can carry the standard skills.

It moves the robot: run it on a twin, or on a real robot with a clear workspace. Checks, in order:
describe is consistent; now() is monotonic; a small joint move reaches its goal within tolerance;
cancel stops a motion (status cancelled, robot at rest short of the goal); an out-of-limit target
raises LimitViolation before anything is sent; gripper close/open change gripper_state(); named IO
reads back what was written; and, given ``break_link``, a lost connection raises ConnectionLost within
``LOSS_DETECTED_WITHIN`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from cellctl.drivers.contract import RobotDriver
from cellctl.drivers.errors import ConnectionLost, LimitViolation
from cellctl.drivers.types import GripperCommand, MotionStatus
from cellctl.drivers.wait import sleep, wait

GOAL_TOLERANCE = 0.02  # rad
REST_VELOCITY = 0.05  # rad/s
LOSS_DETECTED_WITHIN = 3.0  # wall s for a driver to notice a broken link


class ConformanceError(AssertionError):
    pass


def _reads_back(driver: RobotDriver, name: str, value: bool, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if driver.read_io(name) is value:
            return True
        sleep(driver, 0.02, timeout)
    return False


def _require(cond: bool, check: str, detail: str) -> None:
    if not cond:
        raise ConformanceError(f"{check}: {detail}")


def _step_within_limits(q: float, lo: float, hi: float, size: float) -> float:
    return q + size if q + size < hi else q - size


def check_driver(driver: RobotDriver, break_link: Callable[[], None] | None = None,
                 timeout: float = 30.0) -> list[str]:
    """Run every check; returns the names of the checks passed, raises ConformanceError."""
    passed: list[str] = []
    desc = driver.describe()
    n = desc.dof
    _require(n > 0 and all(len(v) == n for v in (desc.lower, desc.upper, desc.max_velocity,
                                                 desc.max_acceleration, desc.home)),
             "describe", "joint names, limits and home must all have one entry per joint")
    _require(all(lo < hi for lo, hi in zip(desc.lower, desc.upper)), "describe", "every lower limit below its upper")
    js = driver.joint_state()
    _require(js.names == desc.joint_names, "describe", f"joint_state names {js.names} != {desc.joint_names}")
    _require(all(lo - 1e-3 <= q <= hi + 1e-3 for q, lo, hi in zip(js.positions, desc.lower, desc.upper)),
             "describe", "joint_state positions within limits")
    passed.append("describe")

    stamps = [driver.now()]
    start = np.asarray(js.positions)
    goal = start.copy()
    goal[0] = _step_within_limits(start[0], desc.lower[0], desc.upper[0], 0.1)
    motion = driver.move_joints([goal.tolist()])
    status = wait(motion, timeout)
    stamps.append(driver.now())
    reached = np.asarray(driver.joint_state().positions)
    _require(status is MotionStatus.SUCCEEDED, "small move", f"status {status.value} ({motion.reason})")
    _require(float(np.max(np.abs(reached - goal))) < GOAL_TOLERANCE, "small move",
             f"ended {np.max(np.abs(reached - goal)):.4f} rad from the goal")
    passed.append("small move")

    far = reached.copy()
    far[0] = _step_within_limits(reached[0], desc.lower[0], desc.upper[0], 1.0)
    motion = driver.move_joints([far.tolist()], speed=0.3)
    sleep(driver, 0.3, timeout)
    motion.cancel()
    _require(wait(motion, timeout) is MotionStatus.CANCELLED, "cancel", f"status {motion.status.value}")
    sleep(driver, 0.5, timeout)
    after = driver.joint_state()
    stamps.append(driver.now())
    _require(max(abs(v) for v in after.velocities) < REST_VELOCITY, "cancel",
             f"robot still moving 0.5 s after cancel: {max(abs(v) for v in after.velocities):.3f} rad/s")
    _require(abs(after.positions[0] - far[0]) > 0.1, "cancel", "robot reached the goal although cancelled")
    passed.append("cancel")

    beyond = np.asarray(after.positions)
    beyond[0] = desc.upper[0] + 0.3
    sent = getattr(driver, "commands_sent", None)
    try:
        driver.move_joints([beyond.tolist()])
    except LimitViolation:
        pass
    else:
        raise ConformanceError("limits: a target beyond the upper limit was accepted")
    _require(sent is None or driver.commands_sent == sent, "limits", "a command was sent despite the violation")
    passed.append("limits")

    for command, expected in ((GripperCommand.CLOSE, "closed"), (GripperCommand.OPEN, "open")):
        status = wait(driver.gripper(command), timeout)
        state = driver.gripper_state()
        _require(status is MotionStatus.SUCCEEDED and state.state == expected, "gripper",
                 f"after {command.value}: motion {status.value}, state {state.state}")
    passed.append("gripper")

    for name in desc.io_names:
        for value in (True, False):
            driver.write_io(name, value)  # a real output takes a moment to report its new state
            _require(_reads_back(driver, name, value, timeout), "io", f"{name} did not read back {value} within "
                                                                       f"{timeout}s")
    if desc.io_names:
        passed.append("io")

    stamps.append(driver.now())
    _require(all(b >= a for a, b in zip(stamps, stamps[1:])) and stamps[-1] > stamps[0], "now",
             f"now() not monotonic: {stamps}")
    passed.append("now")

    if break_link is not None:
        break_link()
        deadline = time.monotonic() + LOSS_DETECTED_WITHIN
        while True:  # detection takes a bounded time (a websocket close, a request timeout)
            try:
                driver.joint_state()
            except ConnectionLost:
                passed.append("connection lost")
                break
            if time.monotonic() > deadline:
                raise ConformanceError(f"connection lost: joint_state() still answered {LOSS_DETECTED_WITHIN}s "
                                       "after the link was broken")
            time.sleep(0.01)
    return passed
