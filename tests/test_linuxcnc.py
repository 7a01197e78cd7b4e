"""A CNC through a real LinuxCNC (its simulation config, headless with linuxcncrsh, in a network
namespace): ``check_machine`` passes; a program runs to done; an E-stop mid-program is the
machine's fault with LinuxCNC's words, so the wait_job skill fails blaming the machine (the cell:
Held with that reason); a wrong password, an unreachable CNC and a program that cannot be opened
are each one line."""

from __future__ import annotations

import time

import pytest

from cellctl.config.loader import load_config
from cellctl.config.paths import CONFIG_DIR
from cellctl.custody.ledger import JobState, Ledger
from cellctl.drivers.fake import FakeDriver
from cellctl.drivers.fake_world import FakeWorld
from cellctl.drivers.linuxcnc import LinuxCncMachine
from cellctl.drivers.machine import MachineCheck, MachineDescription, MachineError, MachineStatus, check_machine
from cellctl.skills.context import SkillContext
from cellctl.skills.wait_job import WaitJob
from tests.helpers.machines import until_status
from tests.helpers.linuxcnc import PORT, linuxcnc, operator, program, ready

pytestmark = [pytest.mark.process, pytest.mark.serial]  # starts LinuxCNC (its realtime thread: alone)

VICE = MachineDescription("cnc1", "cnc", "vice", "machined", "blank", False, names_jobs=False)


@pytest.fixture(scope="module")
def cnc(tmp_path_factory):
    base = tmp_path_factory.mktemp("linuxcnc")
    with linuxcnc(base) as host:
        yield host, base


@pytest.fixture
def machine(cnc):
    host, base = cnc
    with LinuxCncMachine(VICE, host, PORT, program=str(program(base / "nc" / "O1001.ngc")), expected=4.0) as m:
        yield m


def test_check_machine_passes_for_a_cnc_behind_a_real_linuxcnc(machine, cnc):
    host, _ = cnc
    assert machine.state().status == MachineStatus.FAULT  # LinuxCNC starts in E-stop: the operator releases it
    with pytest.raises(MachineError, match="refuses job part-1: its E-stop is on"):
        machine.start_job("part-1")
    ready(host)
    assert check_machine(MachineCheck(machine, load=lambda: "blank-1")) == ["describe", "idle", "busy", "job", "clear"]


def test_an_e_stop_mid_program_fails_wait_job_blaming_the_machine_with_linuxcnc_s_words(machine, cnc, tmp_path):
    host, _ = cnc
    ready(host)
    ledger = Ledger(tmp_path / "tend.sqlite")
    ledger.in_machine("blank-2", "cnc1", 0.0, part_type="blank")
    config = load_config(CONFIG_DIR / "demo_cell.yaml")
    robot = FakeDriver.from_config("press", config.robots["press"], FakeWorld.from_config(config))
    ctx = SkillContext.create(robot, machines={"cnc1": machine}, tending=_Tending(ledger), part="blank-2")
    machine.start_job("blank-2")
    ledger.job("blank-2", "cnc1", JobState.STARTED, 0.0)
    assert until_status(machine, MachineStatus.RUNNING).spindle is True  # the interlock keeps a robot out now
    skill = WaitJob(ctx, {"machine": "cnc1"})
    assert skill.tick() is None and skill.tick() is None  # running: the cell stays in Execute
    operator(host, "estop on")
    deadline = time.monotonic() + 10
    while (result := skill.tick()) is None:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert result.machine == "cnc1" and result.reason.startswith("machine cnc1: alarm during job blank-2: E-stop on")
    assert ledger.job_state("blank-2", "cnc1") == JobState.FAILED
    with pytest.raises(MachineError, match="its E-stop is on: release it at the machine first"):
        machine.clear()


def test_a_wrong_password_an_unreachable_cnc_and_a_missing_program_are_one_line_each(cnc, tmp_path):
    host, base = cnc
    passwords = tmp_path / "pw"
    passwords.write_text("EMC\nWRONG\n")
    with pytest.raises(MachineError) as err:
        LinuxCncMachine(VICE, host, PORT, passwords).connect()
    assert str(err.value) == (f"machine cnc1: linuxcncrsh at {host}:{PORT} refused the enable password (NAK): "
                              f"expected linuxcncrsh's --enablepw")
    gone = LinuxCncMachine(VICE, "127.0.0.1", 9, timeout=1.0).state()
    assert gone.status == MachineStatus.OFFLINE and gone.reason.startswith("linuxcncrsh at 127.0.0.1:9 does not "
                                                                           "answer")
    ready(host)
    with LinuxCncMachine(VICE, host, PORT) as m, pytest.raises(MachineError) as err:
        m.start_job("blank-3", str(base / "nc" / "missing.ngc"))
    assert str(err.value).startswith(f"machine cnc1: linuxcncrsh at {host}:{PORT} cannot open program "
                                     f"{base / 'nc' / 'missing.ngc'} (it has ")


class _Tending:
    """The part of the cell's custody wait_job reports to, over a real ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def job(self, part: str, machine: str, state: str) -> None:
        self.ledger.job(part, machine, JobState(state), 0.0)

    def job_state(self, part: str, machine: str) -> str | None:
        return self.ledger.job_state(part, machine)
