"""The twin's robots over the rosbridge v2 protocol (rosbridge_suite's ROSBRIDGE_PROTOCOL.md), so
the same cells can drive the twin through ``drivers/ros.py`` exactly as they would drive a real
robot behind rosbridge_server.

A separate process (``cellctl twin serve --rosbridge PORT`` starts it), a client of the twin's
ZeroMQ API: the twin runs in realtime (× rate); ROS clients do not take part in lockstep.
Names and types: ``drivers/ros_names.py``. Supported ops: advertise, unadvertise, publish, subscribe,
unsubscribe, call_service (the rosapi discovery services), send_action_goal and cancel_action_goal
(FollowJointTrajectory and GripperCommand, with feedback and results), set_level. Both type
spellings are accepted. Errors reach the client as ``result: false`` (service and action replies);
``status`` messages go only to clients that asked for them with ``set_level``, because roslibpy 2.1
has no handler for the ``status`` op. Bad input never stops the endpoint.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import random
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field

import websockets

from cellctl.drivers.errors import DriverError
from cellctl.drivers.twin_client import TwinClient
from cellctl.drivers import twin_wire as P
from cellctl.drivers import ros_names as N
from cellctl.twin.config import SceneConfig, station_sensor

PUBLISH_HZ = 50
ROSAPI = ("/rosapi/topics", "/rosapi/topics_and_raw_types", "/rosapi/action_servers", "/rosapi/topic_type",
          "/rosapi/services")
SENSOR_HZ = 25  # station sensors (presence, part id)
MAX_MESSAGE_BYTES = 4 << 20  # a bigger websocket message closes that connection (websockets' max_size)
MAX_NAME = 128  # characters of a client's op, topic or id echoed back in an error
MAX_REASON = 1024
FEEDBACK_HZ = 20
LEVELS = ("error", "warning", "info")
# GoalStatus (action_msgs/msg/GoalStatus) and control_msgs error codes
SUCCEEDED, CANCELED, ABORTED = 4, 5, 6
INVALID_GOAL, INVALID_JOINTS = -1, -2
PREEMPTED = "Current goal cancelled due to new incoming action."  # JTC's words for a preempted goal
HALTED = "halted by the stop service"
SETUP_SEED = 1  # goal_setup's delays: the same sequence every run


class BadRequest(Exception):
    pass


class Rejected(BadRequest):
    """A well-formed goal the action server refuses (or an action nobody serves): what rosbridge
    2.0–2.1 never answers, unlike a malformed message."""


@dataclass
class Subscription:
    throttle_s: float = 0.0  # rosbridge's throttle_rate (ms between messages), in s
    last_sent: float = float("-inf")


@dataclass(eq=False)
class Client:
    ws: object
    level: str | None = None  # status messages only after set_level
    subscriptions: dict[str, dict[str, Subscription]] = field(default_factory=dict)  # topic -> id -> its settings

    async def send(self, msg: dict) -> None:
        try:
            await self.ws.send(json.dumps(msg))
        except websockets.ConnectionClosed:
            pass


@dataclass
class Goal:
    client: Client
    goal_id: str
    action: str
    robot: str
    kind: str  # "trajectory" | "gripper"
    motion: int
    command: float = 0.0
    cancelled: bool = False
    halted: bool = False  # ended by the stop service, not by its client
    feedback: bool = False  # the client asked for feedback ("feedback": true)
    started: float = 0.0  # sim time the trajectory started
    trajectory: dict | None = None  # the twin's form of it: times, positions, velocities (for desired and error)
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # its result was sent (or it was dropped)


class Endpoint:
    def __init__(self, config: SceneConfig, twin_endpoint: str) -> None:
        self.config = config
        self.twin = TwinClient(twin_endpoint, client="rosbridge", keys=config.keys("rosbridge"))
        self.twin.connect()
        self.descriptions = {r: self.twin.request("describe", robot=r) for r in config.robots}
        self.bridge = config.twin.rosbridge
        self.clients: set[Client] = set()
        self.goals: dict[tuple[int, str], Goal] = {}  # (client, goal id) -> goal: ids of two clients never collide
        self.topics = {"/clock": N.CLOCK, "/rosout": N.LOG}  # every ROS 2 graph has /rosout
        self.relayed: set[str] = set()  # topics clients advertised: relayed to subscribers as a ROS graph would
        self.actions: dict[str, tuple[str, str]] = {}  # action name -> (robot, type)
        self.io_setters: dict[str, tuple[str, str]] = {}  # topic -> (robot, io name)
        self.stop_services = {N.stop_service(r): r for r in config.robots}
        self.set_io_services: dict[str, str] = {}  # ur_msgs/srv/SetIO service -> robot
        for robot, desc in self.descriptions.items():
            self.topics[N.joint_states(robot)] = N.JOINT_STATE
            self.topics[N.part_present(robot)] = N.BOOL
            for io in desc["io_names"]:
                self.topics[N.io_state(robot, io)] = N.BOOL
                self.io_setters[N.io_set(robot, io)] = (robot, io)
            if desc["io_names"]:  # the same IO as UR's driver offers it: pins in the names' sorted order
                self.topics[N.io_states(robot)] = N.UR_IO_STATES
                self.set_io_services[N.set_io(robot)] = robot
            self.actions[N.trajectory_action(robot)] = (robot, N.FOLLOW_JOINT_TRAJECTORY)
            self.actions[N.gripper_action(robot)] = (robot, N.GRIPPER_COMMAND)
        # the stations' sensors, simulated from the twin's world as a light barrier and a reader would see it
        self.sensors = {name: station_sensor(name, station) for name, station in config.stations.items()}
        for sensor in self.sensors.values():
            self.topics[sensor.presence] = N.BOOL
            if sensor.part_id:
                self.topics[sensor.part_id] = N.STRING
        self._sensor_tick = 0
        self._ids = itertools.count(1)
        self._setup = random.Random(SETUP_SEED)
        self._tasks: set[asyncio.Task] = set()  # goals being set up beside the client's later messages

    # -- connections ---------------------------------------------------------------------------
    async def handle(self, ws) -> None:
        client = Client(ws)
        self.clients.add(client)
        try:
            async for text in ws:
                if self.bridge.goals_in_new_thread and _is_goal(text):
                    # rosbridge handles each goal in a thread of its own: later messages overtake it
                    task = asyncio.create_task(self.dispatch(client, text))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                    continue
                await self.dispatch(client, text)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.clients.discard(client)
            self._drop_goals_of(client)

    def _drop_goals_of(self, client: Client) -> None:
        """A client went away. rosbridge does not cancel its goals: the arm finishes a trajectory
        nobody follows (``cancel_on_disconnect: false``, the default); with true, they are cancelled."""
        for key, goal in [(k, g) for k, g in self.goals.items() if g.client is client]:
            del self.goals[key]
            goal.ended.set()
            if goal.kind == "trajectory" and self.bridge.cancel_on_disconnect:
                try:
                    self.twin.request("cancel", motion=goal.motion)
                except DriverError as exc:
                    print(f"rosbridge: could not cancel goal {goal.goal_id}: {exc}", file=sys.stderr, flush=True)

    async def status(self, client: Client, level: str, text: str, msg_id: object = None) -> None:
        if client.level is not None and LEVELS.index(level) <= LEVELS.index(client.level):
            await client.send({"op": "status", "level": level, "msg": text, "id": msg_id})

    async def dispatch(self, client: Client, text: str | bytes) -> None:
        try:
            msg = json.loads(text)
            if not isinstance(msg, dict) or not isinstance(msg.get("op"), str):
                raise BadRequest("a rosbridge message is a JSON object with an 'op'")
        except (ValueError, BadRequest) as exc:
            await self.status(client, "error", f"malformed message: {exc}")
            return
        handler = getattr(self, "op_" + msg["op"], None)
        if handler is None:
            await self.status(client, "error", f"unknown op {msg['op'][:MAX_NAME]!r}", _echo(msg.get("id")))
            return
        try:
            await handler(client, msg)
        except websockets.ConnectionClosed:
            raise
        except Exception as exc:  # noqa: BLE001 - any bad input is the client's error, never a dropped link
            reason = f"{msg['op'][:MAX_NAME]}: {type(exc).__name__}: {str(exc)[:MAX_REASON]}"
            msg_id = _echo(msg.get("id"))
            await self.status(client, "error", reason, msg_id)
            if msg["op"] == "call_service":
                await client.send({"op": "service_response", "service": _echo(msg.get("service")), "id": msg_id,
                                   "values": {"error": reason}, "result": False})
            elif msg["op"] == "send_action_goal":
                await self._reject(client, msg, reason, silent=isinstance(exc, Rejected))

    async def _reject(self, client: Client, msg: dict, reason: str, silent: bool) -> None:
        """A goal that does not run. A malformed one is answered with ``result: false`` (bad input
        gets an error). One the action server rejects (or to an action nobody serves): ROS 2 gives
        it no status and no result; rosbridge 2.0–2.1 sends the client nothing at all and — without
        ``send_action_goals_in_new_thread`` — handles none of its later messages either (its handler
        waits for a result that never comes): ``goal_rejections: silent`` plays that. Fixed upstream
        (``answered``, the default): a result with ``result: false`` and the reason."""
        if not silent or self.bridge.goal_rejections == "answered":
            await client.send({"op": "action_result", "action": _echo(msg.get("action")), "id": _echo(msg.get("id")),
                               "values": {"error_string": reason}, "result": False})
            return
        print(f"rosbridge: goal {_echo(msg.get('id'))} rejected, not answered (as rosbridge 2.1): {reason}",
              file=sys.stderr, flush=True)
        if not self.bridge.goals_in_new_thread:
            await _closed(client)  # this client's messages are not handled any more

    # -- ops -------------------------------------------------------------------------------------
    async def op_set_level(self, client: Client, msg: dict) -> None:
        level = msg.get("level")
        client.level = level if level in LEVELS else None

    async def op_auth(self, client: Client, msg: dict) -> None:
        """Loopback only: nothing to authenticate."""

    async def op_subscribe(self, client: Client, msg: dict) -> None:
        """As rosbridge: a topic nobody publishes yet may be subscribed with its type (a client may
        advertise it later); ``throttle_rate`` (ms) spaces the messages to this subscription;
        ``queue_length`` is accepted (only the latest message is ever pending here)."""
        topic, kind = msg["topic"], msg.get("type")
        if not isinstance(topic, str) or not topic.startswith("/") or len(topic) > MAX_NAME:
            raise BadRequest(f"a topic is a string of 2 to {MAX_NAME} characters starting with /")
        known = self.topics.get(topic)
        if known is None and not kind:
            raise BadRequest(f"cannot infer the type of topic {topic}: it is not advertised; give a type "
                             f"(topics: {sorted(self.topics)})")
        if known is not None and kind and not N.same_type(kind, known):
            raise BadRequest(f"topic {topic} has type {known}, not {kind}")
        if known is None:
            self.topics[topic] = str(kind)
            self.relayed.add(topic)
        throttle = msg.get("throttle_rate", 0)
        if not isinstance(throttle, (int, float)) or isinstance(throttle, bool) or not 0 <= throttle <= 3_600_000:
            raise BadRequest("throttle_rate: milliseconds between messages, 0 to 3600000")
        sub_id = str(_echo(msg.get("id", "")) or "")
        client.subscriptions.setdefault(topic, {})[sub_id] = Subscription(throttle / 1000.0)

    async def op_unsubscribe(self, client: Client, msg: dict) -> None:
        """Ends the subscription with that id (without an id: all of this client's on the topic);
        the client's other subscriptions to the topic stay, as rosbridge's per-id bookkeeping does."""
        subs = client.subscriptions.get(msg["topic"], {})
        if "id" in msg and msg["id"] is not None:
            subs.pop(str(_echo(msg["id"]) or ""), None)
        else:
            subs.clear()
        if not subs:
            client.subscriptions.pop(msg["topic"], None)

    async def op_advertise(self, client: Client, msg: dict) -> None:
        """A client publishes a topic: an IO's set topic (the twin's IO) or any other, relayed to
        its subscribers. A topic the twin publishes itself cannot be advertised by a client."""
        topic, kind = msg["topic"], msg.get("type")
        if not isinstance(topic, str) or not topic.startswith("/") or len(topic) > MAX_NAME:
            raise BadRequest(f"a topic is a string of 2 to {MAX_NAME} characters starting with /")
        if topic in self.io_setters:
            if not N.same_type(kind, N.BOOL):
                raise BadRequest(f"{topic} takes {N.BOOL}")
            return
        if topic in self.topics and topic not in self.relayed:
            raise BadRequest(f"{topic} is published by the twin ({self.topics[topic]}); a client cannot publish it")
        if not isinstance(kind, str) or not kind:
            raise BadRequest(f"advertising {topic} needs its type")
        if topic in self.topics and not N.same_type(kind, self.topics[topic]):
            raise BadRequest(f"topic {topic} has type {self.topics[topic]}, not {kind}")
        self.topics.setdefault(topic, kind)
        self.relayed.add(topic)

    async def op_unadvertise(self, client: Client, msg: dict) -> None:
        pass

    async def op_publish(self, client: Client, msg: dict) -> None:
        topic = msg["topic"]
        if not isinstance(msg.get("msg"), dict):
            raise BadRequest("publish needs a msg object")
        if topic in self.io_setters:
            robot, name = self.io_setters[topic]
            self.twin.request("write_io", robot=robot, name=name, value=bool(msg["msg"]["data"]))
        elif topic not in self.relayed:
            raise BadRequest(f"nothing publishes {topic} here: advertise it first (settable IO: "
                             f"{sorted(self.io_setters)})")
        await self.publish(topic, msg["msg"])

    async def op_call_service(self, client: Client, msg: dict) -> None:
        service = msg["service"]
        if service == "/rosapi/topics":
            values = {"topics": sorted(self.topics), "types": [self.topics[t] for t in sorted(self.topics)]}
        elif service == "/rosapi/topics_and_raw_types":
            values = {"topics": sorted(self.topics), "types": [self.topics[t] for t in sorted(self.topics)],
                      "typedefs_full_text": ["" for _ in self.topics]}
        elif service == "/rosapi/action_servers":
            values = {"action_servers": sorted(self.actions)}
        elif service == "/rosapi/services":
            values = {"services": sorted([*ROSAPI, *self.stop_services, *self.set_io_services])}
        elif service == "/rosapi/topic_type":
            args = msg.get("args") or {}  # the spec allows a list of positional values or a map
            topic = args[0] if isinstance(args, list) and args else args.get("topic") if isinstance(args, dict) else None
            values = {"type": self.topics.get(topic, "") if isinstance(topic, str) else ""}
        elif service in self.set_io_services:
            values = self._set_io(self.set_io_services[service], msg.get("args") or {})
        elif service in self.stop_services:
            robot = self.stop_services[service]
            for goal in self.goals.values():
                if goal.robot == robot and goal.kind == "trajectory":
                    goal.halted = True
            cancelled = self.twin.request("stop", robot=robot)["cancelled"]
            values = {"success": True, "message": f"{robot} halted" + (f" (motion {cancelled})" if cancelled else "")}
        else:
            known = [*ROSAPI, *sorted(self.stop_services), *sorted(self.set_io_services)]
            raise BadRequest(f"unknown service {service}; services: {', '.join(known)}")
        await client.send({"op": "service_response", "service": service, "id": _echo(msg.get("id")), "values": values,
                           "result": True})

    def _set_io(self, robot: str, args: object) -> dict:
        """ur_msgs/srv/SetIO: ``fun`` 1 (a digital output), ``pin`` (the IO's index in sorted name
        order), ``state``; ``success`` false for anything else, as UR's driver answers."""
        names = sorted(self.descriptions[robot]["io_names"])
        fun, pin, state = (args.get(k) for k in ("fun", "pin", "state")) if isinstance(args, dict) else (None,) * 3
        if fun != N.UR_SET_DIGITAL_OUT or not isinstance(pin, int) or not 0 <= pin < len(names) \
                or not isinstance(state, (int, float)):
            return {"success": False}
        try:
            self.twin.request("write_io", robot=robot, name=names[pin], value=bool(state))
        except DriverError:  # an input wired to a station's sensor
            return {"success": False}
        return {"success": True}

    async def op_send_action_goal(self, client: Client, msg: dict) -> None:
        action, goal_id, args = msg["action"], msg["id"], msg.get("args") or {}
        if not isinstance(goal_id, str) or not goal_id or len(goal_id) > MAX_NAME:
            raise BadRequest(f"a goal needs an id: a string of 1 to {MAX_NAME} characters")
        if action not in self.actions:
            raise Rejected(f"unknown action {action}; actions: {sorted(self.actions)}")
        robot, action_type = self.actions[action]
        if not N.same_type(msg.get("action_type"), action_type):
            raise BadRequest(f"action {action} has type {action_type}, not {msg['action_type']}")
        low, high = self.bridge.goal_setup
        if high > 0:  # rosbridge creates an action client for this goal and waits for the server
            await asyncio.sleep(self._setup.uniform(low, high))
        if action_type == N.GRIPPER_COMMAND:
            position = float(args["command"]["position"])
            command = "close" if position < N.GRIPPER_CLOSED_BELOW else "open"
            motion = self.twin.request("gripper", robot=robot, command=command)["motion"]
            goal = Goal(client, goal_id, action, robot, "gripper", motion, position)
        else:
            trajectory = self._trajectory(robot, args["trajectory"])
            await self._preempt(robot)
            try:
                motion = self.twin.request("execute", robot=robot, trajectory=trajectory)["motion"]
            except DriverError as exc:  # refused by the twin's limits: the controller aborts it
                await client.send({"op": "action_result", "action": action, "id": goal_id, "status": ABORTED,
                                   "values": {"error_code": INVALID_JOINTS if "joint names" in str(exc) else INVALID_GOAL,
                                              "error_string": str(exc)}, "result": True})
                return
            goal = Goal(client, goal_id, action, robot, "trajectory", motion, started=self.twin.request("time")["time"],
                        trajectory=trajectory)
        goal.feedback = msg.get("feedback") is True
        self.goals[(id(client), goal_id)] = goal
        if goal.kind == "trajectory":
            await self._feedback(goal)  # the first feedback at once: the goal is accepted and moving
        if not self.bridge.goals_in_new_thread:
            # rosbridge's default: the client's handler waits for this goal's result before it
            # reads the client's next message (a cancel among them: rosbridge_suite #909)
            await _first(goal.ended.wait(), _closed(client))

    async def _preempt(self, robot: str) -> None:
        """A goal to a trajectory controller that runs one: ros2_controllers' JTC ends the running
        goal (``preemption``: jazzy ABORTED, humble CANCELED, error_code -1 with its text) and takes the
        new one; ``refuse`` rejects the new one instead."""
        running = [(k, g) for k, g in self.goals.items() if g.robot == robot and g.kind == "trajectory"]
        if not running:
            return
        if self.bridge.preemption == "refuse":
            raise Rejected(f"robot {robot} runs goal {running[0][1].goal_id}; this controller refuses another")
        for key, goal in running:
            self.twin.request("cancel", motion=goal.motion)
            del self.goals[key]
            status = ABORTED if self.bridge.preemption == "jazzy" else CANCELED
            await goal.client.send({"op": "action_result", "action": goal.action, "id": goal.goal_id, "status": status,
                                    "values": {"error_code": INVALID_GOAL, "error_string": PREEMPTED}, "result": True})
            goal.ended.set()

    def _trajectory(self, robot: str, traj: dict) -> dict:
        """FollowJointTrajectory's points, reordered to the robot's joints, starting from where the
        robot is (a controller interpolates from its current state to the first point)."""
        names = self.descriptions[robot]["joint_names"]
        given = list(traj["joint_names"])
        if sorted(given) != sorted(names):
            raise Rejected(f"joint names {given} do not match the robot's {names}")
        order = [given.index(n) for n in names]
        points = traj["points"]
        if not points:
            raise BadRequest("a trajectory needs at least one point")
        times = [N.seconds(p["time_from_start"]) for p in points]
        positions = [[p["positions"][i] for i in order] for p in points]
        velocities = [[p["velocities"][i] for i in order] if p.get("velocities") else None for p in points]
        if times[0] > 0:
            current = self.twin.request("joint_state", robot=robot)["positions"]
            times, positions = [0.0, *times], [current, *positions]
            velocities = [[0.0] * len(names), *velocities]
        out = {"joint_names": names, "times": times, "positions": positions}
        if all(v is not None for v in velocities):
            out["velocities"] = velocities
        return out

    async def op_cancel_action_goal(self, client: Client, msg: dict) -> None:
        """Cancel by goal id: the client's own goal, else any client's with that id — rosbridge keeps
        its goal handlers in one dict for all clients, so a second connection can cancel a goal."""
        goal_id = _echo(msg["id"])
        goal = self.goals.get((id(client), goal_id)) or next(
            (g for g in self.goals.values() if g.goal_id == goal_id), None)
        if goal is None:
            await self.status(client, "warning", f"no running goal {goal_id} to cancel (finished already?)", goal_id)
            return
        goal.cancelled = True
        if goal.kind == "trajectory":
            self.twin.request("cancel", motion=goal.motion)

    # -- streams ---------------------------------------------------------------------------------
    async def publish(self, topic: str, message: dict) -> None:
        """To every subscription of the topic once its throttle allows (one message per client even
        with several subscriptions, as rosbridge sends one publish per client)."""
        now = time.monotonic()
        for client in list(self.clients):
            due = [s for s in client.subscriptions.get(topic, {}).values() if now - s.last_sent >= s.throttle_s]
            if due:
                for sub in due:
                    sub.last_sent = now
                await client.send({"op": "publish", "topic": topic, "msg": message})

    def _wanted(self, topic: str) -> bool:
        return any(topic in c.subscriptions for c in self.clients)

    async def publisher(self) -> None:
        tick = 0
        while True:
            await asyncio.sleep(1.0 / PUBLISH_HZ)
            tick += 1
            try:
                await self._publish_state()
                if tick % (PUBLISH_HZ // FEEDBACK_HZ) == 0:
                    await self._update_goals()
            except DriverError as exc:  # the twin is gone or slow: say so, keep trying
                print(f"rosbridge: twin request failed: {exc}", file=sys.stderr, flush=True)
                await asyncio.sleep(0.5)

    async def _publish_state(self) -> None:
        now = self.twin.request("time")["time"]
        if self._wanted("/clock"):
            await self.publish("/clock", {"clock": N.stamp(now)})
        for robot in self.descriptions:
            if self._wanted(N.joint_states(robot)):
                js = self.twin.request("joint_state", robot=robot)
                await self.publish(N.joint_states(robot), {
                    "header": {"stamp": N.stamp(js["stamp"]), "frame_id": ""}, "name": js["names"],
                    "position": js["positions"], "velocity": js["velocities"], "effort": []})
            if self._wanted(N.part_present(robot)):
                state = self.twin.request("gripper_state", robot=robot)
                await self.publish(N.part_present(robot), {"data": state["part_present"]})
            names = self.descriptions[robot]["io_names"]
            values = {io: self.twin.request("read_io", robot=robot, name=io) for io in names
                      if self._wanted(N.io_state(robot, io)) or self._wanted(N.io_states(robot))}
            for io, value in values.items():
                if self._wanted(N.io_state(robot, io)):
                    await self.publish(N.io_state(robot, io), {"data": value})
            if self._wanted(N.io_states(robot)):
                pins = [{"pin": i, "state": values[io]} for i, io in enumerate(sorted(names))]
                await self.publish(N.io_states(robot), {"digital_in_states": pins, "digital_out_states": pins,
                                                        "flag_states": [], "analog_in_states": [],
                                                        "analog_out_states": []})
        self._sensor_tick += 1
        if self._sensor_tick % (PUBLISH_HZ // SENSOR_HZ) == 0:
            await self._publish_sensors()

    async def _publish_sensors(self) -> None:
        """Each station's presence (Bool) and part id (String, "" when empty): a part rests on a
        station by the twin's occupancy rule and is not held by a gripper."""
        if not any(self._wanted(t) for s in self.sensors.values() for t in (s.presence, s.part_id) if t):
            return
        parts = [p for p in self.twin.request("list_parts") if p["held_by"] is None]
        for name, sensor in self.sensors.items():
            station = self.config.stations[name]
            occupant = next((p["id"] for p in parts if station.holds(p["bottom"])), None)
            if self._wanted(sensor.presence):
                await self.publish(sensor.presence, {"data": occupant is not None})
            if sensor.part_id and self._wanted(sensor.part_id):
                await self.publish(sensor.part_id, {"data": occupant or ""})

    async def _update_goals(self) -> None:
        for goal in list(self.goals.values()):
            info = self.twin.request("motion_status", motion=goal.motion)
            if info["status"] == "running":
                if goal.kind == "trajectory":
                    await self._feedback(goal)
                continue
            self.goals = {k: g for k, g in self.goals.items() if g is not goal}
            await goal.client.send(self._result(goal, info))
            goal.ended.set()

    async def _feedback(self, goal: Goal) -> None:
        """FollowJointTrajectory feedback as ros2_controllers' JTC sends it, to a client that asked
        for it: ``actual`` the joint state, ``desired`` the trajectory sampled now, ``error`` their
        difference (desired minus actual, the shortest way round for positions)."""
        if not goal.feedback:
            return
        js = self.twin.request("joint_state", robot=goal.robot)
        desired = _sample(goal.trajectory, js["stamp"] - goal.started) if goal.trajectory else None
        desired = desired or {"positions": js["positions"], "velocities": js["velocities"]}
        error = {"positions": [math.remainder(d - a, math.tau) for d, a in zip(desired["positions"], js["positions"])],
                 "velocities": [d - a for d, a in zip(desired["velocities"], js["velocities"])]}
        stamp = N.stamp(max(0.0, js["stamp"] - goal.started))
        await goal.client.send({"op": "action_feedback", "action": goal.action, "id": goal.goal_id, "values": {
            "header": {"stamp": N.stamp(js["stamp"]), "frame_id": ""}, "joint_names": js["names"],
            "actual": {"positions": js["positions"], "velocities": js["velocities"], "time_from_start": stamp},
            "desired": {**desired, "time_from_start": stamp}, "error": {**error, "time_from_start": stamp}}})

    def _result(self, goal: Goal, info: dict) -> dict:
        status = {"succeeded": SUCCEEDED, "cancelled": CANCELED}.get(info["status"], ABORTED)
        if goal.kind == "gripper":
            # GripperActionController: a close that stops on a part has stalled; without
            # allow_stalling the goal is then aborted (the part is held all the same)
            stalled = goal.command < N.GRIPPER_CLOSED_BELOW and self.twin.request(
                "gripper_state", robot=goal.robot)["part_present"]
            if stalled and status == SUCCEEDED and not self.bridge.gripper_allow_stalling:
                status = ABORTED
            values = {"position": goal.command, "effort": 0.0, "stalled": stalled,
                      "reached_goal": status == SUCCEEDED}
        elif goal.halted:  # the arm was halted under it (the twin's stop service): the goal did not end its way
            status, values = ABORTED, {"error_code": INVALID_GOAL, "error_string": HALTED}
        elif status == CANCELED:  # JTC's cancel_callback: setCanceled with a default result (SUCCESSFUL, no text)
            values = {"error_code": 0, "error_string": ""}
        else:  # JTC: SUCCESSFUL 0; an aborted one GOAL_TOLERANCE_VIOLATED -5
            values = {"error_code": -5 if status == ABORTED else 0, "error_string": info["reason"] or ""}
        # rosbridge: ``result`` is true for every goal that ran, whatever its end (status 6 too)
        return {"op": "action_result", "action": goal.action, "id": goal.goal_id, "values": values,
                "status": status, "result": True}


def _is_goal(text: str | bytes) -> bool:
    try:
        msg = json.loads(text)
    except ValueError:
        return False
    return isinstance(msg, dict) and msg.get("op") == "send_action_goal"


def _sample(trajectory: dict, t: float) -> dict | None:
    """Positions and velocities of a trajectory at ``t`` s from its start (linear between points,
    held at the last): what the JTC calls ``desired``."""
    times, positions = trajectory["times"], trajectory["positions"]
    velocities = trajectory.get("velocities") or [[0.0] * len(positions[0])] * len(times)
    if t <= times[0]:
        return {"positions": list(positions[0]), "velocities": list(velocities[0])}
    for i in range(1, len(times)):
        if t <= times[i]:
            f = (t - times[i - 1]) / max(times[i] - times[i - 1], 1e-9)
            mix = lambda a, b: [x + f * (y - x) for x, y in zip(a, b)]  # noqa: E731
            return {"positions": mix(positions[i - 1], positions[i]), "velocities": mix(velocities[i - 1], velocities[i])}
    return {"positions": list(positions[-1]), "velocities": [0.0] * len(positions[-1])}


async def _closed(client: Client) -> None:
    await client.ws.wait_closed()


async def _first(*aws: Awaitable) -> None:
    """Wait until the first of these is done; the others are cancelled."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def _echo(value: object) -> str | int | None:
    """A client's id or name as it may be echoed back: a short string or an integer, else None."""
    if isinstance(value, str) and len(value) <= MAX_NAME or isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


async def serve(config: SceneConfig, twin_endpoint: str, host: str, port: int) -> None:
    endpoint = Endpoint(config, twin_endpoint)
    async with websockets.serve(endpoint.handle, host, port, max_size=MAX_MESSAGE_BYTES) as server:
        bound = server.sockets[0].getsockname()[1]
        print(P.ROSBRIDGE_READY + json.dumps({"url": f"ws://{host}:{bound}"}), flush=True)
        await endpoint.publisher()
