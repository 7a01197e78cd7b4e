"""The custody ledger on a real SQLite file: two-phase transfer states, idempotent messages,
refusals, durability across reopening, and the schema version."""

from __future__ import annotations

import sqlite3

import pytest

from cellctl.ledger import DELIVERED, GIVEN, IN_TRANSIT, OWNED, Ledger, LedgerError


def test_two_phase_transfer_across_two_ledgers(tmp_path):
    sender, receiver = Ledger(tmp_path / "press.sqlite"), Ledger(tmp_path / "pack.sqlite")
    sender.own("p1", "box", "infeed", 1.0)
    sender.in_transit("p1", "pack", 2.0)  # committed before TransportFinished
    receiver.own("p1", "box", "press", 2.1)  # committed before StopTransport
    receiver.own("p1", "box", "press", 2.2)  # a repeated TransportFinished changes nothing
    sender.given("p1", 2.3)
    sender.given("p1", 2.4)  # a repeated StopTransport (or resync) changes nothing
    receiver.delivered("p1", 9.0)
    assert sender.get("p1").state == GIVEN and receiver.get("p1").state == DELIVERED
    assert receiver.received_from("press") == ["p1"]
    journal = [r[0] for r in sqlite3.connect(tmp_path / "press.sqlite").execute("SELECT state FROM journal ORDER BY seq")]
    assert journal == [OWNED, IN_TRANSIT, GIVEN]


def test_illegal_changes_are_refused(tmp_path):
    ledger = Ledger(tmp_path / "cell.sqlite")
    with pytest.raises(LedgerError, match="part p9 is unknown here, expected OWNED or IN_TRANSIT"):
        ledger.in_transit("p9", "pack", 1.0)
    ledger.own("p1", "box", "infeed", 1.0)
    with pytest.raises(LedgerError, match="part p1 is OWNED here, expected IN_TRANSIT or GIVEN"):
        ledger.given("p1", 2.0)
    ledger.in_transit("p1", "pack", 2.0)
    ledger.given("p1", 3.0)
    with pytest.raises(LedgerError, match="part p1 is GIVEN here: it cannot be owned again"):
        ledger.own("p1", "box", "infeed", 4.0)


def test_state_survives_reopening_and_boots_count(tmp_path):
    path = tmp_path / "cell.sqlite"
    ledger = Ledger(path)
    assert ledger.next_boot() == 1
    ledger.own("p1", "box", "infeed", 1.0)
    ledger.in_transit("p1", "pack", 2.0)
    ledger.clean_shutdown(False)
    ledger.close()
    reopened = Ledger(path)
    assert reopened.next_boot() == 2
    assert not reopened.was_clean()
    assert [c.part for c in reopened.with_state(IN_TRANSIT)] == ["p1"]
    assert reopened.get("p1").peer == "pack"
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_unknown_schema_version_is_refused(tmp_path):
    path = tmp_path / "future.sqlite"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=7")
    db.close()
    with pytest.raises(LedgerError, match="ledger schema version 7; this cellctl reads version 1"):
        Ledger(path)
