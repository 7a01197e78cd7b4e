"""The cell controller: PackML decides which state the cell is in; this module decides what each
state does, one non-blocking tick per control period.

In Execute the cell runs its recipe per part: take (pick from the take station) → the recipe's
steps → give (place on the give station). A skill failure or driver fault takes the cell to Held
(Execute → Hold is always legal); never a silent retry loop. Unhold re-plans from the physical
state: a part still in the gripper is not picked again. Execute ends (→ Completing) when the work
order is done.
"""

from __future__ import annotations

from collections.abc import Callable

from cellctl.line_config import CellConfig
from cellctl.packml import PackML
from drivers.contract import Motion, RobotDriver
from drivers.errors import DriverError
from skills.context import SkillContext
from skills.events import EventSink, make_event
from skills.sequence import SkillSequence


class Cell:
    def __init__(self, name: str, cfg: CellConfig, ctx: SkillContext, occupant: Callable[[str], str | None],
                 events: EventSink, parts: int | None = None) -> None:
        self.name, self.cfg, self.ctx = name, cfg, ctx
        self.driver: RobotDriver = ctx.driver
        self.occupant = occupant  # station -> id of the part resting on it, or None
        self.events = events
        self.work_order = parts if parts is not None else cfg.parts
        self.parts_done = 0
        self.part: str | None = None  # the part in this cell's custody
        self.sequence: SkillSequence | None = None
        self.fault: str | None = None
        self._action: Motion | None = None
        self.packml = PackML(self._on_change)

    # -- status ------------------------------------------------------------------------------
    @property
    def state(self) -> str:
        return self.packml.state

    def status(self) -> dict:
        skill = self.sequence.current.name if self.sequence and self.sequence.current else None
        return {"cell": self.name, "state": self.state, "state_number": self.packml.state_number,
                "skill": skill, "parts_done": self.parts_done, "work_order": self.work_order,
                "part": self.part, "fault": self.fault}

    def _emit(self, kind: str, **fields: object) -> None:
        self.events.emit(make_event(kind, self.driver.now(), cell=self.name, **fields))

    def _on_change(self, source: str, dest: str, event: str) -> None:
        self._emit("packml", source=source, dest=dest, event=event, state_number=self.packml.state_number)

    # -- commands ----------------------------------------------------------------------------
    def command(self, command: str) -> None:
        """A PackML command from the control socket or the launcher (CommandRefused if illegal)."""
        self.packml.command(command)
        if command in ("Stop", "Abort", "Hold"):
            self._halt()

    def _halt(self) -> None:
        """Stop whatever moves; the part stays where it is (in the gripper, if held)."""
        if self.sequence is not None:
            self.sequence.cancel()
            self.sequence = None
        self._action = None
        try:
            self.driver.stop()
        except DriverError as exc:
            self._emit("fault", reason=f"stop failed: {exc}")

    # -- tick --------------------------------------------------------------------------------
    def wake_hint(self) -> float | None:
        return self.sequence.wake_hint() if self.sequence is not None else None

    def tick(self) -> None:
        state = self.state
        try:
            if state == "Execute":
                self._execute()
            elif state == "Resetting":
                self._resetting()
            elif self.packml.acting:
                self._halt() if state in ("Stopping", "Aborting", "Holding") else None
                self.packml.complete()
        except DriverError as exc:
            self._fail(f"{type(exc).__name__}: {exc}")

    def _fail(self, reason: str) -> None:
        self.fault = reason
        self._emit("fault", reason=reason)
        self._halt()
        if "Hold" in self.packml.allowed():
            self.packml.command("Hold")
        else:
            self.packml.command("Abort")

    def _resetting(self) -> None:
        """Home the robot; Idle when it is there. Faults are cleared here, not silently earlier."""
        if self._action is None:
            self.fault = None
            self._action = self.driver.move_joints([list(self.driver.describe().home)], speed=0.5)
            return
        status = self._action.status
        if status.done:
            self._action = None
            if status.value != "succeeded":
                self._fail(f"homing {status.value}")
            else:
                self.packml.complete()

    def _execute(self) -> None:
        if self.sequence is None and not self._plan():
            return
        result = self.sequence.tick()
        if result is None:
            return
        self.sequence = None
        if not result.ok:
            self._fail(f"part {self.part}: {result.reason}")
            return
        self._emit("part_done", part=self.part)
        self.parts_done += 1
        self.part = None

    def _plan(self) -> bool:
        """Start the next part's run, from the physical state; False while there is nothing to do."""
        if self.work_order is not None and self.parts_done >= self.work_order:
            self.packml.complete()
            return False
        held = self.driver.gripper_state()
        take = [{"skill": "pick", "params": {"station": self.cfg.take}}]
        if held.part_present:
            self.part, take = held.part_id, []  # resuming after Held: the part is still in the gripper
        else:
            self.part = self.occupant(self.cfg.take)
            if self.part is None:
                return False  # starved: wait for a part
        steps = take + list(self.cfg.recipe) + [{"skill": "place", "params": {"station": self.cfg.give}}]
        self.sequence = SkillSequence(self.ctx, steps)
        self._emit("part_start", part=self.part, resumed=not take)
        return True
