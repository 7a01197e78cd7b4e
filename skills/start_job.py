"""start_job: start the machine's job for the cell's part — never a second time.

leave (the robot moves home unless its TCP is already ``clearance`` m from the machine's station:
a job starts only with the robot clear of it) → close (its door, where it has one) → start → started
(the machine reports the job running, or done).

The machine is asked first: a job named after the part that runs, is paused or is done is not
started again (a cell restarted mid-job finds its job there). A printer's part enters the ledger
(IN_MACHINE) before the print starts; its bed must be clear, by the sensor or the ledger."""

from __future__ import annotations

import math

from pydantic import Field

from cellctl.drivers.machine import MachineStatus
from cellctl.skills.registry import register
from cellctl.skills.tending import MachineParams, Tends


class StartJobParams(MachineParams):
    program: str | None = Field(None, description="the program or G-code file to run (a machine's driver sends it; "
                                                  "the twin's machines run one per kind)")
    params: dict = Field(default_factory=dict, description="the job's parameters, passed to the machine's driver")
    clearance: float = Field(0.25, gt=0, description="m (horizontal) the TCP keeps from the machine's station "
                                                     "before the job starts")
    speed: float = Field(1.0, gt=0, le=1, description="speed of the move home, if the robot is not clear")


@register
class StartJob(Tends):
    name = "start_job"
    Params = StartJobParams
    steps = ["leave", "close", "start", "started"]

    def setup(self) -> None:
        self.bind()

    def preconditions(self) -> list[tuple[str, bool]]:
        return self.machine_preconditions()

    def _distance(self) -> float:
        tcp = self.driver.kinematics.fk(self.driver.joint_state().positions).position
        x, y, _ = self.ctx.station(self.desc.station)
        return math.hypot(tcp[0] - x, tcp[1] - y)

    def on_enter_leave(self) -> None:
        if self._distance() < self.params.clearance:
            self.motion = self.driver.move_joints([list(self.driver.describe().home)], self.params.speed)

    def check_leave(self) -> str | None:
        d = self._distance()
        return None if d >= self.params.clearance else (
            f"the robot is not clear of machine {self.params.machine}: its TCP at home is {d:.2f} m from "
            f"{self.desc.station} (a job starts only {self.params.clearance} m away: move the robot or the machine)")

    def poll_close(self) -> bool:
        state = self.tended.state()
        if state.door_open and not state.busy:
            self.ask(self.tended.set_door, False)
            return False
        return True

    def poll_start(self) -> bool:
        name, part, tending = self.params.machine, self.part, self.ctx.tending
        state = self.tended.state()
        ours = tending.job_state(part, name) is not None  # (recorded before the machine is asked to start it)
        if state.job == part and ours and (state.status in (MachineStatus.RUNNING, MachineStatus.PAUSED,
                                                            MachineStatus.DONE) or tending.job_state(part, name) == "done"):
            return True  # it runs or ran already: never started twice
        if not self.desc.names_jobs and tending.job_state(part, name) == "started" and state.job is None:
            self.fail_machine(f"it cannot name its jobs, and this cell's ledger has job {part} started on it before "
                              f"the cell restarted: check whether the part was machined; Unhold runs the job again")
            return False
        if state.job == part and not ours and (state.busy or state.status == MachineStatus.DONE):
            self.fail_machine(f"it shows job {part} {state.status.value}, which this cell's ledger never started (a "
                              f"job of another run or ledger): clear the machine and its station")
            return False
        here = tending.occupant(self.desc.station)
        if state.status == MachineStatus.DONE and here is None:
            self.ask(self.tended.clear)  # a finished job's part was taken out before its done was acknowledged
            return False
        if not self.available(state):
            return False
        if state.status == MachineStatus.DONE:
            self.fail_machine(f"job {state.job}'s part waits on {self.desc.station}: unload it first")
            return False
        if self.desc.takes is None:  # it makes the part: the bed must be clear, and the part is ours from now
            if here is not None:
                self._finish("fail", f"{self.desc.station} of machine {name} is not clear: {here} rests there")
                return False
            tending.printing(part, name, self.desc.makes)
        elif here != part:
            self._finish("fail", f"part {part} is not in machine {name}'s {self.desc.station} (found {here})")
            return False
        tending.job(part, name, "started")
        return self.ask(self.tended.start_job, part, self.params.program, self.params.params)

    def poll_started(self) -> bool:
        state = self.tended.state()
        if state.job == self.part and state.status in (MachineStatus.RUNNING, MachineStatus.DONE):
            return True
        self.available(state)
        return False
