"""What the four tending skills (``load_machine``, ``start_job``, ``wait_job``, ``unload_machine``)
share: the machine named in their parameters, the part its job is named after (the cell's current
part), and the gate that tells waiting from failing. A machine paused at its own panel, offline or
busy with another job is an outside cause: the skill waits and says why (the cell is Suspended with
that reason). The machine's alarm is not: the skill fails, blaming the machine (the cell is Held).

A refusal through the machine's API (``MachineError``) fails the skill the same way, with the
machine's words; a link that cannot be reached at all is the driver's ``ConnectionLost`` as for a
robot. A stop through a machine's API is not a safety function (docs/machines.md).
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import Field

from cellctl.drivers.machine import MachineDescription, MachineDriver, MachineError, MachineState, MachineStatus
from cellctl.skills.base import Params, Skill


class MachineParams(Params):
    machine: str = Field(description="a machine this cell tends (one of cells.NAME.machines)")


class Tends(Skill):
    """Base of the tending skills (a mixin before Place or Pick where the robot reaches in)."""

    _blocked: str | None = None

    def bind(self) -> None:
        """In ``setup``: the machine's driver and description, and the part the job is named after."""
        self.tended: MachineDriver | None = self.ctx.machines.get(self.params.machine)
        self.desc: MachineDescription | None = self.tended.describe() if self.tended is not None else None
        self.part: str | None = self.ctx.part

    def machine_preconditions(self) -> list[tuple[str, bool]]:
        return [(f"machine {self.params.machine!r} is tended by this cell (its machines: {sorted(self.ctx.machines)})",
                 self.tended is not None),
                ("the cell keeps custody of parts in its machines", self.ctx.tending is not None),
                ("the cell works on a part (a job is named after it)", self.part is not None)]

    def blocked(self) -> str | None:
        return self._blocked

    def fail_machine(self, reason: str) -> None:
        name = self.params.machine
        said = reason if reason.startswith(f"machine {name}") else f"machine {name}: {reason}"  # (a driver's own words
        self._finish("fail", said, machine=name)                                                # name it already)

    def ask(self, call: Callable[..., None], *args: object) -> bool:
        """A request to the machine; a refusal fails the skill with the machine's words."""
        try:
            call(*args)
        except MachineError as exc:
            self.fail_machine(str(exc))
            return False
        return True

    def available(self, state: MachineState) -> bool:
        """Whether the machine can be worked with now: False while it is unavailable for outside
        reasons (``blocked`` says why) or after its alarm failed the skill."""
        name, why = self.params.machine, None
        if state.status == MachineStatus.OFFLINE:
            why = f"machine {name} is offline ({state.reason or 'it does not answer for itself'})"
        elif state.status == MachineStatus.PAUSED:
            why = f"machine {name}: job {state.job} paused at the machine ({state.reason or 'no reason given'})"
        elif state.status == MachineStatus.RUNNING and state.job != self.part:
            why = f"machine {name} is busy with job {state.job}, not this cell's {self.part}"
        elif state.status == MachineStatus.FAULT:
            if state.job == self.part:
                self.ctx.tending.job(self.part, name, "failed")
            self.fail_machine(f"alarm during job {state.job}: {state.reason or 'no reason given'}")
            return False
        self._blocked = why
        return why is None

    def reach_in(self) -> bool:
        """Poll of the step before a robot enters the machine: the door opened (where it has one),
        then the interlock — no job running, spindle, heater and clamp off — from the machine's state."""
        state = self.tended.state()
        if not self.available(state):
            return False
        if state.door_open is False and not state.busy:
            self.ask(self.tended.set_door, True)
            return False
        why = state.keep_out()
        if why is not None:
            self.fail_machine(f"the robot stays out: {why}")
            return False
        return True
