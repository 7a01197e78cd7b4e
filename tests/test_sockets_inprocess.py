"""A cell's sockets in one process, on real ZeroMQ over loopback: the handoff mailbox's causal
delivery and its bounds, and the control and status sockets in front of a real Cell (on a
FakeDriver). No process is started: these run in the fast lane."""

from __future__ import annotations

import threading

import pytest
import zmq

from cellctl.cell.control import ControlServer, request
from cellctl.drivers import twin_wire as P
from cellctl.handoff.mailbox import Mailbox
from cellctl.testkit.harness import FakeCell
from tests.conftest import CONFIGS


@pytest.fixture
def pair():
    rejected: list[str] = []
    a, b = Mailbox("a"), Mailbox("b", on_reject=rejected.append)
    a.connect("b", b.endpoint)
    b.connect("a", a.endpoint)
    assert a.wait_connected(5.0) == [] and b.wait_connected(5.0) == []
    yield a, b, rejected
    a.close()
    b.close()


def test_messages_are_delivered_by_the_period_they_were_sent_in(pair):
    a, b, _ = pair
    a.stamp = 10
    assert a.send("b", {"n": 1}) and a.send("b", {"n": 2})
    a.stamp = 20
    assert a.send("b", {"n": 3})
    assert a.send("b", {"alive": True}, live=True)
    assert a.take_sent() == {"b": 3} and a.take_sent() == {}  # liveness is not counted
    live = {"alive": True}
    first = b.collect({"a": 2}, before=15)  # a grant at step 15: what was sent before it, in order
    second = b.collect({"a": 1}, before=25)
    assert [m for m in first if m[1] != live] == [("a", {"n": 1}), ("a", {"n": 2})]
    assert [m for m in second if m[1] != live] == [("a", {"n": 3})]
    seen = [m for m in first + second if m[1] == live]
    for _ in range(100):  # a liveness message comes with whatever collect follows its arrival
        seen += b.collect(None)
        if seen:
            break
    assert seen == [("a", live)]


def test_frames_that_are_not_a_neighbours_messages_are_dropped_and_reported(pair):
    a, b, rejected = pair
    ctx = zmq.Context.instance()
    stranger = ctx.socket(zmq.PUSH)
    stranger.setsockopt(zmq.LINGER, 0)
    stranger.connect(b.endpoint)
    stranger.send(b"\x00garbage")
    stranger.send(P.pack({"from": "mallory", "sent": 0, "seq": 1, "payload": {}}))
    a.send("b", {"n": 1})
    got = b.collect({"a": 1}, before=1)
    for _ in range(100):  # the stranger's frames arrive in their own time
        if rejected:
            break
        got += b.collect(None, timeout=0.05)
        b._read(50)
    stranger.close(0)
    assert got == [("a", {"n": 1})]
    assert "not a mailbox message" in rejected[0]


def test_a_send_to_a_neighbour_not_connected_is_refused_not_queued():
    a = Mailbox("a")
    a.connect("b", "tcp://127.0.0.1:9")  # nobody there
    try:
        assert a.wait_connected(0.2) == ["b"]
        assert a.send("b", {"n": 1}) is False and a.take_sent() == {}
    finally:
        a.close()


@pytest.fixture
def served(tmp_path):
    """A real Cell behind its control and status sockets, served from this thread."""
    fake = FakeCell(CONFIGS / "one_cell.yaml", "press", tmp_path / "ledger.sqlite")
    server = ControlServer(fake.cell, status_port=0)
    stop = threading.Event()

    def ask(endpoint: str, op: str, **args: object) -> dict:
        result: dict = {}
        thread = threading.Thread(target=lambda: result.update(request(endpoint, op, timeout=5.0, **args)))
        thread.start()
        while thread.is_alive():
            server.serve_pending()
            thread.join(0.005)
        return result

    yield fake, server, ask
    stop.set()
    server.close()


def test_status_and_commands_over_the_control_socket(served):
    fake, server, ask = served
    status = ask(server.endpoint, "status")["result"]
    assert (status["cell"], status["state"], status["state_number"], status["fault_kind"]) == ("press", "Stopped", 2,
                                                                                                None)
    reply = ask(server.endpoint, "command", command="Start")
    assert reply["ok"] is False and reply["error"]["code"] == "refused"
    assert reply["error"]["message"] == "Start is not allowed in state Stopped; allowed: Reset, Abort"
    assert ask(server.endpoint, "command", command="Reset")["ok"]
    assert ask(server.endpoint, "command", command="Dance")["error"]["code"] == "bad_args"


def test_the_status_socket_answers_status_and_refuses_commands(served):
    fake, server, ask = served
    assert ask(server.status_endpoint, "status")["result"]["state"] == "Stopped"
    reply = ask(server.status_endpoint, "command", command="Reset")
    assert reply["error"]["code"] == "read_only" and fake.cell.state == "Stopped"


def test_cut_link_is_refused_on_a_cell_without_that_neighbour(served):
    _, server, ask = served
    reply = ask(server.endpoint, "cut_link", peer="pack", seconds=2.0)
    assert reply["ok"] is False
