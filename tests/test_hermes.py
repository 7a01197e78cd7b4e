"""Hermes: every (state × message) pair generated from the reference table, both sides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cellctl.hermes import (MESSAGES, RECEIVER, SENDER, STATES, HermesMachine, ProtocolError, SoftwareError)

REFERENCE = json.loads((Path(__file__).resolve().parent.parent / "docs" / "reference" / "hermes.json").read_text())
REF_SENDER = {(t["from"], t["event"]): t["to"] for t in REFERENCE["transitions"]}
SWAP = {"send": "recv", "recv": "send"}
REF_RECEIVER = {(a, (f"{SWAP[e.split()[0]]} {e.split()[1]}" if " " in e else e)): b for (a, e), b in REF_SENDER.items()}
CONNECTED = [s for s in STATES if s not in ("NotConnected", "Disconnected")]


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
    elif message == "BoardForecast" and state in ("NotAvailableNotReady", "MachineReady"):
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
    s.send("TransportFinished"), r.receive("TransportFinished")
    r.send("StopTransport", "p1"), s.receive("StopTransport", "p1")
    assert s.state == r.state == "NotAvailableNotReady"


def test_board_id_mismatch_is_a_protocol_error():
    s = _in("sender", "AvailableAndReady")
    s.receive("StartTransport", "p1")
    with pytest.raises(ProtocolError, match="StopTransport for board 'p2', but StartTransport was for 'p1'"):
        s.receive("StopTransport", "p2")
