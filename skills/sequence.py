"""A sequence of skills with a per-step failure policy: enough to write "pick, process, place" in
YAML.

    - skill: pick
      params: {station: infeed}
      retry: 1                      # run it again once before the policy applies
    - skill: wait
      params: {seconds: 2.0}
    - skill: place
      params: {station: outfeed}
      on_failure: {recover: {skill: move_joints, params: {positions: [0, 0.5, 0, -1.2, 0, 1.4, 0]}}}

``on_failure``: ``fail`` (default: the sequence fails), ``skip`` (go on with the next step), or
``{recover: STEP}`` (run STEP; if it succeeds go on, else the sequence fails). Every step is
validated (skill known, parameters valid) when the sequence is built, before anything moves.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from cellctl.skills.base import Skill, SkillParameterError, SkillResult, SkillStatus
from cellctl.skills.context import SkillContext
from cellctl.skills.events import make_event
from cellctl.skills.registry import get


class StepCall(BaseModel):
    model_config = ConfigDict(extra="forbid")
    skill: str
    params: dict = Field(default_factory=dict)


class Recover(BaseModel):
    model_config = ConfigDict(extra="forbid")
    recover: StepCall


class Step(StepCall):
    retry: int = Field(0, ge=0)
    on_failure: Literal["fail", "skip"] | Recover = "fail"


def _check(call: StepCall, where: str) -> None:
    try:
        get(call.skill).validate(call.params)
    except (KeyError, SkillParameterError) as exc:
        raise SkillParameterError(f"{where}: {exc}") from None


def step_problems(steps: list[dict]) -> list[tuple[int, str]]:
    """(index, message) for every invalid step, without running anything (``cellctl check``)."""
    problems = []
    for i, raw in enumerate(steps):
        try:
            step = Step.model_validate(raw)
            _check(step, step.skill)
            if isinstance(step.on_failure, Recover):
                _check(step.on_failure.recover, "recovery")
        except (ValueError, SkillParameterError) as exc:
            problems.append((i, str(exc).splitlines()[0]))
    return problems


class SkillSequence:
    def __init__(self, ctx: SkillContext, steps: list[Step | dict]) -> None:
        self.ctx = ctx
        self.steps = [s if isinstance(s, Step) else Step.model_validate(s) for s in steps]
        for i, step in enumerate(self.steps):
            _check(step, f"step {i} ({step.skill})")
            if isinstance(step.on_failure, Recover):
                _check(step.on_failure.recover, f"step {i} recovery")
        self.index = 0
        self.attempt = 0
        self.recovering = False
        self.result: SkillResult | None = None
        self.current: Skill | None = None

    def _start(self, call: StepCall) -> None:
        self.current = get(call.skill)(self.ctx, call.params)
        self.ctx.emit(make_event("step", self.ctx.now(), index=self.index, skill=call.skill,
                                 attempt=self.attempt, recovery=self.recovering))

    def tick(self) -> SkillResult | None:
        if self.result is not None:
            return self.result
        if self.current is None:
            if self.index >= len(self.steps):
                self.result = SkillResult(SkillStatus.SUCCEEDED)
                return self.result
            self._start(self.steps[self.index])
        outcome = self.current.tick()
        if outcome is not None:
            self._after(outcome)
        return self.result

    def _after(self, outcome: SkillResult) -> None:
        step = self.steps[self.index]
        self.current = None
        if outcome.status is SkillStatus.CANCELLED:
            self.result = outcome
        elif outcome.link_lost or outcome.machine:  # no retry or recovery helps while the robot cannot be
            # reached, nor against a machine's alarm (an operator deals with it at the machine)
            self.result = SkillResult(SkillStatus.FAILED, f"step {self.index} ({step.skill}) failed: {outcome.reason}",
                                      link_lost=outcome.link_lost, machine=outcome.machine)
        elif self.recovering:
            self.recovering = False
            if outcome.ok:
                self._next()
            else:
                self.result = SkillResult(SkillStatus.FAILED, f"step {self.index} recovery ({step.on_failure.recover.skill}) "
                                                              f"failed: {outcome.reason}")
        elif outcome.ok:
            self._next()
        elif self.attempt < step.retry:
            self.attempt += 1
        elif step.on_failure == "skip":
            self._next()
        elif isinstance(step.on_failure, Recover):
            self.recovering = True
            self._start(step.on_failure.recover)
        else:
            self.result = SkillResult(SkillStatus.FAILED, f"step {self.index} ({step.skill}) failed: {outcome.reason}")

    def _next(self) -> None:
        self.index += 1
        self.attempt = 0

    def wake_hint(self) -> float | None:
        return self.current.wake_hint() if self.current is not None else None

    def blocked(self) -> str | None:
        """Why the running step waits on something outside the cell (see ``Skill.blocked``)."""
        return self.current.blocked() if self.current is not None and self.current.result is None else None

    def cancel(self) -> None:
        if self.current is not None:
            self.current.cancel()
            self._after(self.current.result)
        elif self.result is None:
            self.result = SkillResult(SkillStatus.CANCELLED, "cancelled")
