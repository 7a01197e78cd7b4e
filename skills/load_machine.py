"""load_machine: put the held part into a machine's fixture (a CNC's vice), as place does on a
station, once the machine lets the robot in.

open (its door opened; the interlock: no job running, spindle, heater and clamp off) → approach → descend →
release (the part is IN_MACHINE in the ledger from here) → retreat. The fixture must be clear, by
the sensor or the ledger — never by the machine's word."""

from __future__ import annotations

from cellctl.skills.place import Place, PlaceMotion
from cellctl.skills.registry import register
from cellctl.skills.tending import MachineParams, Tends


class LoadMachineParams(PlaceMotion, MachineParams):
    pass


@register
class LoadMachine(Tends, Place):
    name = "load_machine"
    Params = LoadMachineParams
    steps = ["open", *Place.steps]

    def setup(self) -> None:
        self.bind()
        self.part_id = self.driver.gripper_state().part_id
        self.station = self.desc.station if self.desc is not None else "?"

    def preconditions(self) -> list[tuple[str, bool]]:
        found = self.ctx.tending.occupant(self.station) if self.ctx.tending and self.desc else None
        return [*self.machine_preconditions(), *super().preconditions(),
                (f"machine {self.params.machine}'s station {self.station} is clear (found {found})", found is None)]

    def poll_open(self) -> bool:
        return self.reach_in()

    def check_release(self) -> str | None:
        problem = super().check_release()
        if problem is None:
            self.ctx.tending.loaded(self.part, self.params.machine)
        return problem
