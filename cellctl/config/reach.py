"""Can each cell's robot reach its stations? IK for the grip and hover poses over the take and
give stations, as the pick and place skills will ask for them (``cellctl check``; loads URDFs)."""

from __future__ import annotations

from cellctl.config.line import LineConfig
from cellctl.drivers.errors import Unreachable
from cellctl.drivers.geometry import facing
from cellctl.drivers.description import describe_from_config
from cellctl.drivers.planning import kinematics_for
from cellctl.drivers.types import Pose
from cellctl.drivers.robot_config import Problem

GRIP_GAP, HOVER = 0.005, 0.10  # the pick / place skills' defaults


def reach_problems(config: LineConfig) -> list[Problem]:
    found: list[Problem] = []
    height = max(t.size[2] for t in config.part_types.values())
    for name, cell in config.cells.items():
        if cell.robot not in config.robots:
            continue
        robot = config.robots[cell.robot]
        desc = describe_from_config(cell.robot, robot)
        base = desc.base
        kin = kinematics_for(desc)
        try:
            reference = kin.fk(robot.home_position)
            for key in ("take", "give"):
                station = config.stations.get(getattr(cell, key))
                if station is None:
                    continue
                x, y, z = station.position
                for dz in (height + GRIP_GAP, height + GRIP_GAP + HOVER):
                    target = (x, y, z + dz)
                    try:
                        kin.ik(Pose(target, facing(reference, base, target)), robot.home_position)
                    except Unreachable as exc:
                        found.append(Problem(("cells", name, key), f"a station robot {cell.robot} can reach",
                                             f"{getattr(cell, key)}: {exc}"))
                        break
        finally:
            kin.close()
    return found
