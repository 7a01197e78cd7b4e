"""A robot's description from its config and URDF, for drivers that have no twin to ask
(``RosDriver``) and for ``cellctl check``. The twin builds the same from its loaded body."""

from __future__ import annotations

import pybullet as pb
import pybullet_data

from drivers.types import Pose, RobotDescription
from twin.config import RobotConfig


def urdf_limits(urdf: str, joints: tuple[str, ...]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    client = pb.connect(pb.DIRECT)
    try:
        pb.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=client)
        body = pb.loadURDF(urdf, useFixedBase=True, physicsClientId=client)
        info = [pb.getJointInfo(body, j, physicsClientId=client) for j in range(pb.getNumJoints(body, physicsClientId=client))]
        by_name = {i[1].decode(): i for i in info}
        return tuple(by_name[n][8] for n in joints), tuple(by_name[n][9] for n in joints)
    finally:
        pb.disconnect(client)


def describe_from_config(name: str, cfg: RobotConfig) -> RobotDescription:
    lower, upper = urdf_limits(cfg.spec.urdf, cfg.spec.joints)
    box = cfg.workspace_box
    return RobotDescription(
        name=name, model=cfg.model, urdf=cfg.spec.urdf, joint_names=cfg.spec.joints, lower=lower, upper=upper,
        max_velocity=cfg.velocity_limits, max_acceleration=cfg.acceleration_limits,
        base=Pose(cfg.base.position, cfg.base.orientation), tcp_link=cfg.tcp_link, tcp_offset=cfg.tcp_offset,
        workspace_min=box.min, workspace_max=box.max, home=tuple(float(v) for v in cfg.home_position),
        io_names=tuple(sorted(cfg.io)),
    )
