"""wait_job: wait until the machine's job for the cell's part is done.

The cell stays in Execute while the job runs (the feedback carries the machine's progress); while
the machine is paused at its panel or offline the skill waits and says why (the cell is Suspended);
the machine's alarm fails it (Held, with the machine's reason). A job that never ends fails at a
deadline of running time — ``expected`` (or the machine's own estimate) × ``margin`` + ``grace`` —
counted only while the machine reports it running, so a pause at the machine does not count, and
in the machine's own time (a real printer's seconds are wall seconds, whatever the twin's rate)."""

from __future__ import annotations

from pydantic import Field

from cellctl.drivers.machine import MachineStatus
from cellctl.skills.base import Feedback
from cellctl.skills.registry import register
from cellctl.skills.tending import MachineParams, Tends

POLL_S = 0.5  # driver s between looks at the machine while its job runs


class WaitJobParams(MachineParams):
    timeout: float = Field(7 * 86_400.0, gt=0, description="overall deadline in driver time (s); the job's own "
                                                           "deadline is the running time below")
    expected: float | None = Field(None, gt=0, description="s the job takes; default: the machine's own estimate")
    margin: float = Field(1.5, ge=1, description="the job may run this many times its expected time")
    grace: float = Field(10.0, ge=0, description="s of running time beyond expected × margin")


@register
class WaitJob(Tends):
    name = "wait_job"
    Params = WaitJobParams
    steps = ["waiting"]

    def setup(self) -> None:
        self.bind()
        self.ran, self.seen, self.progress = 0.0, None, 0.0

    def preconditions(self) -> list[tuple[str, bool]]:
        return self.machine_preconditions()

    @property
    def feedback(self) -> Feedback:
        return Feedback(self.state, self.progress) if self.state == "waiting" else super().feedback

    def poll_waiting(self) -> bool:
        name, part = self.params.machine, self.part
        state = self.tended.state()
        now = state.at  # the machine's own time: a real printer's job runs in wall time, whatever the twin's rate
        if state.status != MachineStatus.OFFLINE and (state.job != part or state.status == MachineStatus.IDLE):
            if self.ctx.tending.job_state(part, name) == "done":
                return True  # done and acknowledged before a restart
            self.fail_machine(f"job {part} is not running: the machine is {state.status.value}"
                              f"{f' with job {state.job}' if state.job else ''}"
                              f"{f' ({state.reason})' if state.reason else ''}")
            return False
        if state.status == MachineStatus.DONE:
            self.ctx.tending.job(part, name, "done")
            return True
        if not self.available(state):
            self.seen = None
            return False
        if self.seen is not None:
            self.ran += now - self.seen
        self.seen, self.progress = now, state.progress or self.progress
        expected = self.params.expected or state.expected
        if expected is not None and self.ran > expected * self.params.margin + self.params.grace:
            self.fail_machine(f"job {part} not done after {self.ran:.0f} s running (expected {expected:g} s; "
                              f"progress {self.progress:.0%})")
            return False
        return False

    def wake_hint(self) -> float | None:
        return self.ctx.now() + POLL_S if self.state == "waiting" and self.result is None else None
