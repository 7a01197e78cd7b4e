"""Lockstep co-simulation: deterministic with several controller processes and their messages,
robust to a killed controller, and next-event advance equal to per-period stepping."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from cellctl.drivers.conformance import check_driver
from cellctl.drivers.twin_lockstep import LockstepClock
from cellctl.drivers.errors import DriverError, Unsupported
from cellctl.drivers.twin import TwinDriver
from cellctl.drivers.wait import wait
from tests.conftest import CONFIGS

pytestmark = pytest.mark.process  # starts twins, cells, launchers or bridges

CONTROLLER = [sys.executable, "-m", "tests.helpers.controller"]


def _controllers(endpoint: str, tmp_path, tag: str, periods: int = 120) -> list[subprocess.Popen]:
    meet = tmp_path / f"{tag}-rendezvous"
    meet.mkdir()
    procs = []
    for i, (name, robot, peer) in enumerate([("ctl-a", "a", "ctl-b"), ("ctl-b", "b", "ctl-a")]):
        procs.append(subprocess.Popen(
            [*CONTROLLER, endpoint, "--name", name, "--robot", robot, "--peer", peer, "--rendezvous", str(meet),
             "--periods", str(periods), "--seed", str(i), "--log", str(tmp_path / f"{tag}-{name}.jsonl")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return procs


def _finish(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and "DONE" in out, err


def _log(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_two_controllers_are_deterministic(twin_factory, tmp_path):
    logs = []
    for run in ("first", "second"):
        twin = twin_factory(CONFIGS / "two_robots_lockstep.yaml")
        _finish(_controllers(twin.endpoint, tmp_path, run))
        twin.stop()
        logs.append({name: _log(tmp_path / f"{run}-{name}.jsonl") for name in ("ctl-a", "ctl-b")})
    assert logs[0] == logs[1]
    a = logs[0]["ctl-a"]
    assert len(a) == 120 and a[-1]["time"] == pytest.approx(120 * 5 / 240)
    received = [(row["period"], m) for row in a for m in row["messages"]]
    # ctl-b sends in periods 3, 10, 17, ...; each is read at the start of the next period
    assert received[0] == (4, ["ctl-b", {"from_period": 3, "text": "hello from ctl-b"}])
    assert all(p == m[1]["from_period"] + 1 for p, m in received)
    assert len({tuple(row["q"]) for row in a}) > 50  # the robot really moved


def test_killed_controller_is_deregistered_and_the_other_finishes(twin_factory, tmp_path):
    twin = twin_factory(CONFIGS / "two_robots_lockstep.yaml")
    procs = _controllers(twin.endpoint, tmp_path, "kill", periods=400)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        path = tmp_path / "kill-ctl-b.jsonl"
        if path.exists() and len(path.read_text().splitlines()) > 20:
            break
        time.sleep(0.05)
    procs[1].kill()
    procs[1].wait()
    killed_at = time.monotonic()
    # ctl-a expects messages from ctl-b no more, but keeps working: it must finish its 400 periods
    out, err = procs[0].communicate(timeout=60)
    assert procs[0].returncode == 0 and "DONE" in out, err
    assert time.monotonic() - killed_at < 2.0 + 10  # silence timeout (2 s) plus the remaining work
    assert len(_log(tmp_path / "kill-ctl-a.jsonl")) == 400
    assert any("participant 'ctl-b' silent for over 2.0s: deregistered" in line for line in twin.output)


def _run_motion(endpoint: str, next_event: bool) -> tuple[float, list[float], list[list[float]]]:
    with TwinDriver(endpoint, "press") as robot:
        clock = robot.clock
        assert isinstance(clock, LockstepClock)
        goal = [0.6, 0.8, -0.3, -1.0, 0.2, 1.2, 0.4]
        motion = robot.move_joints([goal])
        samples = []
        if next_event:
            wait(motion)
        else:
            while not motion.status.done:
                clock.advance()
                samples.append(list(robot.joint_state().positions))
        return robot.now(), list(robot.joint_state().positions), samples


def test_next_event_advance_equals_per_period_stepping(twin_factory):
    per_period = _run_motion(twin_factory(CONFIGS / "kuka_lockstep.yaml").endpoint, next_event=False)
    next_event = _run_motion(twin_factory(CONFIGS / "kuka_lockstep.yaml").endpoint, next_event=True)
    assert next_event[0] == per_period[0]  # the motion ended in the same period
    assert next_event[1] == per_period[1]  # bit-identical final joint positions
    assert len(per_period[2]) > 20  # per-period stepping really took many grants


def test_check_driver_passes_in_lockstep(twin_factory):
    twin = twin_factory(CONFIGS / "kuka_lockstep.yaml")
    with TwinDriver(twin.endpoint, "press", timeout=1.0) as driver:
        passed = check_driver(driver, break_link=twin.kill)
    assert passed[-1] == "connection lost" and "cancel" in passed


def test_join_and_leave_between_periods(twin_factory):
    twin = twin_factory(CONFIGS / "kuka_lockstep.yaml")
    period = 5 / 240
    with TwinDriver(twin.endpoint, "press") as first, TwinDriver(twin.endpoint, "press") as second:
        a = LockstepClock(first, "a", [])
        assert a.advance().time == pytest.approx(period)  # alone: one period per grant
        b = LockstepClock(second, "b", [])  # joins between periods
        with pytest.raises(DriverError, match="a participant named 'b' is registered already"):
            LockstepClock(second, "b", [], register_timeout=0)
        grants = {}
        waiter = threading.Thread(target=lambda: grants.setdefault("a", a.advance(until=0.5)))
        waiter.start()
        # a waits for t = 0.5 s; b steps period by period meanwhile: the twin grants the smallest request
        assert [round(b.advance().time / period) for _ in range(4)] == [2, 3, 4, 5]
        assert "a" not in grants
        b.close()  # leaves between periods: a alone again, granted its own request
        waiter.join(10)
        assert grants["a"].time == pytest.approx(0.5)
        a.close()


def test_lockstep_ops_refused_in_realtime(kuka):
    with pytest.raises(Unsupported, match="lockstep ops need a twin running with twin.mode: lockstep"):
        kuka.request("register", name="x")


# -- the protocol as docs/twin-protocol.md states it: every request gets exactly one reply ---------
@pytest.fixture
def lockstep_socket(twin_factory):
    """A bare DEALER socket on a lockstep twin, speaking the protocol from the doc alone."""
    import zmq

    twin = twin_factory(CONFIGS / "kuka_lockstep.yaml")
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(twin.endpoint)

    def ask(req_id: int, op: str, **args: object) -> None:
        from cellctl.drivers.twin_wire import pack

        sock.send(pack({"id": req_id, "op": op, "args": args}))

    yield sock, ask
    sock.close(0)
    ctx.term()


def _replies(sock, count: int) -> dict:
    from tests.conftest import recv

    replies = [recv(sock) for _ in range(count)]
    assert not sock.poll(300), "more replies than requests"
    return {r["id"]: r for r in replies}


def test_a_replaced_advance_is_answered_superseded_and_the_later_one_gets_the_grant(lockstep_socket):
    sock, ask = lockstep_socket
    ask(1, "register", name="ctl", robots=["press"])
    assert _replies(sock, 1)[1]["ok"]
    ask(2, "advance", name="ctl", until=5.0)  # five seconds ahead: pending while the twin steps
    ask(3, "advance", name="ctl")  # replaces it
    replies = _replies(sock, 2)
    assert replies[2]["ok"] is False and replies[2]["error"]["code"] == "superseded", replies[2]
    # the later one gets the grant: one period past wherever the twin had stepped the replaced one to
    # (none, on an idle machine; a busy one may have stepped some of it before reading the replacement)
    assert replies[3]["ok"] and replies[3]["result"]["steps"] % 5 == 0 and replies[3]["result"]["time"] < 5.0, \
        replies[3]


def test_reset_while_participants_are_registered_is_busy_and_unknown_names_are_named(lockstep_socket):
    sock, ask = lockstep_socket
    ask(1, "register", name="ctl", robots=["press"])
    ask(2, "reset")
    ask(3, "advance", name="nobody")
    ask(4, "deregister", name="nobody")
    replies = _replies(sock, 4)
    assert replies[2]["error"]["code"] == "busy" and "'ctl'" in replies[2]["error"]["message"]
    assert replies[3]["error"]["code"] == replies[4]["error"]["code"] == "unknown_participant"
    ask(5, "deregister", name="ctl")
    ask(6, "reset")
    replies = _replies(sock, 2)
    assert replies[5]["ok"] and replies[6]["ok"]


def test_an_advance_pending_when_its_participant_is_deregistered_is_answered(lockstep_socket):
    sock, ask = lockstep_socket
    ask(1, "register", name="a", robots=["press"])
    ask(2, "register", name="b")
    ask(3, "advance", name="a")  # waits for b, which never advances
    ask(4, "deregister", name="a")
    replies = _replies(sock, 4)
    assert replies[3]["error"]["code"] == "unknown_participant" and "deregistered" in replies[3]["error"]["message"]
    assert replies[4]["ok"]


def test_every_error_code_the_twin_sends_is_in_the_protocol_doc():
    from pathlib import Path

    from cellctl.drivers import twin_wire

    doc = (Path(__file__).resolve().parent.parent / "docs" / "twin-protocol.md").read_text()
    table = doc[doc.index("## Error codes"):].split("\n\n")[1]
    codes = {value for name, value in vars(twin_wire).items() if name.isupper() and isinstance(value, str)
             and value.islower() and " " not in value and not value.startswith("CELLCTL")}
    missing = sorted(c for c in codes if f"`{c}`" not in table)
    assert missing == [], missing
