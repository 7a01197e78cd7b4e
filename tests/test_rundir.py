"""The run directory: one place names its files, and its readers survive what a killed writer
leaves behind."""

from __future__ import annotations

import pytest

from cellctl.rundir import ControlFile, EventTail, RunDir, RunDirUnusable


def test_control_files_are_written_whole_and_read_back(tmp_path):
    run = RunDir(tmp_path)
    assert run.read_control("press") is None and run.controls() == []
    run.write_control(ControlFile("press", "tcp://127.0.0.1:1", "tcp://127.0.0.1:2"))
    run.write_control(ControlFile("pack", "tcp://127.0.0.1:3", "tcp://127.0.0.1:4"))
    run.control("weld").write_text('{"cell": "weld", "endp')  # a writer killed mid-file
    assert run.read_control("press") == ControlFile("press", "tcp://127.0.0.1:1", "tcp://127.0.0.1:2")
    assert [c.cell for c in run.controls()] == ["pack", "press"]
    assert not list(tmp_path.glob("*.tmp"))


def test_an_old_control_file_without_a_status_socket_reads_as_the_control_socket(tmp_path):
    run = RunDir(tmp_path)
    run.control("press").write_text('{"cell": "press", "endpoint": "tcp://127.0.0.1:1"}')
    assert run.read_control("press").status == "tcp://127.0.0.1:1"


def test_json_files_read_as_empty_when_absent_or_torn(tmp_path):
    run = RunDir(tmp_path)
    assert run.read_json(run.summary) == {}
    run.summary.write_text('{"parts_in": 3, "par')
    assert run.read_json(run.summary) == {}
    run.write_json(run.pids, {"launcher": 1})
    assert run.read_json(run.pids) == {"launcher": 1}
    run.pids.write_text("[1, 2]")
    assert run.read_json(run.pids) == {}


def test_missing_names_what_a_resumable_run_lacks(tmp_path):
    run = RunDir(tmp_path)
    assert run.missing() == ["line.yaml", "launch.json"]
    run.line_config.write_text("version: 1\n")
    assert run.missing() == ["launch.json"]


def test_log_tail(tmp_path):
    run = RunDir(tmp_path)
    assert run.log_tail(run.cell_log("press")) == "(no log)"
    run.cell_log("press").write_text("".join(f"line {i}\n" for i in range(50)))
    assert run.log_tail(run.cell_log("press"), 2) == "line 48\nline 49"


def test_the_event_tail_reads_what_was_appended_and_waits_for_a_line_being_written(tmp_path):
    run = RunDir(tmp_path)
    tail = EventTail(run.events)
    assert tail.read() == []
    run.events.write_text('{"kind": "a", "sim_time": 1.5}\nnot json\n[1]\n{"kind": "b"')
    assert tail.read() == [{"kind": "a", "sim_time": 1.5}] and tail.last_sim_time == 1.5
    with run.events.open("a") as f:
        f.write(', "sim_time": 2.0}\n')
    assert tail.read() == [{"kind": "b", "sim_time": 2.0}] and tail.last_sim_time == 2.0


def test_handoff_inboxes_are_announced_whole_and_a_missing_neighbour_is_named(tmp_path):
    import pytest

    from cellctl.handoff import rendezvous

    assert rendezvous.announced(tmp_path, "pack") is None
    rendezvous.announce(tmp_path, "pack", "tcp://127.0.0.1:5001")
    assert rendezvous.wait_for(tmp_path, "pack", timeout=1.0) == "tcp://127.0.0.1:5001"
    (tmp_path / "handoff-press.json").write_text('{"cell": "press", "endp')  # torn: not announced yet
    with pytest.raises(rendezvous.NeighbourNotFound, match="neighbour press announced no handoff inbox"):
        rendezvous.wait_for(tmp_path, "press", timeout=0.2)


def test_a_new_run_is_refused_a_directory_that_holds_one(tmp_path):
    """A second run in a run's directory would read the first run's ledgers as its own (its cells
    Complete at once, its parts stranded): it is refused, and the message says what to do."""
    run = RunDir(tmp_path / "run")
    run.make_fresh()  # not there yet: made
    assert run.path.is_dir()
    (run.path / "cell-press.log").write_text("")  # a log alone is no run
    run.make_fresh()
    run.ledger("press").write_bytes(b"")
    run.events.write_text("")
    assert run.earlier_run() == ["events.jsonl", "ledger-press.sqlite"]
    with pytest.raises(RunDirUnusable, match=r"holds a run already \(events.jsonl, ledger-press.sqlite\): give a new "
                                          r"--run-dir, or continue that run with `cellctl run --resume .*run`"):
        run.make_fresh()


def test_a_run_directory_that_cannot_be_made_is_said_not_a_traceback(tmp_path):
    (tmp_path / "afile").write_text("")
    with pytest.raises(RunDirUnusable, match=r"run directory .*afile is a file, not a directory: give a new --run-dir"):
        RunDir(tmp_path / "afile").make_fresh()
    with pytest.raises(RunDirUnusable, match=r"cannot make the run directory .*afile/run: Not a directory"):
        RunDir(tmp_path / "afile" / "run").make_fresh()
    RunDir(tmp_path / "new" / "run").make_fresh()
    assert (tmp_path / "new" / "run").is_dir()


def test_default_run_directories_started_in_the_same_second_differ(tmp_path):
    first = RunDir.fresh(tmp_path, "20261205-101010")
    first.mkdir()
    second = RunDir.fresh(tmp_path, "20261205-101010")
    second.mkdir()
    assert (first.name, second.name, RunDir.fresh(tmp_path, "20261205-101010").name) == (
        "20261205-101010", "20261205-101010-2", "20261205-101010-3")
