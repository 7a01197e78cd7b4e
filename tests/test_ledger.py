"""The custody ledger on a real SQLite file: two-phase transfer states, idempotent messages,
refusals, durability across reopening, and the schema version."""

from __future__ import annotations

import sqlite3

import pytest

from cellctl.custody.ledger import DELIVERED, GIVEN, IN_TRANSIT, OWNED, Ledger, LedgerError


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
    with pytest.raises(LedgerError, match="ledger schema version 7; this cellctl reads version 2"):
        Ledger(path)


def _fail_journal_inserts(path) -> None:
    """As a full disk or an I/O error would: the journal line of the next change cannot be written."""
    db = sqlite3.connect(path)
    db.execute("CREATE TRIGGER no_journal BEFORE INSERT ON journal BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    db.commit()
    db.close()


def test_a_custody_row_never_tears_from_its_journal_line(tmp_path):
    ledger = Ledger(tmp_path / "cell.sqlite")
    ledger.own("p1", "box", "infeed", 1.0)
    _fail_journal_inserts(tmp_path / "cell.sqlite")
    with pytest.raises(sqlite3.IntegrityError, match="disk full"):
        ledger.own("p2", "box", "infeed", 2.0)
    with pytest.raises(sqlite3.IntegrityError, match="disk full"):
        ledger.in_transit("p1", "pack", 3.0)
    assert ledger.get("p2") is None  # the row went with its journal line
    assert ledger.get("p1").state == OWNED
    journal = [r[0] for r in sqlite3.connect(tmp_path / "cell.sqlite").execute("SELECT part FROM journal")]
    assert journal == ["p1"]
    ledger.close()
    reopened = Ledger(tmp_path / "cell.sqlite")  # and nothing half-done is found after a restart
    assert reopened.get("p2") is None and reopened.get("p1").state == OWNED


def test_next_boot_is_one_transaction(tmp_path):
    ledger = Ledger(tmp_path / "cell.sqlite")
    assert [ledger.next_boot(), ledger.next_boot()] == [1, 2]
    other = sqlite3.connect(tmp_path / "cell.sqlite", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the file: the boot cannot be half-counted
    ledger._db.execute("PRAGMA busy_timeout=100")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        ledger.next_boot()
    other.execute("ROLLBACK")
    assert ledger.next_boot() == 3
