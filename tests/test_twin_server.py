"""Bad input gets an error reply with a code, and the server keeps serving everyone else."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap

import pytest

from drivers.twin import TwinDriver
from tests.conftest import recv
from drivers import twin_wire as P


def _ask(sock, op, args=None, req_id=1):
    sock.send(P.pack({"id": req_id, "op": op, "args": args or {}}))
    return recv(sock)


def _error(reply):
    assert reply["ok"] is False, reply
    return reply["error"]["code"], reply["error"]["message"]


@pytest.mark.parametrize("frame,code", [
    (b"\xc1\xff not msgpack", P.BAD_FRAME),
    (P.pack([1, 2, 3]), P.BAD_FRAME),
    (P.pack({"op": "hello"}), P.BAD_FRAME),
    (P.pack({"id": 7, "op": "fly", "args": {}}), P.UNKNOWN_OP),
    (P.pack({"id": 7, "op": "joint_state", "args": {"robot": 3}}), P.BAD_ARGS),
    (P.pack({"id": 7, "op": "joint_state", "args": {"robot": "press", "extra": 1}}), P.BAD_ARGS),
    (P.pack({"id": 7, "op": "move_joints", "args": {"robot": "press", "waypoints": "up"}}), P.BAD_ARGS),
    (P.pack({"id": 7, "op": "joint_state", "args": {"robot": "ghost"}}), P.UNKNOWN_ROBOT),
    (P.pack({"id": 7, "op": "remove_part", "args": {"id": "ghost"}}), P.UNKNOWN_PART),
    (P.pack({"id": 7, "op": "motion_status", "args": {"motion": 999}}), P.UNKNOWN_MOTION),
    (P.pack({"id": 7, "op": "spawn_part", "args": {"id": "x", "station": "nowhere"}}), P.UNKNOWN_STATION),
    (P.pack({"id": 7, "op": "spawn_part", "args": {"id": "part-1", "station": "infeed"}}), P.CONFLICT),
    (P.pack({"id": 7, "op": "read_io", "args": {"robot": "press", "name": "nope"}}), P.UNSUPPORTED),
    (P.pack({"id": 7, "op": "hello", "args": {"version": 99}}), P.VERSION_MISMATCH),
])
def test_bad_requests_get_error_codes(raw_client, frame, code):
    raw_client.send(frame)
    got, message = _error(recv(raw_client))
    assert got == code, message
    assert _ask(raw_client, "time")["ok"]  # and the server still serves


def test_out_of_limit_requests_are_refused(raw_client):
    q = [0.0, 0.5, 0.0, -1.2, 0.0, 1.4, 0.0]
    code, message = _error(_ask(raw_client, "move_joints", {"robot": "press", "waypoints": [[3.5, *q[1:]]]}))
    assert code == P.LIMIT_VIOLATION and "lbr_iiwa_joint_1 above its upper limit" in message
    jump = {"joint_names": [f"lbr_iiwa_joint_{i}" for i in range(1, 8)], "times": [0.0, 0.01],
            "positions": [q, [1.0, *q[1:]]]}
    code, message = _error(_ask(raw_client, "execute", {"robot": "press", "trajectory": jump}))
    assert code == P.LIMIT_VIOLATION and "faster than its velocity limit" in message
    far = {**jump, "times": [0.0, 10.0], "positions": [[1.0, *q[1:]], [1.0, *q[1:]]]}
    code, message = _error(_ask(raw_client, "execute", {"robot": "press", "trajectory": far}))
    assert code == P.LIMIT_VIOLATION and "trajectory starts 1.000 rad from the robot's position" in message
    code, message = _error(_ask(raw_client, "move_pose", {"robot": "press", "poses": [{"position": [2, 0, 0.3]}]}))
    assert code == P.UNREACHABLE


def test_server_survives_random_frames(kuka_twin, raw_client):
    rng = random.Random(1234)
    ops = [op for op in P.OPS if op not in ("shutdown", "reset")]  # legitimate, but would end the test
    for i in range(300):
        kind = rng.randrange(3)
        if kind == 0:
            frame = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
        elif kind == 1:
            frame = P.pack({"id": i, "op": rng.choice(ops), "args": {"robot": rng.choice(["press", 5, None])}})
        else:
            frame = P.pack({"id": i, "op": rng.choice(ops), "args": rng.choice([None, [], "x", {"z": 1}])})
        raw_client.send(frame)
        reply = recv(raw_client)
        assert isinstance(reply, dict) and "ok" in reply
    with TwinDriver(kuka_twin.endpoint, "press") as driver:  # another client is served as before
        assert driver.joint_state().names[0] == "lbr_iiwa_joint_1"


def test_client_killed_mid_request_does_not_disturb_the_server(kuka_twin):
    script = textwrap.dedent(f"""
        import os, signal, zmq
        from drivers import twin_wire as P
        s = zmq.Context().socket(zmq.DEALER)
        s.connect({kuka_twin.endpoint!r})
        q = [0.0, 0.5, 0.0, -1.2, 0.0, 1.4, 0.0]
        s.send(P.pack({{"id": 1, "op": "move_joints", "args": {{"robot": "press", "waypoints": [[0.3, *q[1:]]]}}}}))
        s.send(P.pack({{"id": 2, "op": "list_parts", "args": {{}}}}))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = subprocess.run([sys.executable, "-c", script], timeout=30)
    assert result.returncode == -9
    with TwinDriver(kuka_twin.endpoint, "press") as driver:
        assert [p["id"] for p in driver.request("list_parts")] == ["part-1"]
        assert driver.request("time")["time"] > 0
