"""The skill base: a finite-state machine declared as data on ``transitions``, with a lifecycle
owned by the framework (py_trees' habit): ``setup`` → preconditions → ``initialise`` → ``update``
per tick → ``terminate``.

A skill declares ``steps`` (its working states, in order) and optionally extra ``transitions``
rows. On entering a step, ``transitions`` itself calls the skill's ``on_enter_<step>()``, which may
start a motion and keep its handle in ``self.motion``; each tick the framework polls that motion (or
calls ``poll_<step>()`` if the step has no motion) and, when the step is done, runs
``check_<step>()`` (a failure reason or None) and fires ``done``. Nothing blocks: ``tick()``
returns at once. Time is ``driver.now()``: deadlines are in driver time, never wall time. The
diagram is transitions' own (its mermaid graph engine).

    idle --start--> step1 --done--> step2 ... --done--> succeeded
    (any step) --fail--> failed     (any step) --cancel--> cancelled
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from transitions import Machine

from cellctl.drivers.contract import Motion, RobotDriver
from cellctl.drivers.errors import ConnectionLost, DriverError
from cellctl.drivers.types import MotionStatus
from cellctl.skills.context import SkillContext
from cellctl.skills.events import make_event

TERMINAL = ("succeeded", "failed", "cancelled")


class SkillStatus(str, enum.Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class SkillResult:
    status: SkillStatus
    reason: str | None = None
    link_lost: bool = False  # the robot (or the twin) could not be reached: says nothing about the task
    machine: str | None = None  # the tended machine whose alarm or job failed the skill (the cell: Held for it)

    @property
    def ok(self) -> bool:
        return self.status is SkillStatus.SUCCEEDED


@dataclass(frozen=True)
class Feedback:
    state: str
    progress: float  # 0..1, by steps completed


class SkillParameterError(ValueError):
    """A parameter is missing or mistyped; the message names the skill and the parameter."""


class Params(BaseModel):
    """Base of every skill's parameters. ``timeout`` is the deadline in driver seconds."""

    model_config = ConfigDict(extra="forbid")
    timeout: float = Field(60.0, gt=0, description="deadline in driver time (s) from the first tick")


class Skill:
    name: ClassVar[str] = ""
    Params: ClassVar[type[Params]] = Params
    steps: ClassVar[list[str]] = []
    transitions: ClassVar[list[dict]] = []  # extra rows beyond the linear step chain

    def __init__(self, ctx: SkillContext, params: dict | Params | None = None) -> None:
        self.ctx = ctx
        self.driver: RobotDriver = ctx.driver
        self.params = self.validate(params)
        self.motion: Motion | None = None
        self.result: SkillResult | None = None
        self._started_at: float | None = None
        self._ticked = 0.0  # driver time of the last tick
        self._firing = ""  # the trigger being fired (transitions' callbacks take no event data here)
        self.machine = Machine(model=self, states=self.states(), initial="idle", transitions=self.table(),
                               auto_transitions=False, before_state_change="_leaving")

    # -- declaration -------------------------------------------------------------------------
    @classmethod
    def validate(cls, params: dict | Params | None) -> Params:
        if isinstance(params, cls.Params):
            return params
        try:
            return cls.Params.model_validate(params or {})
        except ValidationError as exc:
            problems = "; ".join(f"parameter {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise SkillParameterError(f"skill {cls.name}: {problems}") from None

    @classmethod
    def table(cls) -> list[dict]:
        """The whole transition table: the step chain, fail/cancel from every step, extras."""
        rows = [{"trigger": "start", "source": "idle", "dest": cls.steps[0] if cls.steps else "succeeded"}]
        rows += [{"trigger": "done", "source": a, "dest": b}
                 for a, b in zip(cls.steps, [*cls.steps[1:], "succeeded"])]
        rows += [{"trigger": "fail", "source": ["idle", *cls.steps], "dest": "failed"},
                 {"trigger": "cancel_", "source": ["idle", *cls.steps], "dest": "cancelled"}]
        return rows + list(cls.transitions)

    @classmethod
    def states(cls) -> list[str]:
        return ["idle", *cls.steps, *TERMINAL]

    @classmethod
    def mermaid(cls) -> str:
        """The state diagram, drawn by transitions' mermaid engine from the same table (imported
        here: its extensions bring asyncio, which a cell never needs)."""
        from transitions.extensions import GraphMachine

        graph = GraphMachine(model=_Drawing(), states=cls.states(), initial="idle", transitions=cls.table(),
                             auto_transitions=False, graph_engine="mermaid",
                             title=f"title: skill {cls.name}")  # transitions writes it between --- lines as is
        return graph.get_graph().draw(None)

    # -- lifecycle hooks for subclasses --------------------------------------------------------
    def setup(self) -> None:
        """Once, before the first tick's preconditions (e.g. read the robot description)."""

    def preconditions(self) -> list[tuple[str, bool]]:
        """(description, holds) pairs, checked before anything moves."""
        return []

    def initialise(self) -> None:
        """After the preconditions hold, before the first step."""

    def terminate(self, result: SkillResult) -> None:
        """Once, when the skill ends, whatever the outcome."""

    def blocked(self) -> str | None:
        """Why the skill waits on something outside the cell that is not a failure — a machine
        paused at its own panel, offline, busy with another job — or None. The cell is Suspended
        with this reason meanwhile (PackML: an outside cause) and goes on when it is None again."""
        return None

    # -- framework ---------------------------------------------------------------------------
    @property
    def feedback(self) -> Feedback:
        if self.state in self.steps:
            progress = self.steps.index(self.state) / len(self.steps)
        else:
            progress = 1.0 if self.state == "succeeded" else 0.0
        return Feedback(self.state, progress)

    def wake_hint(self) -> float | None:
        """While a step only waits for its motion, nothing needs a tick before the deadline or an
        event on the robot (which ends the motion): lockstep skips the periods in between."""
        if self.motion is not None and self.result is None:
            return self._started_at + self.params.timeout
        return None

    def tick(self) -> SkillResult | None:
        """Advance by one control period; returns the result once the skill has ended."""
        if self.result is not None:
            return self.result
        try:
            if self.state == "idle":
                self._begin()
                self._ticked = self._started_at
                return self.result
            now = self.ctx.now()
            if self.blocked() is not None:  # time spent waiting on an outside cause is not the skill's
                self._started_at += now - self._ticked
            self._ticked = now
            if now - self._started_at > self.params.timeout:
                self._finish("fail", f"deadline of {self.params.timeout}s exceeded in state {self.state}")
            else:
                self._update()
        except ConnectionLost as exc:
            self._finish("fail", f"{type(exc).__name__} in state {self.state}: {exc}", link_lost=True)
        except DriverError as exc:  # (a machine's refusal names the machine: the failure is the machine's)
            self._halt()
            self._finish("fail", f"{type(exc).__name__} in state {self.state}: {exc}",
                         machine=getattr(exc, "machine", None))
        return self.result

    def cancel(self) -> None:
        """Command the robot to stop now; the gripper keeps its last commanded state, so a held
        part is never dropped by a cancel."""
        if self.result is None:
            self._halt()
            self._finish("cancel_", "cancelled")

    def _begin(self) -> None:
        self._started_at = self.ctx.now()
        self.setup()
        for description, holds in self.preconditions():
            if not holds:
                self._finish("fail", f"precondition failed: {description}")
                return
        self.initialise()
        self._advance("start")

    def _update(self) -> None:
        state = self.state
        if self.motion is not None:
            status = self.motion.status
            if status is MotionStatus.RUNNING:
                return
            if status is not MotionStatus.SUCCEEDED:
                self._finish("fail", f"motion {status.value} in state {state}: {self.motion.reason or ''}",
                             link_lost=self.motion.link_lost)
                return
        elif hasattr(self, f"poll_{state}") and not getattr(self, f"poll_{state}")():
            return  # (a poll may also have ended the skill, through _finish)
        problem = getattr(self, f"check_{state}", lambda: None)()
        if problem:
            self._finish("fail", f"{state}: {problem}")
        else:
            self._advance("done")

    def _fire(self, trigger: str) -> None:
        """Fire a trigger; the transition is recorded before the new step's ``on_enter_`` hook runs."""
        self._firing = trigger
        self.trigger(trigger)

    def _advance(self, trigger: str) -> None:
        self._fire(trigger)
        if self.state == "succeeded":
            self.result = SkillResult(SkillStatus.SUCCEEDED)
            self.terminate(self.result)

    def _leaving(self) -> None:
        source = self.state
        dest = self.machine.get_transitions(self._firing, source)[0].dest
        self.ctx.emit(make_event("skill", self.ctx.now(), skill=self.name, trigger=self._firing.rstrip("_"),
                                 source=source, dest=dest))
        self.motion = None  # the step being left is over; the next one's on_enter_ may start another

    def _halt(self) -> None:
        if self.motion is not None and not self.motion.status.done:
            self.motion.cancel()
        self.driver.stop()

    def _finish(self, trigger: str, reason: str, link_lost: bool = False, machine: str | None = None) -> None:
        if self.state in TERMINAL:
            return
        self._fire(trigger)
        status = SkillStatus.FAILED if trigger == "fail" else SkillStatus.CANCELLED
        self.result = SkillResult(status, reason, link_lost, machine)
        self.terminate(self.result)


class _Drawing:
    """A bare model for drawing a skill's table: a real skill needs a context to exist."""
