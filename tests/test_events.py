"""The event schema: one typed union, the docs generated from it, one reader that survives a torn
last line, and fault kinds that travel from a cell's status into its events."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cellctl.events import EventSchemaError, markdown, read_events, validate
from cellctl.skills.events import make_event
from cellctl.testkit.harness import FakeCell
from tests.conftest import CONFIGS

DOC = Path(__file__).resolve().parent.parent / "docs" / "events.md"


def test_the_events_doc_is_the_schema():
    assert DOC.read_text() == markdown(), "docs/events.md is stale: python -m cellctl.events > docs/events.md"


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(lines))
    return path


def test_a_torn_last_line_is_skipped_and_the_rest_is_read(tmp_path):
    good = make_event("part_done", 1.0, cell="press", part="p1")
    path = _write(tmp_path / "events.jsonl", [json.dumps(good) + "\n", '{"schema": 1, "kind": "cust'])
    assert read_events(path) == [good]


def test_an_event_off_the_schema_names_the_file_and_its_place(tmp_path):
    bad = make_event("custody", 1.0, cell="press", part="p1", state="LOANED", station=None)
    path = _write(tmp_path / "events.jsonl", [json.dumps(make_event("interrupted", None, source="launcher")) + "\n",
                                              json.dumps(bad) + "\n"])
    with pytest.raises(EventSchemaError, match=r"events.jsonl: event 2: custody.state: Input should be 'OWNED'"):
        read_events(path)
    assert [e["kind"] for e in read_events(path, strict=False)] == ["interrupted"]  # the report's way


@pytest.mark.parametrize("event,problem", [
    (make_event("nonsense", 0.0, cell="c"), "does not match any of the expected tags"),
    (make_event("fault", 0.0, cell="c", reason="x", fault_kind="gremlins", source="cell"), "fault_kind"),
    (make_event("packml", 0.0, cell="c", source="Execute", dest="Dancing", event="Hold", state_number=10), "dest"),
    ({**make_event("part_done", 0.0, cell="c", part="p"), "schema": 2}, "schema"),
])
def test_each_kind_is_checked(event, problem):
    with pytest.raises(EventSchemaError, match=problem):
        validate(event)


def test_fault_kinds_round_trip_through_status_and_events(tmp_path):
    fake = FakeCell(CONFIGS / "one_cell.yaml", "press", tmp_path / "ledger.sqlite")
    fake.run_until("Execute")
    for _ in range(20):
        fake.cell.tick()
        fake.world.clock.advance(fake.cell.wake_hint())
    fake.driver.break_link()
    fake.run_until("Held", start=False)
    status = fake.cell.status()
    faults = [e for e in fake.events.events if e["kind"] == "fault"]
    assert (status["fault_kind"], status["fault_source"]) == ("twin_lost", "twin")
    assert [(f["fault_kind"], f["reason"], f["source"]) for f in faults] == [("twin_lost", status["fault"], "twin")]
    for event in fake.events.events:
        validate(event)


def test_every_fault_kind_is_explained_to_operators():
    from cellctl.faults import FaultKind

    from cellctl.faults import ADVICE

    deploy = (DOC.parent / "deploy.md").read_text()
    assert [k.value for k in FaultKind if f"| `{k.value}` |" not in deploy] == []
    rows = [line for line in deploy.splitlines() if line.startswith("| `")]
    assert [k.value for k in FaultKind if not any(r.startswith(f"| `{k.value}` |") and r.endswith(f"| {ADVICE[k]} |")
                                                   for r in rows)] == []
