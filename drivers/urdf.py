"""The one place that reads a URDF's joints and links (PyBullet's ``getJointInfo``), for the robot
description, the kinematics and the twin's simulated robot alike, so all three agree on names,
indices and limits."""

from __future__ import annotations

from dataclasses import dataclass

from cellctl.drivers.bullet import pb
import pybullet_data


@dataclass(frozen=True)
class UrdfJoint:
    index: int
    name: str
    child_link: str
    movable: bool
    lower: float
    upper: float
    max_force: float


def read_joints(client: int, body: int) -> tuple[UrdfJoint, ...]:
    """Every joint of a loaded body, in index order."""
    joints = []
    for j in range(pb.getNumJoints(body, physicsClientId=client)):
        info = pb.getJointInfo(body, j, physicsClientId=client)
        joints.append(UrdfJoint(index=info[0], name=info[1].decode(), child_link=info[12].decode(),
                                movable=info[2] != pb.JOINT_FIXED, lower=info[8], upper=info[9], max_force=info[10]))
    return tuple(joints)


def by_name(joints: tuple[UrdfJoint, ...]) -> dict[str, UrdfJoint]:
    return {j.name: j for j in joints}


def link_indices(joints: tuple[UrdfJoint, ...]) -> dict[str, int]:
    """Link name -> link index (a link's index is that of the joint whose child it is)."""
    return {j.child_link: j.index for j in joints}


def open_client() -> int:
    """A private DIRECT client that finds pybullet_data's models, never a simulation's."""
    client = pb.connect(pb.DIRECT)
    pb.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=client)
    return client


_READ: dict[str, tuple[UrdfJoint, ...]] = {}  # URDF path -> its joints, read once per process


def load_joints(urdf: str) -> tuple[UrdfJoint, ...]:
    """The joints of a URDF file, read once per process: from a body already loaded from it
    (``loaded_joints``), else in a client of their own (a URDF with meshes takes tens of ms to load)."""
    if urdf not in _READ:
        client = open_client()
        try:
            _READ[urdf] = read_joints(client, pb.loadURDF(urdf, useFixedBase=True, physicsClientId=client))
        finally:
            pb.disconnect(client)
    return _READ[urdf]


def loaded_joints(client: int, body: int, urdf: str) -> tuple[UrdfJoint, ...]:
    """``read_joints`` of a body just loaded from ``urdf``, remembered for ``load_joints``."""
    joints = read_joints(client, body)
    _READ.setdefault(urdf, joints)
    return joints
