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
import sys
from dataclasses import dataclass, field

import websockets

from drivers.errors import DriverError
from drivers.twin_client import TwinClient
from drivers import twin_wire as P
from drivers import ros_names as N
from twin.config import SceneConfig

PUBLISH_HZ = 50
MAX_MESSAGE_BYTES = 4 << 20  # a bigger websocket message closes that connection (websockets' max_size)
MAX_NAME = 128  # characters of a client's op, topic or id echoed back in an error
MAX_REASON = 1024
FEEDBACK_HZ = 20
LEVELS = ("error", "warning", "info")
# GoalStatus (action_msgs/msg/GoalStatus) and control_msgs error codes
SUCCEEDED, CANCELED, ABORTED = 4, 5, 6
INVALID_GOAL, INVALID_JOINTS = -1, -2


class BadRequest(Exception):
    pass


@dataclass(eq=False)
class Client:
    ws: object
    level: str | None = None  # status messages only after set_level
    subscriptions: dict[str, str] = field(default_factory=dict)  # topic -> subscription id

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


class Endpoint:
    def __init__(self, config: SceneConfig, twin_endpoint: str) -> None:
        self.config = config
        self.twin = TwinClient(twin_endpoint, client="rosbridge")
        self.twin.connect()
        self.descriptions = {r: self.twin.request("describe", robot=r) for r in config.robots}
        self.clients: set[Client] = set()
        self.goals: dict[str, Goal] = {}
        self.topics = {"/clock": N.CLOCK}
        self.actions: dict[str, tuple[str, str]] = {}  # action name -> (robot, type)
        self.io_setters: dict[str, tuple[str, str]] = {}  # topic -> (robot, io name)
        self.stop_services = {N.stop_service(r): r for r in config.robots}
        for robot, desc in self.descriptions.items():
            self.topics[N.joint_states(robot)] = N.JOINT_STATE
            self.topics[N.part_present(robot)] = N.BOOL
            for io in desc["io_names"]:
                self.topics[N.io_state(robot, io)] = N.BOOL
                self.io_setters[N.io_set(robot, io)] = (robot, io)
            self.actions[N.trajectory_action(robot)] = (robot, N.FOLLOW_JOINT_TRAJECTORY)
            self.actions[N.gripper_action(robot)] = (robot, N.GRIPPER_COMMAND)
        self._ids = itertools.count(1)

    # -- connections ---------------------------------------------------------------------------
    async def handle(self, ws) -> None:
        client = Client(ws)
        self.clients.add(client)
        try:
            async for text in ws:
                await self.dispatch(client, text)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.clients.discard(client)
            self._cancel_goals_of(client)

    def _cancel_goals_of(self, client: Client) -> None:
        """A client that went away cannot follow its goals any more: stop its robots' motions, as
        rosbridge cancels a disconnected client's action goals."""
        for goal in [g for g in self.goals.values() if g.client is client]:
            del self.goals[goal.goal_id]
            if goal.kind == "trajectory":
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
                code = INVALID_JOINTS if "joint names" in reason else INVALID_GOAL
                await client.send({"op": "action_result", "action": _echo(msg.get("action")), "id": msg_id,
                                   "values": {"error_code": code, "error_string": reason},
                                   "status": ABORTED, "result": False})

    # -- ops -------------------------------------------------------------------------------------
    async def op_set_level(self, client: Client, msg: dict) -> None:
        level = msg.get("level")
        client.level = level if level in LEVELS else None

    async def op_auth(self, client: Client, msg: dict) -> None:
        """Loopback only: nothing to authenticate."""

    async def op_subscribe(self, client: Client, msg: dict) -> None:
        topic = msg["topic"]
        if topic not in self.topics:
            raise BadRequest(f"unknown topic {topic}; topics: {sorted(self.topics)}")
        if not N.same_type(msg.get("type"), self.topics[topic]):
            raise BadRequest(f"topic {topic} has type {self.topics[topic]}, not {msg['type']}")
        client.subscriptions[topic] = _echo(msg.get("id", "")) or ""

    async def op_unsubscribe(self, client: Client, msg: dict) -> None:
        client.subscriptions.pop(msg["topic"], None)

    async def op_advertise(self, client: Client, msg: dict) -> None:
        if msg["topic"] not in self.io_setters:
            raise BadRequest(f"nothing here subscribes to {msg['topic']}; settable: {sorted(self.io_setters)}")
        if not N.same_type(msg.get("type"), N.BOOL):
            raise BadRequest(f"{msg['topic']} takes {N.BOOL}")

    async def op_unadvertise(self, client: Client, msg: dict) -> None:
        pass

    async def op_publish(self, client: Client, msg: dict) -> None:
        topic = msg["topic"]
        if topic not in self.io_setters:
            raise BadRequest(f"nothing here subscribes to {topic}; settable: {sorted(self.io_setters)}")
        robot, name = self.io_setters[topic]
        self.twin.request("write_io", robot=robot, name=name, value=bool(msg["msg"]["data"]))

    async def op_call_service(self, client: Client, msg: dict) -> None:
        service = msg["service"]
        if service == "/rosapi/topics":
            values = {"topics": sorted(self.topics), "types": [self.topics[t] for t in sorted(self.topics)]}
        elif service == "/rosapi/topics_and_raw_types":
            values = {"topics": sorted(self.topics), "types": [self.topics[t] for t in sorted(self.topics)],
                      "typedefs_full_text": ["" for _ in self.topics]}
        elif service == "/rosapi/action_servers":
            values = {"action_servers": sorted(self.actions)}
        elif service == "/rosapi/topic_type":
            args = msg.get("args") or {}  # the spec allows a list of positional values or a map
            topic = args[0] if isinstance(args, list) and args else args.get("topic") if isinstance(args, dict) else None
            values = {"type": self.topics.get(topic, "") if isinstance(topic, str) else ""}
        elif service in self.stop_services:
            robot = self.stop_services[service]
            cancelled = self.twin.request("stop", robot=robot)["cancelled"]
            values = {"success": True, "message": f"{robot} halted" + (f" (motion {cancelled})" if cancelled else "")}
        else:
            raise BadRequest(f"unknown service {service}; services: /rosapi/topics, /rosapi/topics_and_raw_types, "
                             f"/rosapi/action_servers, /rosapi/topic_type, {', '.join(sorted(self.stop_services))}")
        await client.send({"op": "service_response", "service": service, "id": _echo(msg.get("id")), "values": values,
                           "result": True})

    async def op_send_action_goal(self, client: Client, msg: dict) -> None:
        action, goal_id, args = msg["action"], msg["id"], msg.get("args") or {}
        if not isinstance(goal_id, str) or not goal_id or len(goal_id) > MAX_NAME:
            raise BadRequest(f"a goal needs an id: a string of 1 to {MAX_NAME} characters")
        if action not in self.actions:
            raise BadRequest(f"unknown action {action}; actions: {sorted(self.actions)}")
        robot, action_type = self.actions[action]
        if not N.same_type(msg.get("action_type"), action_type):
            raise BadRequest(f"action {action} has type {action_type}, not {msg['action_type']}")
        if action_type == N.GRIPPER_COMMAND:
            position = float(args["command"]["position"])
            command = "close" if position < N.GRIPPER_CLOSED_BELOW else "open"
            motion = self.twin.request("gripper", robot=robot, command=command)["motion"]
            self.goals[goal_id] = Goal(client, goal_id, action, robot, "gripper", motion, position)
            return
        trajectory = self._trajectory(robot, args["trajectory"])
        try:
            motion = self.twin.request("execute", robot=robot, trajectory=trajectory)["motion"]
        except DriverError as exc:
            code = INVALID_JOINTS if "joint names" in str(exc) else INVALID_GOAL
            await client.send({"op": "action_result", "action": action, "id": goal_id, "status": ABORTED,
                               "values": {"error_code": code, "error_string": str(exc)}, "result": False})
            return
        self.goals[goal_id] = Goal(client, goal_id, action, robot, "trajectory", motion)
        await self._feedback(self.goals[goal_id])  # the first feedback at once: the goal is accepted and moving

    def _trajectory(self, robot: str, traj: dict) -> dict:
        """FollowJointTrajectory's points, reordered to the robot's joints, starting from where the
        robot is (a controller interpolates from its current state to the first point)."""
        names = self.descriptions[robot]["joint_names"]
        given = list(traj["joint_names"])
        if sorted(given) != sorted(names):
            raise BadRequest(f"joint names {given} do not match the robot's {names}")
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
        goal_id = _echo(msg["id"])
        goal = self.goals.get(goal_id)
        if goal is None:
            await self.status(client, "warning", f"no running goal {goal_id} to cancel (finished already?)", goal_id)
            return
        goal.cancelled = True
        if goal.kind == "trajectory":
            self.twin.request("cancel", motion=goal.motion)

    # -- streams ---------------------------------------------------------------------------------
    async def publish(self, topic: str, message: dict) -> None:
        for client in list(self.clients):
            if topic in client.subscriptions:
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
            for io in self.descriptions[robot]["io_names"]:
                if self._wanted(N.io_state(robot, io)):
                    value = self.twin.request("read_io", robot=robot, name=io)
                    await self.publish(N.io_state(robot, io), {"data": value})

    async def _update_goals(self) -> None:
        for goal in list(self.goals.values()):
            info = self.twin.request("motion_status", motion=goal.motion)
            if info["status"] == "running":
                if goal.kind == "trajectory":
                    await self._feedback(goal)
                continue
            del self.goals[goal.goal_id]
            await goal.client.send(self._result(goal, info))

    async def _feedback(self, goal: Goal) -> None:
        js = self.twin.request("joint_state", robot=goal.robot)
        actual = {"positions": js["positions"], "velocities": js["velocities"], "time_from_start": N.stamp(0)}
        await goal.client.send({"op": "action_feedback", "action": goal.action, "id": goal.goal_id, "values": {
            "header": {"stamp": N.stamp(js["stamp"]), "frame_id": ""}, "joint_names": js["names"],
            "actual": actual, "desired": actual, "error": {"positions": [], "velocities": []}}})

    def _result(self, goal: Goal, info: dict) -> dict:
        status = {"succeeded": SUCCEEDED, "cancelled": CANCELED}.get(info["status"], ABORTED)
        if goal.kind == "gripper":
            state = self.twin.request("gripper_state", robot=goal.robot)
            values = {"position": goal.command, "effort": 0.0, "stalled": state["part_present"],
                      "reached_goal": info["status"] == "succeeded"}
        else:
            values = {"error_code": 0 if status == SUCCEEDED else -5, "error_string": info["reason"] or ""}
        return {"op": "action_result", "action": goal.action, "id": goal.goal_id, "values": values,
                "status": status, "result": status != ABORTED}


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
