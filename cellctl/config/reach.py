"""Can each cell's robot reach its stations, and would its tool touch the part there? IK for the
grip and hover poses over the take and give stations, as the pick and place skills will ask for
them, then forward kinematics of the solution: where the configured TCP ends up against the part's
top (``cellctl check``; loads URDFs)."""

from __future__ import annotations

from dataclasses import dataclass, field

from cellctl.config.line import LineConfig
from cellctl.drivers.errors import Unreachable
from cellctl.drivers.geometry import facing
from cellctl.drivers.description import describe_from_config
from cellctl.drivers.planning import kinematics_for
from cellctl.drivers.types import Pose
from cellctl.drivers.robot_config import Problem

GRIP_GAP, HOVER = 0.005, 0.10  # the pick / place skills' defaults
TOUCH_TOLERANCE = 0.005  # m: a solution whose TCP ends further from the grip pose would miss the part


@dataclass
class Reach:
    problems: list[Problem] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # per cell and station, for a person


def check_reach(config: LineConfig) -> Reach:
    found = Reach()
    height = max(t.size[2] for t in config.part_types.values())
    for name, cell in config.cells.items():
        if cell.robot not in config.robots:
            continue
        robot = config.robots[cell.robot]
        desc = describe_from_config(cell.robot, robot)
        kin = kinematics_for(desc)
        try:
            reference = kin.fk(robot.home_position)
            tended = [(m, config.machines[m].station) for m in cell.machines if m in config.machines]
            for key, station_name in [("take", cell.take), ("give", cell.give), *tended]:
                station = config.stations.get(station_name)
                if station is not None and (key in ("take", "give") or station_name not in (cell.take, cell.give)):
                    _station(found, kin, reference, desc.base, robot.home_position, name, cell.robot, key,
                             station_name, station.position, height)
        finally:
            kin.close()
    return found


def _station(found: Reach, kin, reference: Pose, base: Pose, seed, cell: str, robot: str, key: str, station: str,
             position, height: float) -> None:
    x, y, z = position
    grip = (x, y, z + height + GRIP_GAP)
    verb, loc = (f"{key}s at", ("cells", cell, key)) if key in ("take", "give") else \
        (f"tends machine {key} at", ("cells", cell, "machines"))
    for target in (grip, (x, y, grip[2] + HOVER)):
        try:
            solution = kin.ik(Pose(target, facing(reference, base, target)), seed)
        except Unreachable as exc:
            found.problems.append(Problem(loc, f"a station robot {robot} can reach", f"{station}: {exc}"))
            return
        if target is grip:
            tcp = kin.fk(solution).position
            miss = max(abs(a - b) for a, b in zip(tcp, grip))
            above = (tcp[2] - (z + height)) * 100
            verdict = ("reaches the grip pose" if miss <= TOUCH_TOLERANCE
                       else f"stops {miss * 100:.1f} cm from the grip pose, missing the part")
            found.lines.append(f"cells.{cell} {verb} {station}: the configured tool {verdict}: TCP {above:.1f} cm "
                               f"above the part's top (the skills' gap {GRIP_GAP * 100:.1f} cm; robots.{robot}.tcp)")
            if miss > TOUCH_TOLERANCE:
                found.problems.append(Problem(loc, f"a grip pose robot {robot}'s tool reaches within "
                                              f"{TOUCH_TOLERANCE * 100:.1f} cm", f"{station}: {miss * 100:.1f} cm off"))
