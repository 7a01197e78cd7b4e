"""Bad input gets an error reply with a code, and the server keeps serving everyone else."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
import time

import pytest

from cellctl.drivers.errors import DriverError
from cellctl.drivers.twin import TwinDriver
from tests.conftest import CONFIGS, recv
from cellctl.drivers import twin_wire as P

pytestmark = pytest.mark.process  # starts twins, cells, launchers or bridges


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
    code, message = _error(_ask(raw_client, "move_pose", {"robot": "press", "poses": [{"position": [1.4, 0, 0.3]}]}))
    assert code == P.UNREACHABLE  # inside the workspace box, out of the arm's reach
    code, message = _error(_ask(raw_client, "move_pose", {"robot": "press", "poses": [{"position": [2, 0, 0.3]}]}))
    assert code == P.LIMIT_VIOLATION and "not within the workspace box" in message  # refused before any IK


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
        from cellctl.drivers import twin_wire as P
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


JOINTS = [f"lbr_iiwa_joint_{i}" for i in range(1, 8)]
HOME = [0.0, 0.5, 0.0, -1.2, 0.0, 1.4, 0.0]
NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("request_,code,text", [
    ({"id": 1, "op": []}, P.BAD_FRAME, "op (str)"),  # once a crash (unhashable op)
    ({"id": 1, "op": {}}, P.BAD_FRAME, "op (str)"),
    ({"id": 77}, P.BAD_FRAME, "keys id"),
    ({"id": 2, "op": "move_pose", "args": {"robot": "press", "poses": [{"position": [1e308, 0, 0.3]}]}},
     P.BAD_ARGS, "less than or equal to 1000"),  # once spun for ever
    ({"id": 3, "op": "execute", "args": {"robot": "press", "trajectory": {
        "joint_names": JOINTS, "times": [0.0, 1.0], "positions": [HOME, HOME], "velocities": [HOME, [NAN] * 7]}}},
     P.BAD_ARGS, "finite number"),  # once turned joint states NaN
    ({"id": 4, "op": "move_joints", "args": {"robot": "press", "waypoints": [[1e5, *HOME[1:]]]}},
     P.BAD_ARGS, "less than or equal to 1000"),  # once 722 MB
    ({"id": 5, "op": "move_joints", "args": {"robot": "press", "waypoints": [[900.0, *HOME[1:]]]}},
     P.LIMIT_VIOLATION, "above its upper limit at via-point 1"),  # refused before planning
    ({"id": 6, "op": "execute", "args": {"robot": "press", "trajectory": {
        "joint_names": JOINTS, "times": [0.0, 1e5], "positions": [HOME, HOME]}}},
     P.BAD_ARGS, "less than or equal to 600"),  # once 4.3 GB
    ({"id": 7, "op": "spawn_part", "args": {"id": "n", "position": [NAN, 0, 0]}}, P.BAD_ARGS, "finite number"),
    ({"id": 8, "op": "spawn_part", "args": {"id": "n", "position": [-INF, 0, 0]}}, P.BAD_ARGS, "finite number"),
    ({"id": 9, "op": "execute", "args": {"robot": "press", "trajectory": {
        "joint_names": JOINTS, "times": [0.0, 1.0], "positions": [HOME, HOME], "velocities": [HOME, [1e308] * 7]}}},
     P.BAD_ARGS, "less than or equal to 1000"),
    ({"id": 10, "op": "execute", "args": {"robot": "press", "trajectory": {
        "joint_names": JOINTS, "times": [0.0, 1.0], "positions": [HOME, HOME], "velocities": [HOME, [3.0] * 7]}}},
     P.LIMIT_VIOLATION, "given a velocity beyond its limit"),
    ({"id": 11, "op": "execute", "args": {"robot": "press", "trajectory": {
        "joint_names": JOINTS, "times": [0.0, 1.0], "positions": [HOME, HOME[:5]]}}}, P.BAD_ARGS, "every row needs 7"),
    ({"id": 12, "op": "motion_status", "args": {"motion": 2**64 - 1}}, P.UNKNOWN_MOTION, "unknown motion"),
    ({"id": "x" * 129, "op": "time"}, P.BAD_FRAME, "id (int, or str"),
    ({"id": 13, "op": "joint_state", "args": {"robot": "r" * 2_000_000}}, P.BAD_FRAME, "at most 1048576"),
])
def test_hostile_requests_get_a_clear_error(raw_client, request_, code, text):
    started = time.monotonic()
    raw_client.send(P.pack(request_))
    reply = recv(raw_client)
    got, message = _error(reply)
    assert got == code and text in message, message
    readable = isinstance(request_["id"], int) and len(P.pack(request_)) <= P.MAX_FRAME_BYTES
    assert reply["id"] == (request_["id"] if readable else None)
    assert time.monotonic() - started < 2.0  # refused at the edge, not after work
    assert _ask(raw_client, "time")["ok"]


def test_spawning_into_another_part_is_refused(raw_client):
    assert _ask(raw_client, "spawn_part", {"id": "a", "position": [0.2, 0.2, 0.0]})["ok"]
    code, message = _error(_ask(raw_client, "spawn_part", {"id": "b", "position": [0.2, 0.2, 0.0]}))
    assert code == P.CONFLICT and "'a' takes that space" in message


def test_lockstep_grant_never_blocks_other_clients(twin_factory):
    """A participant asking for the longest grant; meanwhile a second client is served at once,
    and an advance beyond the horizon is refused."""
    twin = twin_factory(CONFIGS / "kuka_lockstep.yaml")
    with TwinDriver(twin.endpoint, "press") as a, TwinDriver(twin.endpoint, "press") as b:
        a.request("register", name="sleeper", robots=[])
        with pytest.raises(DriverError, match="more than 3600.0s of sim time ahead"):
            a.request("advance", name="sleeper", until=1e9)
        a._sock.send(P.pack({"id": 99, "op": "advance", "args": {"name": "sleeper", "until": 3000.0}}))
        times = []
        for _ in range(5):
            started = time.monotonic()
            times.append(b.request("time")["time"])
            assert time.monotonic() - started < 1.0
            time.sleep(0.05)
        assert times == sorted(times) and times[-1] > times[0]  # served while the grant is stepped


def test_a_twin_serves_on_a_listening_socket_handed_down_and_its_early_clients_are_answered():
    """The launcher listens on the twin's port for the whole run and hands the socket to each twin
    process (``--listen-fd``): a request sent before the twin was up is answered once it is, and a
    twin killed and started again serves on the same socket (no other process could take the port
    in between)."""
    import socket

    import zmq

    from cellctl.processes.children import TwinProcess

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    early = zmq.Context.instance().socket(zmq.DEALER)
    early.setsockopt(zmq.LINGER, 0)
    try:
        early.connect(f"tcp://127.0.0.1:{port}")
        for attempt in range(2):
            early.send(P.pack({"id": attempt, "op": "joint_state", "args": {"robot": "press"}}))  # nobody serves yet
            time.sleep(0.2)
            twin = TwinProcess(str(CONFIGS / "kuka.yaml"), port, listen_fd=listener.fileno())
            twin.spawn()
            try:
                reply = recv(early, timeout=30)
                assert reply["id"] == attempt and reply["result"]["names"][0] == "lbr_iiwa_joint_1", reply
                twin.wait_ready()
                assert twin.endpoint == f"tcp://127.0.0.1:{port}"
            finally:
                twin.kill()
    finally:
        early.close()
        listener.close()
    wrong = subprocess.run([sys.executable, "-m", "cellctl", "twin", "serve", str(CONFIGS / "kuka.yaml"), "--port", "0",
                            "--listen-fd", "1"], capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 2 and "--listen-fd 1: not a TCP socket listening on port 0" in wrong.stderr, wrong.stderr
