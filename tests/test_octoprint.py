"""A 3D printer through a real OctoPrint (its Virtual Printer), behind the machine contract:
``check_machine`` passes; a wrong API key, an unreachable OctoPrint and a program file that does
not exist are each one line naming the machine, the URL or file and what was expected; a print
cancelled at the printer is the machine's fault until acknowledged; a restarted driver finds its
job by name. The print line with this printer in place of the twin's is in test_print_line_real.py."""

from __future__ import annotations


import pytest

from cellctl.drivers.machine import MachineCheck, MachineDescription, MachineError, MachineStatus, check_machine
from cellctl.drivers.octoprint import OctoPrintMachine
from tests.helpers.machines import until_status
from tests.helpers.octoprint import gcode, start_octoprint

pytestmark = pytest.mark.process  # starts OctoPrint

BED = MachineDescription("printer1", "printer", "bed", "blank", None, False)


@pytest.fixture(scope="module")
def octoprint(tmp_path_factory):
    octo = start_octoprint(tmp_path_factory.mktemp("octoprint"))
    yield octo
    octo.stop()


@pytest.fixture
def printer(octoprint, tmp_path):
    with OctoPrintMachine(BED, octoprint.url, octoprint.key_file, timeout=5.0, expected=5.0,
                          program=str(gcode(tmp_path / "job.gcode"))) as machine:
        if machine.state().status in (MachineStatus.DONE, MachineStatus.FAULT):
            machine.clear()  # an earlier test's job, acknowledged by a driver that is gone
        yield machine


def test_check_machine_passes_for_a_printer_behind_a_real_octoprint(printer, tmp_path):
    passed = check_machine(MachineCheck(printer, program=str(gcode(tmp_path / "check.gcode"))))
    assert passed == ["describe", "idle", "busy", "job", "clear", "stop"]


def test_a_print_cancelled_at_the_printer_is_a_fault_until_acknowledged_and_a_new_driver_finds_the_job(
        printer, octoprint, tmp_path):
    printer.start_job("part-7")
    state = until_status(printer, MachineStatus.RUNNING, 10)
    assert state.job == "part-7" and 0 <= state.progress < 1 and state.expected == 5.0
    assert octoprint.api("POST", "/api/job", json={"command": "cancel"}).status_code == 204  # at the printer
    state = until_status(printer, MachineStatus.FAULT)
    assert state.reason == "print part-7 ended without finishing (cancelled or failed at the printer)"
    with OctoPrintMachine(BED, octoprint.url, octoprint.key_file) as restarted:  # a restarted cell's driver
        assert (restarted.state().status, restarted.state().job) == (MachineStatus.FAULT, "part-7")
    printer.clear()
    assert (printer.state().status, printer.state().job) == (MachineStatus.IDLE, "part-7")
    printer.start_job("part-7")  # run again after the failure: the same name, a new print
    state = until_status(printer, MachineStatus.DONE)
    assert state.job == "part-7" and state.progress == 1.0
    with OctoPrintMachine(BED, octoprint.url, octoprint.key_file) as restarted:
        assert restarted.state().status == MachineStatus.DONE  # found by its name, not from memory
        with pytest.raises(MachineError, match="machine printer1 refuses job part-8: it is done with job part-7"):
            restarted.start_job("part-8", str(tmp_path / "job.gcode"))
    printer.clear()


def test_bad_keys_urls_and_programs_are_one_line_each(octoprint, tmp_path):
    wrong = tmp_path / "wrong.key"
    wrong.write_text("NOTTHEKEY\n")
    with OctoPrintMachine(BED, octoprint.url, wrong) as machine, pytest.raises(MachineError) as err:
        machine.state()
    assert str(err.value) == (f"machine printer1: OctoPrint at {octoprint.url} refused the API key from {wrong} "
                              f"(403): expected a key of a user allowed to print")
    with pytest.raises(MachineError, match=f"cannot read the OctoPrint API key file {tmp_path / 'none.key'}: "
                                           f"No such file or directory"):
        OctoPrintMachine(BED, octoprint.url, tmp_path / "none.key").connect()
    with OctoPrintMachine(BED, "http://127.0.0.1:9", octoprint.key_file, timeout=1.0) as gone:
        state = gone.state()
        assert state.status == MachineStatus.OFFLINE and state.reason.startswith(
            "OctoPrint at http://127.0.0.1:9 does not answer (ConnectError:")
        with pytest.raises(MachineError, match="machine printer1 refuses job part-1: it is offline"):
            gone.start_job("part-1", str(gcode(tmp_path / "job.gcode")))
    with OctoPrintMachine(BED, octoprint.url, octoprint.key_file) as machine, pytest.raises(MachineError) as err:
        machine.start_job("part-1", str(tmp_path / "missing.gcode"))
    assert str(err.value) == (f"machine printer1: job part-1's program {tmp_path / 'missing.gcode'} does not exist "
                              f"(expected a G-code file on this PC)")
    with pytest.raises(MachineError, match="has no door"):
        OctoPrintMachine(BED, octoprint.url, octoprint.key_file).set_door(True)
