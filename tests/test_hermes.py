"""Hermes: every (state × message) pair generated from the reference table, both sides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cellctl.handoff.hermes import (MESSAGES, RECEIVER, SENDER, STATES, HermesMachine, ProtocolError, SoftwareError)

REFERENCE = json.loads((Path(__file__).resolve().parent.parent / "docs" / "reference" / "hermes.json").read_text())
REF_SENDER = {(t["from"], t["event"]): t["to"] for t in REFERENCE["transitions"]}
REF_RECEIVER = {(t["from"], t["event"]): t["to"] for t in REFERENCE["receiver_transitions"]}
CONNECTED = [s for s in STATES if s not in ("NotConnected", "Disconnected")]
FORECAST = ("NotAvailableNotReady", "MachineReady")
# receiver_rules: what crossed the receiver's StartTransport on the wire is ignored
CROSSED = {("BoardAvailable", s) for s in ("Transporting", "TransportStopped")} \
    | {("RevokeBoardAvailable", s) for s in ("Transporting", "TransportStopped")} \
    | {("BoardForecast", s) for s in ("Transporting", "TransportStopped")}


def test_tables_match_the_reference():
    assert {(a, e): b for a, e, b in SENDER} == REF_SENDER
    assert {(a, e): b for a, e, b in RECEIVER} == REF_RECEIVER
    assert list(STATES) == REFERENCE["states"]


def _in(role: str, state: str, board: str | None = None) -> HermesMachine:
    m = HermesMachine(role)
    m.state, m.board = state, board
    return m


@pytest.mark.parametrize("role,table", [("sender", REF_SENDER), ("receiver", REF_RECEIVER)])
@pytest.mark.parametrize("state", REFERENCE["states"])
@pytest.mark.parametrize("message", MESSAGES)
def test_every_received_message(role, table, state, message):
    m = _in(role, state, board="b1")
    expected = table.get((state, f"recv {message}"))
    if message in ("CheckAlive", "Notification") and state in CONNECTED:
        m.receive(message)
        assert m.state == state  # accepted, changes nothing
    elif role == "receiver" and (message, state) in CROSSED:
        assert m.receive(message, board="b2") is False  # ignored: no error, no change
        assert m.state == state
    elif role == "receiver" and message == "BoardForecast" and state in FORECAST:
        assert m.receive(message) is True
        assert m.state == state  # accepted, changes nothing
    elif expected is not None:
        m.receive(message, board="b1")
        assert m.state == expected
    else:
        with pytest.raises(ProtocolError, match=f"received {message} in state {state}"):
            m.receive(message, board="b1")
        assert m.state == state


@pytest.mark.parametrize("role,table", [("sender", REF_SENDER), ("receiver", REF_RECEIVER)])
@pytest.mark.parametrize("state", REFERENCE["states"])
@pytest.mark.parametrize("message", MESSAGES)
def test_every_sent_message(role, table, state, message):
    m = _in(role, state, board="b1")
    expected = table.get((state, f"send {message}"))
    if message in ("CheckAlive", "Notification") and state in CONNECTED:
        m.send(message)
        assert m.state == state
    elif message == "BoardForecast" and role == "sender" and state in FORECAST:  # only the sender sends it
        m.send(message)
        assert m.state == state
    elif expected is not None:
        m.send(message, board="b1")
        assert m.state == expected
    else:
        with pytest.raises(SoftwareError, match=f"may not send {message} in state {state}"):
            m.send(message, board="b1")


def test_revokes_and_a_full_transfer():
    s, r = HermesMachine("sender"), HermesMachine("receiver")
    s.connected(), r.connected()
    r.send("ServiceDescription"), s.receive("ServiceDescription")
    s.send("ServiceDescription"), r.receive("ServiceDescription")
    assert s.state == r.state == "NotAvailableNotReady"
    s.send("BoardAvailable"), r.receive("BoardAvailable")
    s.send("RevokeBoardAvailable"), r.receive("RevokeBoardAvailable")
    assert s.state == r.state == "NotAvailableNotReady"
    r.send("MachineReady"), s.receive("MachineReady")
    r.send("RevokeMachineReady"), s.receive("RevokeMachineReady")
    r.send("MachineReady"), s.receive("MachineReady")
    s.send("BoardAvailable"), r.receive("BoardAvailable")
    assert s.state == r.state == "AvailableAndReady"
    r.send("StartTransport", "p1"), s.receive("StartTransport", "p1")
    s.send("TransportFinished"), r.receive("TransportFinished", "p1")
    r.send("StopTransport", "p1"), s.receive("StopTransport", "p1")
    assert s.state == r.state == "NotAvailableNotReady"


def test_board_id_mismatch_is_a_protocol_error():
    s = _in("sender", "AvailableAndReady")
    s.receive("StartTransport", "p1")
    with pytest.raises(ProtocolError, match="StopTransport for board 'p2', but StartTransport was for 'p1'"):
        s.receive("StopTransport", "p2")
    r = _in("receiver", "AvailableAndReady")
    r.send("StartTransport", "p1")
    with pytest.raises(ProtocolError, match="TransportFinished for board 'p2', but StartTransport was for 'p1'"):
        r.receive("TransportFinished", "p2")


def test_crossing_messages_do_not_disconnect_a_link():
    """A BoardAvailable that crossed the receiver's StartTransport on the wire is dropped; the
    transfer goes on (once, this disconnected the link)."""
    sender, receiver, wires, pump = _pair()
    pump()
    receiver.send("MachineReady")
    pump()
    receiver.send("StartTransport", part="p1")
    receiver.handle({"type": "BoardAvailable", "session": receiver.session, "part": "p1", "part_type": "box"})
    receiver.handle({"type": "BoardForecast", "session": receiver.session})
    assert receiver.connected and receiver.fsm.state == "Transporting"
    assert [e.kind for e in receiver.take_events()] == ["connected"]


def _pair():
    """A sender and a receiver link wired back to back through lists (no sockets)."""
    from cellctl.handoff.link import HandoffLink

    wires = {"press": [], "pack": []}
    emitted = []
    sender = HandoffLink("sender", "press", "pack", lambda peer, m, live=False: wires[peer].append(m), 1,
                         lambda kind, **f: emitted.append((kind, f)))
    receiver = HandoffLink("receiver", "pack", "press", lambda peer, m, live=False: wires[peer].append(m), 1,
                           lambda kind, **f: emitted.append((kind, f)))

    def pump():
        while wires["press"] or wires["pack"]:
            for m in wires["press"][:]:
                wires["press"].remove(m)
                sender.handle(m)
            for m in wires["pack"][:]:
                wires["pack"].remove(m)
                receiver.handle(m)

    return sender, receiver, wires, pump


def test_link_handshake_and_stale_session_messages_are_dropped():
    sender, receiver, wires, pump = _pair()
    pump()
    assert sender.connected and receiver.connected and sender.session == receiver.session == "pack-1-1"
    assert [e.kind for e in sender.take_events()] == ["connected"]
    assert [e.kind for e in receiver.take_events()] == ["connected"]
    # a message of an old session (ZeroMQ delivered it late) changes nothing on the sender...
    sender.handle({"type": "MachineReady", "session": "pack-0-9"})
    assert sender.fsm.state == "NotAvailableNotReady" and sender.take_events() == []
    # ...which tells that session it is unknown; the current session is untouched
    assert wires["pack"][-1]["type"] == "Notification" and wires["pack"][-1]["session"] == "pack-0-9"
    wires["pack"].clear()
    receiver.send("MachineReady")
    pump()
    assert sender.fsm.state == "MachineReady"


def test_link_protocol_error_notifies_and_disconnects():
    sender, receiver, wires, pump = _pair()
    pump()
    sender.take_events()
    receiver.handle({"type": "TransportFinished", "session": receiver.session, "part": "p1"})  # no transfer running
    assert receiver.fsm.state == "Disconnected"
    note = wires["press"][-1]
    assert note["type"] == "Notification" and note["code"] == "ProtocolError" and note["severity"] == "Fatal"
    pump()
    assert sender.fsm.state == "Disconnected"  # the peer's Fatal notification disconnects it too
