"""PackML: every (state × command) pair against the reference table in one test: listed pairs
move as listed, all others are refused and leave the state unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cellctl.cell.packml import COMMANDS, STATE_NUMBERS, TRANSITIONS, CommandRefused, PackML

REFERENCE = json.loads((Path(__file__).resolve().parent.parent / "docs" / "reference" / "packml.json").read_text())
TABLE = {(t["from"], t["event"]): t["to"] for t in REFERENCE["transitions"]}


def _machine_in(state: str) -> PackML:
    m = PackML()
    m.machine.set_state(state)
    return m


def test_module_table_is_the_reference():
    assert {(a, e): b for a, e, b in TRANSITIONS} == TABLE
    assert len(TRANSITIONS) == len(TABLE)
    assert STATE_NUMBERS == {k: v for k, v in REFERENCE["packtags_state_current"].items() if k != "Undefined"}
    assert list(COMMANDS) == REFERENCE["commands"]


def test_every_state_command_pair_behaves_as_the_reference_says():
    differ = []
    for state in REFERENCE["packtags_state_current"]:
        if state == "Undefined":
            continue
        for command in [*REFERENCE["commands"], "SC"]:
            m = _machine_in(state)
            want = TABLE.get((state, command), "refused")
            try:
                m.complete() if command == "SC" else m.command(command)
                got = m.state
            except CommandRefused as exc:
                got = "refused" if m.state == state and f"{command} is not allowed in state {state}" in str(exc) \
                    else f"refused, but {m.state}: {exc}"
            if got != want:
                differ.append(f"{command} in {state}: reference {want}, code {got}")
    assert differ == [], "\n".join(differ)


def test_starts_stopped_and_reports_changes():
    changes = []
    m = PackML(lambda a, b, e: changes.append((a, b, e)))
    assert m.state == "Stopped" and m.state_number == 2
    m.command("Reset")
    m.complete()
    assert changes == [("Stopped", "Resetting", "Reset"), ("Resetting", "Idle", "SC")]
    with pytest.raises(CommandRefused, match="unknown command 'Go'"):
        m.command("Go")
