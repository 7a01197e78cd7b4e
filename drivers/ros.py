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

Cancelling a running goal on a real robot needs rosbridge_suite >= 2.0 with its
``send_action_goals_in_new_thread`` parameter set (rosbridge_suite #909).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import roslibpy

from drivers.commanding import CommandingMixin
from drivers.clock import WallClock
from drivers.errors import ConnectionLost, Unsupported
from drivers.types import GripperCommand, GripperState, JointState, MotionStatus, RobotDescription, Trajectory
from drivers import ros_names as N

BACKOFF_START, BACKOFF_MAX = 0.2, 5.0  # s


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

    @classmethod
    def for_twin(cls, robot: str, io_names: Sequence[str] = ()) -> RosNames:
        """The names the twin's rosbridge endpoint serves (``drivers/ros_names.py``)."""
        return cls(N.joint_states(robot), N.trajectory_action(robot), N.gripper_action(robot), N.part_present(robot),
                   {io: (N.io_state(robot, io), N.io_set(robot, io)) for io in io_names}, "/clock",
                   N.stop_service(robot))


# Names used by common ROS 2 drivers' default launch files (check them against your installation:
# controller names are configurable). See docs/ros.md for where each comes from.
ROS2_DEFAULTS: dict[str, RosNames] = {
    "ur": RosNames("/joint_states", "/scaled_joint_trajectory_controller/follow_joint_trajectory"),
    "franka": RosNames("/joint_states", "/fr3_arm_controller/follow_joint_trajectory",
                       "/fr3_gripper/gripper_action"),
    "kuka_lbr": RosNames("/lbr/joint_states", "/lbr/joint_trajectory_controller/follow_joint_trajectory"),
}


class RosMotion:
    """Motion handle on one action goal. Callbacks arrive on roslibpy's thread."""

    def __init__(self, driver: RosDriver, client: roslibpy.ActionClient | None) -> None:
        self._driver, self._client = driver, client
        self.goal_id: str | None = None
        self._status, self._reason = MotionStatus.RUNNING, None
        self._lock = threading.Lock()
        self.clock = driver.clock

    def _finish(self, status: MotionStatus, reason: str | None) -> None:
        with self._lock:
            if not self._status.done:
                self._status, self._reason = status, reason
        self._driver._active.discard(self)
        self._driver._ended_at = time.monotonic()

    def on_result(self, result) -> None:
        code = result["status"].value if hasattr(result["status"], "value") else result["status"]
        if code == 4:
            self._finish(MotionStatus.SUCCEEDED, None)
        elif code == 5:
            self._finish(MotionStatus.CANCELLED, "cancelled")
        else:
            self._finish(MotionStatus.FAILED, f"goal status {code}: {result['values']}")

    def on_error(self, error) -> None:
        self._finish(MotionStatus.FAILED, f"goal failed: {error.get('values', error)}")

    def lost(self) -> None:
        self._finish(MotionStatus.FAILED, "ConnectionLost: the bridge went away during the motion")

    @property
    def status(self) -> MotionStatus:
        if not self._status.done:
            self._driver.check_link()
        return self._status

    @property
    def reason(self) -> str | None:
        return self._reason

    def cancel(self) -> None:
        if not self._status.done and self._client is not None and self.goal_id is not None:
            self._client.cancel_goal(self.goal_id)


class RosDriver(CommandingMixin):
    def __init__(self, host: str, port: int, description: RobotDescription, names: RosNames,
                 timeout: float = 5.0, stale_after: float = 1.0) -> None:
        self.host, self.port = host, port
        self._desc, self.names = description, names
        self.timeout, self.stale_after = timeout, stale_after
        self._ros: roslibpy.Ros | None = None
        self._lock = threading.Lock()
        self._joints: dict | None = None
        self._joints_at = 0.0
        self._clock_time: float | None = None
        self._part_present = False
        self._io: dict[str, bool] = {}
        self._gripper_state = "open"
        self._active: set[RosMotion] = set()
        self._actions: dict[str, roslibpy.ActionClient] = {}
        self._backoff, self._next_try = BACKOFF_START, 0.0
        self._feedback = None
        self._lost_in_flight = False
        self._ended_at = 0.0  # wall time the last goal ended
        self._part_at = 0.0
        self.clock = WallClock(self.now)  # ROS clients never take part in lockstep

    # -- connection ---------------------------------------------------------------------------
    def __enter__(self) -> RosDriver:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        ros = roslibpy.Ros(self.host, self.port, transport="asyncio")
        ros.factory.maxRetries = -1  # reconnection is ours (fresh connection, restored subscriptions)
        try:
            ros.run(timeout=self.timeout)
        except Exception as exc:
            self._drop_ros(ros)
            raise ConnectionLost(f"no rosbridge at ws://{self.host}:{self.port}: {exc}") from None
        ros.on("close", lambda *_: self._on_lost())
        self._ros, self._actions, self._joints = ros, {}, None
        roslibpy.Topic(ros, self.names.joint_states, N.JOINT_STATE).subscribe(self._on_joints)
        if self.names.clock:
            roslibpy.Topic(ros, self.names.clock, N.CLOCK).subscribe(self._on_clock)
        if self.names.part_present:
            roslibpy.Topic(ros, self.names.part_present, N.BOOL).subscribe(self._on_part)
        for name, (state_topic, _) in self.names.io.items():
            roslibpy.Topic(ros, state_topic, N.BOOL).subscribe(lambda m, n=name: self._io.__setitem__(n, bool(m["data"])))
        deadline = time.monotonic() + self.timeout
        while self._joints is None or (self.names.clock and self._clock_time is None):
            if time.monotonic() > deadline:
                self._on_lost()
                raise ConnectionLost(f"connected to ws://{self.host}:{self.port}, but no {self.names.joint_states} "
                                     f"within {self.timeout}s")
            time.sleep(0.01)
        self._backoff = BACKOFF_START
        if self._lost_in_flight:  # goals we lost track of may still run on the robot: halt it first
            self._lost_in_flight = False
            self._halt()

    def _halt(self) -> None:
        if self.names.stop_service and self._ros is not None:
            roslibpy.Service(self._ros, self.names.stop_service, N.TRIGGER).call(
                roslibpy.ServiceRequest({}), timeout=self.timeout)

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

    def _on_clock(self, msg: dict) -> None:
        self._clock_time = N.seconds(msg["clock"])

    def _on_lost(self) -> None:
        with self._lock:
            ros, self._ros = self._ros, None
        self._lost_in_flight = self._lost_in_flight or bool(self._active)
        for motion in list(self._active):
            motion.lost()
        if ros is not None:
            threading.Thread(target=self._drop_ros, args=(ros,), daemon=True).start()

    def check_link(self) -> None:
        """Raise ConnectionLost unless the link is up; reconnect (with backoff) when it is down."""
        if self._ros is not None and time.monotonic() - self._joints_at > self.stale_after:
            self._on_lost()  # a silent bridge is a dropped bridge
        if self._ros is None:
            if time.monotonic() < self._next_try:
                raise ConnectionLost(f"rosbridge at ws://{self.host}:{self.port} lost; next reconnect in "
                                     f"{self._next_try - time.monotonic():.1f}s")
            try:
                self.connect()
            except ConnectionLost:
                self._next_try = time.monotonic() + self._backoff
                self._backoff = min(BACKOFF_MAX, self._backoff * 2)
                raise

    def close(self) -> None:
        for motion in list(self._active):
            motion.cancel()
        ros, self._ros = self._ros, None
        if ros is not None:
            self._drop_ros(ros)
        self.close_kinematics()

    # -- contract ---------------------------------------------------------------------------
    def describe(self) -> RobotDescription:
        return self._desc

    def _fresh(self, stamp_attr: str) -> None:
        """Wait (at most ``stale_after``) for a message newer than the end of the last motion: a
        state read from before it ended (a plan's start, a suction check) would be out of date."""
        deadline = time.monotonic() + self.stale_after
        while getattr(self, stamp_attr) < self._ended_at and time.monotonic() < deadline:
            time.sleep(0.001)

    def joint_state(self) -> JointState:
        self.check_link()
        self._fresh("_joints_at")
        msg = self._joints
        index = {n: i for i, n in enumerate(msg["name"])}
        pos = tuple(msg["position"][index[n]] for n in self._desc.joint_names)
        vel = tuple(msg["velocity"][index[n]] if msg["velocity"] else 0.0 for n in self._desc.joint_names)
        return JointState(self._desc.joint_names, pos, vel, N.seconds(msg["header"]["stamp"]))

    def _action(self, name: str, action_type: str) -> roslibpy.ActionClient:
        if name not in self._actions:
            self._actions[name] = roslibpy.ActionClient(self._ros, name, action_type)
        return self._actions[name]

    def _send_goal(self, name: str, action_type: str, goal: dict, feedback=None) -> RosMotion:
        self.check_link()
        client = self._action(name, action_type)
        motion = RosMotion(self, client)
        self._active.add(motion)
        motion.goal_id = client.send_goal(roslibpy.Goal(goal), motion.on_result, feedback or (lambda _: None),
                                          motion.on_error)
        return motion

    def move_joints(self, waypoints, speed: float = 1.0, feedback=None) -> RosMotion:
        """As the contract's, plus ``feedback``: called with each FollowJointTrajectory feedback."""
        self._feedback = feedback
        try:
            return super().move_joints(waypoints, speed)
        finally:
            self._feedback = None

    def execute(self, trajectory: Trajectory) -> RosMotion:
        points = [{"positions": p.tolist(), "velocities": v.tolist(), "time_from_start": N.stamp(float(t))}
                  for t, p, v in zip(trajectory.times, trajectory.positions, trajectory.velocities)]
        goal = {"trajectory": {"joint_names": list(trajectory.joint_names), "points": points}}
        return self._send_goal(self.names.trajectory_action, N.FOLLOW_JOINT_TRAJECTORY, goal, self._feedback)

    def gripper(self, command: GripperCommand | str) -> RosMotion:
        if self.names.gripper_action is None:
            raise Unsupported("no gripper action configured for this robot")
        command = GripperCommand(command)
        position = 0.0 if command is GripperCommand.CLOSE else 1.0
        motion = self._send_goal(self.names.gripper_action, N.GRIPPER_COMMAND,
                                 {"command": {"position": position, "max_effort": 0.0}})
        self._gripper_state = "closed" if command is GripperCommand.CLOSE else "open"
        return motion

    def gripper_state(self) -> GripperState:
        self.check_link()
        if self.names.part_present:
            self._fresh("_part_at")
        moving = any(m for m in self._active if m._client is self._actions.get(self.names.gripper_action))
        state = {"closed": "closing", "open": "opening"}[self._gripper_state] if moving else self._gripper_state
        return GripperState(state, self._part_present, None)

    def read_io(self, name: str) -> bool:
        self.check_link()
        if name not in self.names.io:
            raise Unsupported(f"no IO named {name!r}; configured: {sorted(self.names.io)}")
        deadline = time.monotonic() + self.timeout
        while name not in self._io and time.monotonic() < deadline:
            time.sleep(0.01)
        return self._io.get(name, False)

    def write_io(self, name: str, value: bool) -> None:
        self.check_link()
        if name not in self.names.io:
            raise Unsupported(f"no IO named {name!r}; configured: {sorted(self.names.io)}")
        roslibpy.Topic(self._ros, self.names.io[name][1], N.BOOL).publish(roslibpy.Message({"data": bool(value)}))
        deadline = time.monotonic() + self.timeout  # read-your-write: wait for the state topic to agree
        while self._io.get(name) is not bool(value) and time.monotonic() < deadline:
            time.sleep(0.01)

    def now(self) -> float:
        if self.names.clock:
            self.check_link()
            return self._clock_time
        return time.time()

    def stop(self) -> None:
        """Cancel the running goals and, where configured, halt the controller."""
        for motion in list(self._active):
            motion.cancel()
        self.check_link()
        self._halt()
