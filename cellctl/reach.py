"""Can each cell's robot reach its stations? IK for the grip and hover poses over the take and
give stations, as the pick and place skills will ask for them (``cellctl check``; loads URDFs)."""

from __future__ import annotations

import pybullet as pb
import pybullet_data

from cellctl.line_config import LineConfig
from drivers.errors import Unreachable
from drivers.geometry import facing
from drivers.kinematics import Kinematics
from drivers.types import Pose
from twin.config import Problem, RobotConfig

GRIP_GAP, HOVER = 0.005, 0.10  # the pick / place skills' defaults


def _limits(robot: RobotConfig) -> tuple[list[float], list[float]]:
    client = pb.connect(pb.DIRECT)
    try:
        pb.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=client)
        body = pb.loadURDF(robot.spec.urdf, useFixedBase=True, physicsClientId=client)
        info = {pb.getJointInfo(body, j, physicsClientId=client)[1].decode(): pb.getJointInfo(body, j, physicsClientId=client)
                for j in range(pb.getNumJoints(body, physicsClientId=client))}
        return [info[n][8] for n in robot.spec.joints], [info[n][9] for n in robot.spec.joints]
    finally:
        pb.disconnect(client)


def reach_problems(config: LineConfig) -> list[Problem]:
    found: list[Problem] = []
    height = max(t.size[2] for t in config.part_types.values())
    for name, cell in config.cells.items():
        if cell.robot not in config.robots:
            continue
        robot = config.robots[cell.robot]
        base = Pose(robot.base.position, robot.base.orientation)
        lower, upper = _limits(robot)
        kin = Kinematics(robot.spec.urdf, base, robot.tcp_link, robot.tcp_offset, robot.spec.joints, lower, upper)
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
