"""The one place a :class:`RobotDescription` is built from a robot's config and its URDF: for the
drivers (``RosDriver`` has no twin to ask), for ``cellctl check`` and for the twin's simulated
robot, so every side plans against the same limits."""

from __future__ import annotations

from cellctl.drivers.robot_config import RobotConfig
from cellctl.drivers.types import Pose, RobotDescription
from cellctl.drivers.urdf import by_name, load_joints


def describe_from_config(name: str, cfg: RobotConfig) -> RobotDescription:
    joints = by_name(load_joints(cfg.spec.urdf))
    box = cfg.workspace_box
    return RobotDescription(
        name=name, model=cfg.kind, urdf=cfg.spec.urdf, joint_names=cfg.spec.joints,
        lower=tuple(joints[n].lower for n in cfg.spec.joints), upper=tuple(joints[n].upper for n in cfg.spec.joints),
        max_velocity=cfg.velocity_limits, max_acceleration=cfg.acceleration_limits,
        base=Pose(cfg.base.position, cfg.base.orientation), tcp_link=cfg.tcp_link, tcp_offset=cfg.tcp_offset,
        workspace_min=box.min, workspace_max=box.max, home=tuple(float(v) for v in cfg.home_position),
        io_names=tuple(sorted(cfg.io)),
    )
