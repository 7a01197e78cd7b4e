"""Hermes: the code's machines against the reference (``docs/reference/hermes.json``), every
(state × message × direction) pair of both sides in one test per table, with the special rules
read from the reference's own words — not declared again here."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cellctl.handoff.hermes import (MESSAGES, RECEIVER, SENDER, STATES, HermesMachine, ProtocolError, SoftwareError)

REFERENCE = json.loads((Path(__file__).resolve().parent.parent / "docs" / "reference" / "hermes.json").read_text())
TABLES = {"sender": {(t["from"], t["event"]): t["to"] for t in REFERENCE["transitions"]},
          "receiver": {(t["from"], t["event"]): t["to"] for t in REFERENCE["receiver_transitions"]}}
CONNECTED = [s for s in REFERENCE["states"] if s not in ("NotConnected", "Disconnected")]


def _rule(rules: list[str], pattern: str) -> tuple[str, ...]:
    """The words a rule of the reference names, by a pattern of its sentence."""
    found = [m.groups() for rule in rules if (m := re.search(pattern, rule))]
    assert len(found) == 1, f"the reference has no single rule like {pattern!r}: {rules}"
    return found[0]


ALWAYS = _rule(REFERENCE["rules"], r"^(\w+) and (\w+) are accepted in every connected state and change nothing")
FORECAST_ACCEPTED = _rule(REFERENCE["receiver_rules"], r"accepts a received BoardForecast in (\w+) and (\w+)")
FORECAST_IGNORED = _rule(REFERENCE["receiver_rules"], r"ignores it in (\w+) and (\w+)")
CROSSING = _rule(REFERENCE["receiver_rules"], r"^A (\w+) or (\w+) received in (\w+) or (\w+) is ignored")
IGNORED = {(m, s) for m in CROSSING[:2] for s in CROSSING[2:]} | {("BoardForecast", s) for s in FORECAST_IGNORED}


def test_the_code_tables_are_the_reference():
    assert {(a, e): b for a, e, b in SENDER} == TABLES["sender"]
    assert {(a, e): b for a, e, b in RECEIVER} == TABLES["receiver"]
    assert list(STATES) == REFERENCE["states"]


def _in(role: str, state: str, board: str | None = None) -> HermesMachine:
    m = HermesMachine(role)
    m.state, m.board = state, board
    return m


def _expected(role: str, direction: str, state: str, message: str) -> str:
    """What the reference says of one pair: the next state, "same" (accepted, no change),
    "ignored" (dropped without an error) or "error"."""
    if message in ALWAYS:
        return "same" if state in CONNECTED else "error"
    if message == "BoardForecast":  # only the sender sends it; only the receiver receives it
        if (direction == "send") != (role == "sender"):
            return "error"
        if direction == "recv" and (message, state) in IGNORED:
            return "ignored"
        return "same" if state in FORECAST_ACCEPTED else "error"
    if role == "receiver" and direction == "recv" and (message, state) in IGNORED:
        return "ignored"
    return TABLES[role].get((state, f"{direction} {message}"), "error")


def _actual(role: str, direction: str, state: str, message: str) -> str:
    m = _in(role, state, board="b1")
    try:
        if direction == "recv":
            if m.receive(message, board="b1") is False:
                return "ignored" if m.state == state else f"ignored but moved to {m.state}"
        else:
            m.send(message, board="b1")
    except (ProtocolError, SoftwareError) as exc:
        expected_error = ProtocolError if direction == "recv" else SoftwareError
        return "error" if isinstance(exc, expected_error) and m.state == state else f"{type(exc).__name__} in {m.state}"
    return "same" if m.state == state and _expected(role, direction, state, message) == "same" else m.state


@pytest.mark.parametrize("role", ["sender", "receiver"])
def test_every_pair_of_a_side_behaves_as_the_reference_says(role):
    differ = [f"{direction} {message} in {state}: reference {want}, code {got}"
              for direction in ("recv", "send") for state in REFERENCE["states"] for message in MESSAGES
              if (want := _expected(role, direction, state, message)) != (got := _actual(role, direction, state,
                                                                                            message))]
    assert differ == [], "\n".join(differ)


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


def test_malformed_messages_are_dropped_answered_and_a_flood_is_reported_once_with_its_count():
    sender, receiver, wires, pump = _pair()
    pump()
    wires["pack"].clear()
    for _ in range(5):
        receiver.handle({"type": "BoardAvailable", "session": receiver.session, "part": 7})  # part: not a str
    notes = [m for m in wires["press"] if m["type"] == "Notification"]
    assert len(notes) == 1 and notes[0]["code"] == "MalformedMessage" and notes[0]["severity"] == "Warning"
    assert receiver.connected and receiver.fsm.state == "NotAvailableNotReady"


def test_a_service_description_of_another_protocol_version_is_refused():
    from cellctl.handoff.link import HandoffLink

    out = []
    sender = HandoffLink("sender", "press", "pack", lambda peer, m, live=False: out.append(m), 1, lambda kind, **f: None)
    sender.handle({"type": "ServiceDescription", "session": "pack-1-1", "name": "pack", "version": "hermes/9"})
    assert not sender.connected
    assert out[-1]["type"] == "Notification" and out[-1]["code"] == "ProtocolError" and "hermes/9" in out[-1]["text"]


def test_an_illegal_send_is_a_software_error_that_disconnects_and_tells_the_peer():
    sender, receiver, wires, pump = _pair()
    pump()
    with pytest.raises(SoftwareError, match="sender may not send TransportFinished in state NotAvailableNotReady"):
        sender.send("TransportFinished", part="p1")
    assert sender.fsm.state == "Disconnected"
    assert wires["pack"][-1]["code"] == "SoftwareError" and wires["pack"][-1]["severity"] == "Fatal"
