"""unload_machine: take the part out of a machine once its job is done (a print off the bed, a
machined part out of the vice), as pick does from a station.

open (door; the interlock) → approach → descend → grip (the part is OWNED again in the ledger, of
the type the job made) → lift → clear (the machine's done acknowledged: idle for the next job)."""

from __future__ import annotations

from cellctl.drivers.machine import MachineStatus
from cellctl.skills.pick import Pick, PickMotion
from cellctl.skills.registry import register
from cellctl.skills.tending import MachineParams, Tends


class UnloadMachineParams(PickMotion, MachineParams):
    pass


@register
class UnloadMachine(Tends, Pick):
    name = "unload_machine"
    Params = UnloadMachineParams
    steps = ["open", *Pick.steps, "clear"]

    def setup(self) -> None:
        self.bind()
        self.expect, self.target = self.part, None
        if self.desc is not None:
            self.where = f"in machine {self.params.machine} on {self.desc.station}"
            located = self.ctx.locate(self.part) if self.ctx.locate is not None and self.part else None
            self.target = located or self.ctx.stations.get(self.desc.station)

    def preconditions(self) -> list[tuple[str, bool]]:
        inside = self.ctx.tending.inside(self.params.machine) if self.ctx.tending else None
        return [*self.machine_preconditions(),
                (f"the ledger has part {self.part} inside machine {self.params.machine} (it has {inside})",
                 inside is not None and inside == self.part),
                (f"machine {self.params.machine}'s station is known", self.target is not None),
                ("the gripper holds no part", not self.driver.gripper_state().part_present)]

    def poll_open(self) -> bool:
        state = self.tended.state()
        done = state.job == self.part and state.status == MachineStatus.DONE \
            or self.ctx.tending.job_state(self.part, self.params.machine) == "done"
        if not done and self.available(state):
            self.fail_machine(f"job {self.part} has not finished on it ({state.status.value}"
                              f"{f', job {state.job}' if state.job else ''}): start_job and wait_job come first")
            return False
        return done and self.reach_in()

    def check_grip(self) -> str | None:
        problem = super().check_grip()
        if problem is None:
            self.ctx.tending.unloaded(self.part, self.params.machine, self.desc.makes)
        return problem

    def poll_clear(self) -> bool:
        state = self.tended.state()
        if state.job == self.part and state.status in (MachineStatus.DONE, MachineStatus.FAULT):
            return self.ask(self.tended.clear)
        return True
