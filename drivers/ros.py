"""The driver contract on a real robot through rosbridge (ROS 2), with roslibpy.

Joint state from ``sensor_msgs/msg/JointState``; motions as ``control_msgs/action/FollowJointTrajectory``
goals built from the contract's trajectories (planned, IK-solved and envelope-checked in this
process by ``CommandingMixin``, so an out-of-limit command never reaches the bridge); the gripper
through a ``control_msgs/action/GripperCommand`` action; part presence and named IO through
``std_msgs/msg/Bool`` topics; ``now()`` is wall time, or ``/clock`` when the robot runs on sim time.
Names come from config (:class:`RosNames`; ``ROS2_DEFAULTS`` lists common drivers' names).

Connection faults: a dropped bridge (websocket closed, or no joint state for ``stale_after`` s)
fails every in-flight motion with ConnectionLost (never success) and every call raises
ConnectionLost until the driver has reconnected, which it tries with exponential backoff and a
fresh connection, restoring its subscriptions (roslibpy's own reconnection is left off: see its
issues #29, #44, #70, #108). ROS 1 (actionlib) is not supported.

Stops and goals (rosbridge_suite >= 2.0, either ``send_action_goals_in_new_thread`` setting): cancels
and halts go out on a second connection; after ``stop()`` the next goal is held in the driver until
the stop is acknowledged, and at most one goal per action is ever on the wire (``RosMotion``), so no
motion races a stop however the bridge orders goals of two connections. Nothing here waits inside
a caller's tick: readings are the last the bridge sent, reconnection runs in a thread beside it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import roslibpy

from cellctl.drivers.commanding import CommandingMixin
from cellctl.drivers.clock import WallClock
from cellctl.drivers.errors import ConnectionLost, DriverError, Unsupported
from cellctl.drivers.robot_config import RosDriverConfig
from cellctl.drivers.types import GripperCommand, GripperState, JointState, MotionStatus, RobotDescription, Trajectory
from cellctl.drivers import ros_names as N

BACKOFF_START, BACKOFF_MAX = 0.2, 5.0  # s
HOLD_S = 0.2  # s: a halting goal's one point, the current position, this far ahead
REST_VELOCITY = 0.02  # rad/s: after a stop, the next trajectory goes out once every joint is slower than this
START_TOLERANCE = 0.01  # rad: a given trajectory that waited goes out only if the arm is this close to its start
UR_RUNNING = 7  # ur_dashboard_msgs/msg/RobotMode
UR_SAFE = (1, 2)  # ur_dashboard_msgs/msg/SafetyMode NORMAL, REDUCED
UR_SAFETY_NAMES = {1: "NORMAL", 2: "REDUCED", 3: "PROTECTIVE_STOP", 4: "RECOVERY", 5: "SAFEGUARD_STOP",
                   6: "SYSTEM_EMERGENCY_STOP", 7: "ROBOT_EMERGENCY_STOP", 8: "VIOLATION", 9: "FAULT"}
GOAL_STATUS = {2: "executing", 3: "canceling", 4: "succeeded", 5: "canceled", 6: "aborted"}  # action_msgs/GoalStatus


class _NoRetryNotice(logging.Filter):
    """roslibpy warns when a connection we told it not to retry is not retried: by design here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Exceeded max reconnect retries")


logging.getLogger("roslibpy").addFilter(_NoRetryNotice())


@dataclass(frozen=True)
class RosNames:
    """The ROS names one robot is reached by. ``clock`` set means the robot runs on sim time."""

    joint_states: str
    trajectory_action: str
    gripper_action: str | None = None
    part_present: str | None = None
    io: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (state topic, set topic)
    clock: str | None = None
    stop_service: str | None = None  # std_srvs/srv/Trigger that halts the arm (stop() and after a lost link)
    # the controller's own state, where it publishes it: goals are not sent while it says no
    ready: str | None = None  # std_msgs/msg/Bool: true while the controller accepts goals
    robot_mode: str | None = None  # ur_dashboard_msgs/msg/RobotMode: goals only in RUNNING (7)
    safety_mode: str | None = None  # ur_dashboard_msgs/msg/SafetyMode: goals only in NORMAL (1) or REDUCED (2)
    # semantics, not only names: the gripper's positions, how often joint states are wanted
    gripper_open: float = 1.0
    gripper_closed: float = 0.0
    joint_states_throttle: int = 0  # ms (rosbridge's throttle_rate)
    # UR's IO: ur_msgs/msg/IOStates and the SetIO service, not Bool topics (name -> ("in"|"out", pin))
    ur_io: dict[str, tuple[str, int]] = field(default_factory=dict)
    ur_io_states: str | None = None
    ur_set_io: str | None = None

    @classmethod
    def for_twin(cls, robot: str, io_names: Sequence[str] = ()) -> RosNames:
        """The names the twin's rosbridge endpoint serves (``drivers/ros_names.py``)."""
        return cls(N.joint_states(robot), N.trajectory_action(robot), N.gripper_action(robot), N.part_present(robot),
                   {io: (N.io_state(robot, io), N.io_set(robot, io)) for io in io_names}, "/clock",
                   N.stop_service(robot), ur_io_states=N.io_states(robot), ur_set_io=N.set_io(robot))


    @classmethod
    def from_config(cls, robot: str, cfg: RosDriverConfig, io_names: Sequence[str] = ()) -> RosNames:
        """A robot entry's ``driver.ros``: its preset's names, each replaced where the map gives one;
        ``clock: sim`` reads /clock."""
        names = cfg.names
        base = cls.for_twin(robot, io_names) if names.preset == "twin" else ROS2_DEFAULTS[names.preset]
        given = {k: v for k, v in names.model_dump(exclude={"preset"}).items() if v is not None}
        given.update(dict.fromkeys(names.switched_off()))  # null: off, whatever the preset says
        for key in ("io", "ur_io"):
            if key in given:
                given[key] = {n: tuple(t) for n, t in given[key].items()}
        return replace(base, **given, clock="/clock" if cfg.clock == "sim" else None)


# Names used by common ROS 2 drivers' default launch files (check them against your installation:
# controller names are configurable). See docs/ros.md for where each comes from.
ROS2_DEFAULTS: dict[str, RosNames] = {
    # Universal_Robots_ROS2_Driver humble/jazzy (its main branch defaults to joint_trajectory_controller:
    # override trajectory_action); joint states at 500 Hz, asked for at 100 Hz; no stop service (the
    # dashboard's stops the robot program): halted by a holding goal
    "ur": RosNames("/joint_states", "/scaled_joint_trajectory_controller/follow_joint_trajectory",
                   robot_mode="/io_and_status_controller/robot_mode",
                   safety_mode="/io_and_status_controller/safety_mode", joint_states_throttle=10,
                   ur_io_states="/io_and_status_controller/io_states", ur_set_io="/io_and_status_controller/set_io"),
    # franka_ros2 (humble/jazzy): the gripper action's position is half the finger width (open 0.04 m)
    "franka": RosNames("/joint_states", "/fr3_arm_controller/follow_joint_trajectory",
                       "/fr3_gripper/gripper_action", gripper_open=0.04, gripper_closed=0.0),
    "kuka_lbr": RosNames("/lbr/joint_states", "/lbr/joint_trajectory_controller/follow_joint_trajectory"),
}


def _controller_said(code: object, values: object) -> str:
    """A goal's end as the robot's controller reported it: the GoalStatus and, from a
    FollowJointTrajectory result, its ``error_code`` and ``error_string``."""
    said = (f"error_code {values.get('error_code')}: {values.get('error_string') or '(no error_string)'}"
            if isinstance(values, dict) and "error_code" in values else f"result {values}")
    return f"the robot's controller ended the goal with status {code} ({GOAL_STATUS.get(code, 'unknown')}), {said}"


class UniqueGoals(roslibpy.ActionClient):
    """roslibpy numbers goals with a counter that restarts on every new connection, and rosbridge
    keeps its goal handlers in one dict for all clients: a reconnected driver would reuse an old
    goal's id, the old goal's end would delete the new goal's handler and a cancel would do nothing.
    Goal ids here are unique (a UUID)."""

    def send_goal(self, goal, resultback, feedback, errback) -> str:
        goal_id = f"send_action_goal:{self.name}:{uuid.uuid4().hex}"
        self.ros.call_async_action(roslibpy.Message({
            "op": "send_action_goal", "id": goal_id, "action": self.name, "action_type": self.action_type,
            "args": dict(goal), "feedback": True}), resultback, feedback, errback)
        return goal_id


class RosMotion:
    """Motion handle on one action goal. Callbacks arrive on roslibpy's thread.

    rosbridge 2.0–2.1 never answers a rejected goal, nor one to an action nobody serves, and (by
    default) handles none of that client's later messages while topics keep flowing: a goal that
    brings neither feedback nor a result within the driver's ``accept_timeout`` fails with that
    reason, and the driver opens a fresh connection.

    A goal may be *held* in the driver before it is sent (``waiting``): while a stop is not yet
    acknowledged, or while another goal of the same action is in flight. Polling its status
    releases it once that is over (never inside roslibpy's thread, never by sleeping); cancelling
    it then only drops it — rosbridge never saw it, so no cancel can get lost on the way. A goal
    that ended reports its end once the bridge has sent a joint state (and a part-presence reading)
    from after it, so what the cell reads next is never from before the motion's end."""

    def __init__(self, driver: RosDriver, client: roslibpy.ActionClient | None, goal: _Held | None = None) -> None:
        self._driver, self._client = driver, client
        self.goal_id: str | None = None
        self.sent_at = time.monotonic()
        self.waiting: _Held | None = goal  # held in the driver, not yet sent
        self.heard = False  # feedback or a result came: the goal was accepted
        self.grasping = False  # a gripper close: stalling on the part is the grasp
        self._status, self._reason = MotionStatus.RUNNING, None
        self.ended_at: float | None = None  # monotonic time its end came
        self.link_lost = False  # failed because the bridge went away (not the controller's verdict)
        self._lock = threading.Lock()
        self.clock = driver.clock
        self.on_succeeded: Callable[[], None] | None = None  # e.g. the gripper's state, once it is so
        self.on_end: list[Callable[[], None]] = []  # e.g. a stop waiting for the stopped goal's end

    @property
    def action(self) -> str | None:
        return self._client.name if self._client is not None else None

    def _finish(self, status: MotionStatus, reason: str | None) -> None:
        with self._lock:
            first = not self._status.done
            if first:
                self._status, self._reason, self.ended_at = status, reason, time.monotonic()
        self._driver._forget(self)
        if first:
            for callback in self.on_end:
                callback()

    def on_feedback(self, feedback: Callable[[dict], None] | None, message: dict) -> None:
        self.heard = True
        if feedback is not None:
            feedback(message)

    def on_result(self, result) -> None:
        self.heard = True
        code = result["status"].value if hasattr(result["status"], "value") else result["status"]
        values = result.get("values")
        # ros2_controllers' GripperActionController aborts a close that stalls (on the part it grips)
        # unless allow_stalling: stalled on a part is a grasp
        stalled = self.grasping and isinstance(values, dict) and values.get("stalled") is True
        if code == 4 or code == 6 and stalled:
            self._finish(MotionStatus.SUCCEEDED, None)
            if self.on_succeeded is not None:
                self.on_succeeded()
        elif code == 5:  # cancelled; Humble's JTC also ends a preempted goal so, with its code and text
            coded = isinstance(values, dict) and values.get("error_code") not in (None, 0)
            self._finish(MotionStatus.CANCELLED, f"cancelled: {_controller_said(code, values)}" if coded else "cancelled")
        else:
            self._finish(MotionStatus.FAILED, _controller_said(code, result.get("values")))

    def on_error(self, error) -> None:
        """A result with ``result: false``: a goal the action server rejected (ROS 2 gives it no
        status; roslibpy then says UNKNOWN), or an older bridge's way of reporting an abort."""
        self.heard = True
        status = error.get("status", 0) if isinstance(error, dict) else 0
        code = status.value if hasattr(status, "value") else status
        values = error.get("values", error) if isinstance(error, dict) else error
        if code in GOAL_STATUS:
            self._finish(MotionStatus.FAILED, _controller_said(code, values))
        else:
            said = values.get("error_string", values) if isinstance(values, dict) else values
            self._finish(MotionStatus.FAILED, f"the robot's controller rejected the goal: {said}")

    def lost(self) -> None:
        if not self._status.done:
            self.link_lost = True
        self._finish(MotionStatus.FAILED, "ConnectionLost: the bridge went away during the motion")

    @property
    def status(self) -> MotionStatus:
        if self.waiting is not None:
            self._driver._release(self)
        if not self._status.done:
            if self.waiting is not None:
                return self._status
            try:
                self._driver.check_link()
            except ConnectionLost:
                if not self._status.done:  # (a link found lost just now has failed this motion)
                    raise
                return self._status
            waited = time.monotonic() - self.sent_at
            if not self.heard and waited > self._driver.accept_timeout and self._client is not None:
                self._finish(MotionStatus.FAILED, f"no answer from {self._driver.url} to the goal on "
                             f"{self._client.name} within {self._driver.accept_timeout:g}s: the action is not "
                             f"served or the goal was rejected (rosbridge 2.0-2.1 answers neither)")
                self._driver.reconnect("a goal was never answered: the bridge may handle nothing more "
                                       "from this connection")
        elif self.goal_id is not None and not self.link_lost and not self._driver._heard_since(self.ended_at):
            return MotionStatus.RUNNING  # its end came; the state after it not yet
        return self._status

    @property
    def reason(self) -> str | None:
        return self._reason

    def cancel(self) -> None:
        if self._status.done:
            return
        if self.waiting is not None:  # never sent: nothing to cancel on the bridge
            self.waiting = None
            self._finish(MotionStatus.CANCELLED, "cancelled before it was sent")
        elif self._client is not None and self.goal_id is not None:
            self._driver.cancel_goal(self._client.name, self.goal_id)


@dataclass
class _Held:
    """A goal the driver has not sent yet: the message, the caller's feedback callback, and how to
    plan it again from where the arm is when it goes out after waiting (None: a given trajectory)."""

    goal: dict
    feedback: Callable[[dict], None] | None = None
    replan: Callable[[], dict] | None = None
    waited: bool = False  # it could not go out at once


@dataclass
class _Stop:
    """A stop not yet acknowledged: the stop service's reply or the holding goal's result where a
    halt went out (rosbridge 2.x sends no goal-accepted op), else the stopped goals' results. Goals
    asked for meanwhile are held, then go out once the arm is at rest; past ``deadline`` they fail
    with the reason."""

    deadline: float
    how: str  # what was sent to stop the arm, for the reason
    acked: threading.Event = field(default_factory=threading.Event)


class RosDriver(CommandingMixin):
    def __init__(self, host: str, port: int, description: RobotDescription, names: RosNames,
                 timeout: float = 5.0, stale_after: float = 1.0, joint_map: dict[str, str] | None = None,
                 secure: bool = False, accept_timeout: float = 3.0) -> None:
        self.host, self.port, self.secure = host, port, secure
        self.accept_timeout = accept_timeout
        self._desc, self.names = description, names
        # the bridge's names for the URDF's joints (a real controller may call them otherwise)
        self._bridge_joints = tuple((joint_map or {}).get(n, n) for n in description.joint_names)
        self.timeout, self.stale_after = timeout, stale_after
        self._ros: roslibpy.Ros | None = None
        self._second: roslibpy.Ros | None = None  # the second connection: cancels, halts, UR IO writes
        self._lock = threading.Lock()
        self._joints: dict | None = None
        self._joints_at = 0.0
        self._clock_time: float | None = None
        self._part_present = False
        self._io: dict[str, bool] = {}
        self._io_errors: dict[str, str] = {}  # IO name -> a failed SetIO, raised by the next read
        self._controller: dict[str, object] = {}  # controller state topic -> last value
        self._gripper_state = self._gripper_target = "open"
        self._active: set[RosMotion] = set()  # goals in flight or held; roslibpy's thread removes ended ones
        self._active_lock = threading.Lock()
        self._stop: _Stop | None = None  # the last stop, until it is acknowledged
        self._reconnecting: threading.Thread | None = None
        self._actions: dict[str, roslibpy.ActionClient] = {}
        self._backoff, self._next_try = BACKOFF_START, 0.0
        self._feedback = None
        self._lost_in_flight = False
        self._part_at = 0.0
        self.clock = WallClock(self.now)  # ROS clients never take part in lockstep

    # -- connection ---------------------------------------------------------------------------
    def __enter__(self) -> RosDriver:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self) -> roslibpy.Ros:
        ros = roslibpy.Ros(self.host, self.port, is_secure=self.secure, transport="asyncio")
        ros.factory.maxRetries = -1  # reconnection is ours (fresh connection, restored subscriptions)
        try:
            ros.run(timeout=self.timeout)
        except Exception as exc:
            self._drop_ros(ros)
            raise ConnectionLost(f"no rosbridge at {self.url}: {exc}") from None
        return ros

    def connect(self) -> None:
        """Open the link and subscribe; the link counts as up (``check_link`` passes) only once the
        first joint state is in, so no caller reads a state that has not come yet."""
        ros = self._open()
        ros.on("close", lambda *_: self._on_lost() if self._ros is ros else None)  # an old link's close is old news
        self._actions, self._joints = {}, None
        roslibpy.Topic(ros, self.names.joint_states, N.JOINT_STATE,
                       throttle_rate=self.names.joint_states_throttle).subscribe(self._on_joints)
        if self.names.clock:
            roslibpy.Topic(ros, self.names.clock, N.CLOCK).subscribe(self._on_clock)
        if self.names.part_present:
            roslibpy.Topic(ros, self.names.part_present, N.BOOL).subscribe(self._on_part)
        self._controller = {}
        for topic, type_name in ((self.names.ready, N.BOOL), (self.names.robot_mode, N.UR_ROBOT_MODE),
                                 (self.names.safety_mode, N.UR_SAFETY_MODE)):
            if topic:
                roslibpy.Topic(ros, topic, type_name).subscribe(
                    lambda m, t=topic: self._controller.__setitem__(t, m.get("data", m.get("mode"))))
        for name, (state_topic, _) in self.names.io.items():
            roslibpy.Topic(ros, state_topic, N.BOOL).subscribe(lambda m, n=name: self._io.__setitem__(n, bool(m["data"])))
        if self.names.ur_io and self.names.ur_io_states:
            roslibpy.Topic(ros, self.names.ur_io_states, N.UR_IO_STATES).subscribe(self._on_ur_io)
        deadline = time.monotonic() + self.timeout
        while self._joints is None or (self.names.clock and self._clock_time is None):
            if not ros.is_connected:
                self._drop_ros(ros)  # its transport's loop and thread
                raise ConnectionLost(f"rosbridge at {self.url} closed the connection before the first "
                                     f"{self.names.joint_states}")
            if time.monotonic() > deadline:
                self._drop_ros(ros)
                raise ConnectionLost(f"connected to {self.url}, but no {self.names.joint_states} "
                                     f"within {self.timeout}s")
            time.sleep(0.01)
        # the controller's state and the IO: their first readings, so that later reads never wait
        # (one that does not come stays "unknown", and a read of it says so)
        wanted = [t for t in (self.names.ready, self.names.robot_mode, self.names.safety_mode) if t]
        while time.monotonic() < deadline and (any(t not in self._controller for t in wanted)
                                               or any(n not in self._io for n in [*self.names.io, *self.names.ur_io])):
            time.sleep(0.01)
        self._backoff = BACKOFF_START
        self._ros = ros
        if not ros.is_connected:  # closed between the first joint state and now: its close went unheard
            self._on_lost()
            raise ConnectionLost(f"rosbridge at {self.url} closed the connection while it was opened")
        self._second_link()  # cancels and halts go out at once, without opening a connection first
        if self._lost_in_flight:  # goals we lost track of may still run on the robot: halt it first
            self._lost_in_flight = False
            self._stopping([])

    @property
    def url(self) -> str:
        return f"{'wss' if self.secure else 'ws'}://{self.host}:{self.port}"

    def _second_link(self) -> roslibpy.Ros:
        """A second connection for cancels and halts. With rosbridge's default
        (``send_action_goals_in_new_thread`` off) a connection's messages wait while one of its goals
        runs — a cancel on it is handled only after the goal ended (rosbridge_suite #909) — and
        rosbridge's goal handlers are shared by all clients, so a cancel sent here reaches the goal now."""
        if self._second is None or not self._second.is_connected:
            if self._second is not None:
                self._drop_ros(self._second)
            self._second = None
            self._second = self._open()
        return self._second

    def cancel_goal(self, action: str, goal_id: str) -> None:
        self._second_link().send_on_ready(roslibpy.Message({"op": "cancel_action_goal", "id": goal_id,
                                                             "action": action}))

    def _halt(self, acknowledged: Callable[[], None]) -> str | None:
        """Halt the arm the preset's way: its stop service where it has one (the twin's), else a
        goal that holds the current position — ros2_controllers' trajectory controller ends the
        running goal for it (UR's only stop service, the dashboard's, would stop the robot program).
        Both go out on the second connection (with rosbridge's threading off, a holding goal on the
        goal's own connection would wait behind the goal) and do not wait: ``acknowledged`` is
        called on the service's reply, or on the holding goal's result.
        Returns what was sent, for a person, or None when nothing was."""
        if self.names.stop_service:
            roslibpy.Service(self._second_link(), self.names.stop_service, N.TRIGGER).call(
                roslibpy.ServiceRequest({}), lambda _: acknowledged(), lambda _: acknowledged())
            return f"the stop service {self.names.stop_service}"
        if self._joints is None:
            return None
        here = self._bridge_positions()
        goal = {"trajectory": {"joint_names": list(self._bridge_joints),
                               "points": [{"positions": list(here), "velocities": [0.0] * len(here),
                                           "time_from_start": N.stamp(HOLD_S)}]}}
        # acknowledged by its result, not its first feedback: the arm overshoots the held position
        # while it decelerates and comes back to it; the next goal starts from there, at rest
        UniqueGoals(self._second_link(), self.names.trajectory_action, N.FOLLOW_JOINT_TRAJECTORY).send_goal(
            roslibpy.Goal(goal), lambda _: acknowledged(), lambda _: None, lambda _: acknowledged())
        return f"a holding goal on {self.names.trajectory_action}"

    def _stopping(self, stopped: list[RosMotion]) -> None:
        """Halt; hold every later goal until the halt is acknowledged — or, with nothing to halt
        with, until every goal in ``stopped`` has ended. The stopped goals' ends alone do not do
        where a halt went out: the holding goal, reaching the server late, would preempt the next."""
        stop = _Stop(time.monotonic() + self.timeout, "")
        how = self._halt(stop.acked.set)
        if how is None:
            remaining = set(stopped)

            def ended(motion: RosMotion) -> None:
                remaining.discard(motion)
                if not remaining:
                    stop.acked.set()

            for motion in stopped:
                motion.on_end.append(lambda m=motion: ended(m))
                if motion._status.done:  # it ended before we listened
                    ended(motion)
            if not stopped:
                stop.acked.set()
        stop.how = how or "cancels of the goals in flight"
        self._stop = stop

    def reconnect(self, why: str) -> None:
        """Drop the connection (the next call opens a fresh one)."""
        logging.getLogger(__name__).warning("rosbridge at %s: %s; reconnecting", self.url, why)
        self._on_lost()

    @staticmethod
    def _drop_ros(ros: roslibpy.Ros) -> None:
        try:
            ros.close(timeout=1.0)
        except Exception:  # closing a half-dead connection: nothing more to do
            pass

    def _on_joints(self, msg: dict) -> None:
        self._joints, self._joints_at = msg, time.monotonic()

    def _on_part(self, msg: dict) -> None:
        self._part_present, self._part_at = bool(msg["data"]), time.monotonic()

    def _on_ur_io(self, msg: dict) -> None:
        pins = {kind: {p["pin"]: bool(p["state"]) for p in msg.get(f"digital_{kind}_states", [])} for kind in ("in", "out")}
        for name, (kind, pin) in self.names.ur_io.items():
            if pin in pins[kind]:
                self._io[name] = pins[kind][pin]

    def _on_clock(self, msg: dict) -> None:
        self._clock_time = N.seconds(msg["clock"])

    def _on_lost(self) -> None:
        """Both connections go (the next ``connect`` opens both afresh, beside the caller): a
        second connection left over from a bridge that restarted would be reopened inside a tick."""
        with self._lock:
            gone = [c for c in (self._ros, self._second) if c is not None]
            self._ros = self._second = None
        motions = self._motions()
        self._lost_in_flight = self._lost_in_flight or any(m.waiting is None for m in motions)
        for motion in motions:
            motion.lost()
        for ros in gone:
            threading.Thread(target=self._drop_ros, args=(ros,), daemon=True).start()

    def check_link(self) -> None:
        """Raise ConnectionLost unless the link is up. A link that is down is reconnected beside
        the caller (a thread, with backoff and a fresh connection), never inside its tick."""
        if self._ros is not None and time.monotonic() - self._joints_at > self.stale_after:
            self._on_lost()  # a silent bridge is a dropped bridge
        if self._ros is not None:
            return
        if self._reconnecting is None or not self._reconnecting.is_alive():
            if time.monotonic() >= self._next_try:
                self._reconnecting = threading.Thread(target=self._reconnect, daemon=True, name="rosbridge-reconnect")
                self._reconnecting.start()
        raise ConnectionLost(f"rosbridge at {self.url} lost; reconnecting"
                             + (f" (next try in {self._next_try - time.monotonic():.1f}s)"
                                if self._next_try > time.monotonic() else ""))

    def _reconnect(self) -> None:
        try:
            self.connect()
        except ConnectionLost:
            self._next_try = time.monotonic() + self._backoff
            self._backoff = min(BACKOFF_MAX, self._backoff * 2)

    def _motions(self) -> list[RosMotion]:
        with self._active_lock:
            return list(self._active)

    def _forget(self, motion: RosMotion) -> None:
        with self._active_lock:
            self._active.discard(motion)

    def _heard_since(self, t: float | None) -> bool:
        """A joint state (and a part-presence reading, where there is one) came after ``t``, or
        ``stale_after`` passed: what is read now is not from before ``t``."""
        if t is None or time.monotonic() - t > self.stale_after:
            return True
        return self._joints_at >= t and (not self.names.part_present or self._part_at >= t)

    def close(self) -> None:
        for motion in self._motions():
            try:
                motion.cancel()
            except ConnectionLost:
                break  # nothing to cancel through
        for ros in (self._ros, self._second):
            if ros is not None:
                self._drop_ros(ros)
        self._ros = self._second = None
        self.close_kinematics()

    # -- contract ---------------------------------------------------------------------------
    def describe(self) -> RobotDescription:
        return self._desc

    def joint_state(self) -> JointState:
        self.check_link()
        msg = self._joints
        index = {n: i for i, n in enumerate(msg["name"])}
        missing = [n for n in self._bridge_joints if n not in index]
        if missing:
            raise DriverError(f"{self.names.joint_states} at {self.url} has no joint {', '.join(missing)} (it has "
                              f"{', '.join(msg['name'][:12]) or 'none'}); map the URDF's joints to the bridge's "
                              f"names with driver.ros.joints")
        pos = tuple(msg["position"][index[n]] for n in self._bridge_joints)
        vel = tuple(msg["velocity"][index[n]] if msg["velocity"] else 0.0 for n in self._bridge_joints)
        return JointState(self._desc.joint_names, pos, vel, N.seconds(msg["header"]["stamp"]))

    def _action(self, name: str, action_type: str) -> roslibpy.ActionClient:
        if name not in self._actions:
            self._actions[name] = UniqueGoals(self._ros, name, action_type)
        return self._actions[name]

    def controller_refuses(self) -> str | None:
        """Why the robot's controller would not run a goal now (E-stop, protective stop, not in
        remote control), from the state topics it publishes; None when it would, or says nothing."""
        checks = ((self.names.ready, lambda v: v is True, "false"),
                  (self.names.robot_mode, lambda v: v == UR_RUNNING, "robot mode {}, not RUNNING (7)"),
                  (self.names.safety_mode, lambda v: v in UR_SAFE, "safety mode {} ({}), not NORMAL or REDUCED"))
        for topic, fine, what in checks:
            if not topic:
                continue
            if topic not in self._controller:
                return f"no message on {topic} from {self.url} yet: the controller's state is unknown"
            value = self._controller[topic]
            if not fine(value):
                said = what.format(value, UR_SAFETY_NAMES.get(value, "?"))
                return f"the robot's controller does not accept goals: {topic} says {said}"
        return None

    def _send_goal(self, name: str, action_type: str, goal: dict, feedback=None,
                   replan: Callable[[], dict] | None = None) -> RosMotion:
        self.check_link()
        if (refused := self.controller_refuses()) is not None:
            raise DriverError(refused)
        motion = RosMotion(self, self._action(name, action_type), _Held(goal, feedback, replan))
        with self._active_lock:
            self._active.add(motion)
        self._release(motion)
        if motion.waiting is not None:
            motion.waiting.waited = True
        return motion

    def _release(self, motion: RosMotion) -> None:
        """Send a held goal once nothing stands in its way: a stop not yet acknowledged (past its
        deadline the goal fails with the reason), or another goal of its action in flight (the
        driver never has two goals of one action out unless it means to preempt, which it does by
        stopping first)."""
        why = None
        with self._active_lock:
            if motion.waiting is None or motion._status.done:
                return
            stop = self._stop
            if stop is not None and not stop.acked.is_set():
                if time.monotonic() <= stop.deadline:
                    return
                why = (f"the stop before it ({stop.how}) was not acknowledged within {self.timeout:g}s by "
                       f"{self.url}: the goal was not sent")
            elif any(m is not motion and m.waiting is None and m.action == motion.action for m in self._active):
                return
            elif stop is not None and motion.action == self.names.trajectory_action and not self._at_rest():
                if time.monotonic() <= stop.deadline:
                    return  # acknowledged, and the arm still settles under the halt
                why = f"the arm did not come to rest within {self.timeout:g}s of the stop: the goal was not sent"
            held = motion.waiting
            motion.waiting = None
        goal = held.goal
        if why is None and held.waited:
            goal, why = self._after_waiting(held)
        if why is not None:
            motion._finish(MotionStatus.FAILED, why)
            return
        motion.sent_at = time.monotonic()
        motion.goal_id = motion._client.send_goal(roslibpy.Goal(goal), motion.on_result,
                                                  lambda m: motion.on_feedback(held.feedback, m), motion.on_error)

    def _after_waiting(self, held: _Held) -> tuple[dict, str | None]:
        """A goal that waited goes out planned again from where the arm is now (it was planned from
        where the arm was when it was asked for, maybe still moving); a given trajectory goes out
        only if the arm is still at its start."""
        if held.replan is not None:
            try:
                return held.replan(), None
            except DriverError as exc:
                return held.goal, f"planned again once the stop was acknowledged: {exc}"
        points = held.goal.get("trajectory", {}).get("points")
        if not points or self._joints is None:
            return held.goal, None
        here = self._bridge_positions(held.goal["trajectory"]["joint_names"])
        off = max(abs(a - b) for a, b in zip(here, points[0]["positions"]))
        if off > START_TOLERANCE:
            return held.goal, (f"the arm is {off:.3f} rad from this trajectory's start (it moved while the goal waited "
                               f"for a stop to be acknowledged): not sent")
        return held.goal, None

    def _at_rest(self) -> bool:
        """The last joint state says no joint moves faster than REST_VELOCITY (a state without
        velocities says nothing, and counts as at rest)."""
        velocities = (self._joints or {}).get("velocity") or []
        return all(abs(v) < REST_VELOCITY for v in velocities)

    def _bridge_positions(self, names: Sequence[str] | None = None) -> list[float]:
        """The last joint state's positions, in the bridge's joint names (``names``' order)."""
        msg = self._joints
        index = {n: i for i, n in enumerate(msg["name"])}
        return [msg["position"][index[n]] for n in (names or self._bridge_joints)]

    def move_joints(self, waypoints, speed: float = 1.0, feedback=None) -> RosMotion:
        """As the contract's, plus ``feedback``: called with each FollowJointTrajectory feedback."""
        self._feedback = feedback
        try:
            return super().move_joints(waypoints, speed)
        finally:
            self._feedback = None

    def execute(self, trajectory: Trajectory) -> RosMotion:
        return self._send_goal(self.names.trajectory_action, N.FOLLOW_JOINT_TRAJECTORY, self._goal_of(trajectory),
                               self._feedback)

    def _send(self, trajectory: Trajectory, replan: Callable[[], Trajectory] | None = None) -> RosMotion:
        self.commands_sent += 1
        again = (lambda: self._goal_of(replan())) if replan is not None else None
        return self._send_goal(self.names.trajectory_action, N.FOLLOW_JOINT_TRAJECTORY, self._goal_of(trajectory),
                               self._feedback, again)

    def _goal_of(self, trajectory: Trajectory) -> dict:
        points = [{"positions": p.tolist(), "velocities": v.tolist(), "time_from_start": N.stamp(float(t))}
                  for t, p, v in zip(trajectory.times, trajectory.positions, trajectory.velocities)]
        bridge = dict(zip(self._desc.joint_names, self._bridge_joints))
        return {"trajectory": {"joint_names": [bridge.get(n, n) for n in trajectory.joint_names], "points": points}}

    def gripper(self, command: GripperCommand | str) -> RosMotion:
        if self.names.gripper_action is None:
            raise Unsupported("no gripper action configured for this robot")
        command = GripperCommand(command)
        closing = command is GripperCommand.CLOSE
        position = self.names.gripper_closed if closing else self.names.gripper_open
        target = "closed" if closing else "open"
        self._gripper_target = target
        motion = self._send_goal(self.names.gripper_action, N.GRIPPER_COMMAND,
                                 {"command": {"position": position, "max_effort": 0.0}})
        motion.grasping = closing
        # the gripper is closed (open) once the controller says the goal succeeded, not when it was sent
        motion.on_succeeded = lambda: setattr(self, "_gripper_state", target)
        return motion

    def gripper_state(self) -> GripperState:
        self.check_link()
        moving = any(m.action == self.names.gripper_action for m in self._motions())
        state = {"closed": "closing", "open": "opening"}[self._gripper_target] if moving else self._gripper_state
        return GripperState(state, self._part_present, None)

    def _io_source(self, name: str) -> str:
        if name in self.names.io:
            return self.names.io[name][0]
        if name in self.names.ur_io and self.names.ur_io_states:
            kind, pin = self.names.ur_io[name]
            return f"{self.names.ur_io_states} (digital_{kind}_states pin {pin})"
        raise Unsupported(f"no IO named {name!r}; configured: {sorted([*self.names.io, *self.names.ur_io])}")

    def read_io(self, name: str) -> bool:
        self.check_link()
        source = self._io_source(name)
        if name in self._io_errors:
            raise DriverError(self._io_errors.pop(name))
        if name not in self._io:  # never a silent False: the IO's state is not known
            raise DriverError(f"no message on {source} from {self.url} yet (IO {name!r}): its state is unknown")
        return self._io[name]

    def write_io(self, name: str, value: bool) -> None:
        """Publish (or, for UR IO, call SetIO on the second connection) and return: the state topic
        reports the output once it is set; a SetIO that fails is raised by the next ``read_io``."""
        self.check_link()
        self._io_source(name)
        if name in self.names.io:
            roslibpy.Topic(self._ros, self.names.io[name][1], N.BOOL).publish(roslibpy.Message({"data": bool(value)}))
            return
        kind, pin = self.names.ur_io[name]
        if kind != "out" or not self.names.ur_set_io:
            raise Unsupported(f"IO {name!r} is UR digital {kind}put pin {pin}: only outputs are set")
        failed = f"{self.names.ur_set_io} at {self.url} did not set pin {pin} (IO {name!r})"

        def answered(reply: dict) -> None:
            if not reply.get("success", False):
                self._io_errors[name] = f"{failed}: {reply}"

        roslibpy.Service(self._second_link(), self.names.ur_set_io, N.UR_SET_IO).call(
            roslibpy.ServiceRequest({"fun": N.UR_SET_DIGITAL_OUT, "pin": pin, "state": float(value)}),
            answered, lambda error: self._io_errors.__setitem__(name, f"{failed}: {error}"))

    def now(self) -> float:
        if self.names.clock:
            self.check_link()
            return self._clock_time
        return time.time()

    def stop(self) -> None:
        """Cancel the goals in flight, drop the held ones, halt the controller, and hold every goal
        asked for next until the stop is acknowledged (``_Stop``): no motion races a stop."""
        motions = self._motions()
        for motion in motions:
            motion.cancel()
        self.check_link()
        self._stopping([m for m in motions if not m._status.done])
