"""Scenario files: "this line, these parts, these faults at these sim times, these expectations",
as a partner's CI states them (``cellctl test``; ``docs/scenarios.md``).

    version: 1
    line: ../demo_line.yaml        # relative to the scenario file
    parts: 5
    seed: 1
    faults:
      - {at: 12.0, kill: press}                     # SIGKILL the cell's process
      - {at: 20.0, robot_fault: pack}               # the robot reports a fault: the cell goes Held
      - {at: 25.0, command: {cell: pack, send: [Unhold], when: Held}}
      - {at: 8.0, cut_link: [press, pack], for: 5.0}
    random: {kills: 2, between: [5.0, 30.0]}        # more kills, their times drawn from the seed
    expect: {parts_out: 5, lost: 0, duplicated: 0, within: 180, never: [Aborted], throughput_min: 20}

A malformed scenario is a :class:`~cellctl.config.loader.ConfigError` naming the file, the key, what was
expected and what was found — like a malformed line config, whose own errors it carries.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from cellctl.config.loader import ConfigError, load_config, load_model
from cellctl.config.line import LineConfig
from cellctl.cell.packml import COMMANDS, STATE_NUMBERS
from cellctl.drivers.robot_config import Strict
from cellctl.drivers.machine import MachineFaultKind

MAX_FAULT_TIME = 86_400.0  # sim s
Seconds = Annotated[float, Field(ge=0, le=MAX_FAULT_TIME, allow_inf_nan=False)]


def _all_in(names: list[str], allowed: object, what: str) -> list[str]:
    """``names`` unchanged, or the error a config line shows: what was allowed, and what was not."""
    bad = [n for n in names if n not in allowed]
    if bad:
        raise ValueError(f"{what} ({', '.join(allowed)}), not {bad}")
    return names


class KillFault(Strict):
    at: Seconds
    kill: str = Field(description="the cell whose process gets SIGKILL (the launcher restarts it)")

    def cells(self) -> list[str]:
        return [self.kill]


class RobotFault(Strict):
    at: Seconds
    robot_fault: str = Field(description="the cell whose robot reports a drive fault (the twin's inject_fault)")
    reason: str = Field("scenario robot fault", max_length=200)

    def cells(self) -> list[str]:
        return [self.robot_fault]


class CommandSpec(Strict):
    cell: str
    send: list[str] = Field(min_length=1, max_length=20)
    when: str | None = Field(None, description="wait (from `at` on) until the cell is in this PackML state, "
                                               "as an operator who sees the Held lamp and presses Unhold")

    @field_validator("when")
    @classmethod
    def _state(cls, when: str | None) -> str | None:
        if when is not None and when not in STATE_NUMBERS:
            raise ValueError(f"a PackML state ({', '.join(STATE_NUMBERS)})")
        return when

    @field_validator("send")
    @classmethod
    def _packml(cls, send: list[str]) -> list[str]:
        return _all_in(send, COMMANDS, "PackML commands")


class CommandFault(Strict):
    at: Seconds
    command: CommandSpec

    def cells(self) -> list[str]:
        return [self.command.cell]


class CutLinkFault(Strict):
    at: Seconds
    cut_link: tuple[str, str] = Field(description="two neighbouring cells: their handoff link is down")
    duration: float = Field(alias="for", gt=0, le=3600, allow_inf_nan=False, description="sim s")

    def cells(self) -> list[str]:
        return list(self.cut_link)


class MachineFault(Strict):
    at: Seconds
    machine_fault: str = Field(description="a machine of the line (the twin's machine_fault)")
    fault: MachineFaultKind = Field(
        description="fail: its alarm (the job lost); offline / online; pause / resume: its own operator; stall: "
                    "the job runs and never gets further")
    reason: str = Field("scenario machine fault", max_length=200)

    def cells(self) -> list[str]:
        return []


def _fault_kind(value: object) -> str | None:
    if isinstance(value, dict):
        return next((k for k in ("kill", "robot_fault", "command", "cut_link", "machine_fault") if k in value), None)
    return None


Fault = Annotated[Annotated[KillFault, Tag("kill")] | Annotated[RobotFault, Tag("robot_fault")]
                  | Annotated[CommandFault, Tag("command")] | Annotated[CutLinkFault, Tag("cut_link")]
                  | Annotated[MachineFault, Tag("machine_fault")],
                  Discriminator(_fault_kind, custom_error_type="fault_kind",
                                custom_error_message="one of kill, robot_fault, command, cut_link or machine_fault "
                                                     "(with at)")]


class RandomFaults(Strict):
    """Kills at times drawn from the scenario's seed: the same seed, the same times."""

    kills: int = Field(0, ge=0, le=100)
    between: tuple[Seconds, Seconds] = (5.0, 60.0)

    @model_validator(mode="after")
    def _ordered(self) -> RandomFaults:
        if self.between[0] > self.between[1]:
            raise ValueError(f"between: [earliest, latest] sim times, earliest first; found {list(self.between)}")
        return self


class Expect(Strict):
    """Every key is optional: a scenario checks what it names."""

    parts_out: int | None = Field(None, ge=0)
    lost: int | None = Field(None, ge=0)
    duplicated: int | None = Field(None, ge=0)
    stranded: int | None = Field(None, ge=0)
    within: float | None = Field(None, gt=0, allow_inf_nan=False, description="sim s: the line finished by then")
    never: list[str] = Field(default_factory=list, description="PackML states no cell may enter")
    throughput_min: float | None = Field(None, gt=0, allow_inf_nan=False, description="parts out per hour of sim time")

    @field_validator("never")
    @classmethod
    def _states(cls, never: list[str]) -> list[str]:
        return _all_in(never, STATE_NUMBERS, "PackML states")


class Scenario(Strict):
    version: Literal[1]
    line: str = Field(description="the line config, relative to the scenario file")
    parts: int = Field(ge=1, le=10_000)
    seed: int = 0
    faults: list[Fault] = Field(default_factory=list, max_length=1000)
    random: RandomFaults | None = None
    expect: Expect
    timeout: float = Field(600.0, gt=0, le=86_400, description="wall s before the run is given up")
    description: str = Field("", max_length=2000)


class LoadedScenario:
    """A valid scenario with its file, its line config and its faults in time order (the
    seed's random kills included)."""

    def __init__(self, path: Path, spec: Scenario, line_path: Path, line: LineConfig) -> None:
        self.path, self.spec, self.line_path, self.line = path, spec, line_path, line
        self.name = path.stem
        drawn = random.Random(spec.seed)
        extra = [KillFault(at=round(drawn.uniform(*spec.random.between), 3), kill=drawn.choice(sorted(line.cells)))
                 for _ in range(spec.random.kills)] if spec.random else []
        self.faults = sorted([*spec.faults, *extra], key=lambda f: f.at)


def _cross_check(spec: Scenario, line: LineConfig) -> list[tuple[tuple, str, object]]:
    problems = []
    for i, fault in enumerate(spec.faults):
        for cell in fault.cells():
            if cell not in line.cells:
                problems.append((("faults", i), f"a cell of the line ({', '.join(line.cells)})", cell))
        if isinstance(fault, MachineFault) and fault.machine_fault not in line.machines:
            problems.append((("faults", i, "machine_fault"), f"a machine of the line ({', '.join(line.machines) or 'none'})",
                             fault.machine_fault))
        if isinstance(fault, CutLinkFault) and all(c in line.cells for c in fault.cut_link):
            a, b = fault.cut_link
            if line.cells[a].downstream != b and line.cells[b].downstream != a:
                problems.append((("faults", i, "cut_link"), "two neighbours (one downstream of the other)",
                                 list(fault.cut_link)))
    if line.twin.mode != "lockstep":
        problems.append((("line",), "a line config in lockstep (twin.mode: lockstep): scenarios are deterministic",
                         f"twin.mode {line.twin.mode!r}"))
    return problems


def load_scenario(path: str | Path) -> LoadedScenario:
    path = Path(path)
    spec: Scenario = load_model(path, Scenario, "a scenario: a mapping with version, line, parts and expect",
                                "the scenario format version (1)")
    line_path = (path.resolve().parent / spec.line).resolve()
    line = load_config(line_path)  # its ConfigError names the line config's own file
    problems = _cross_check(spec, line)
    if problems:
        raise ConfigError([f"{path}: {'.'.join(map(str, loc))}: expected {expected}, found {found!r}"
                           for loc, expected, found in problems])
    return LoadedScenario(path, spec, line_path, line)

