"""A URDF's serial arm read as XML (no physics engine): the movable joints from the root link to a
given link, with their limits. ``cellctl check`` validates a ``urdf:`` robot with it without
starting PyBullet; the drivers and the twin load the same file with PyBullet (``drivers/urdf.py``)."""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pybullet_data

MOVABLE = ("revolute", "prismatic", "continuous")


class UrdfError(ValueError):
    pass


@dataclass(frozen=True)
class ChainJoint:
    name: str
    lower: float
    upper: float
    velocity: float  # the URDF's velocity limit (0 when it gives none)


@dataclass(frozen=True)
class UrdfArm:
    links: tuple[str, ...]
    chain: tuple[ChainJoint, ...]  # movable joints from the root to the tip link


@dataclass(frozen=True)
class ChainFrame:
    """A joint on the way from the root link to a link, as the URDF places it: its origin in the
    parent link's frame and its axis in its own (URDF defaults: no offset, axis x)."""

    name: str
    kind: str  # revolute, continuous, prismatic or fixed (others are not a serial arm's)
    xyz: tuple[float, float, float]
    rpy: tuple[float, float, float]
    axis: tuple[float, float, float]


@functools.lru_cache(maxsize=32)
def _path(path: str, tip: str) -> tuple[tuple[str, ...], tuple[ET.Element, ...]]:
    """The URDF's link names and its joint elements from the root link to ``tip``, root first."""
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise UrdfError(f"no URDF file {path}") from None
    except ET.ParseError as exc:
        raise UrdfError(f"{path} is not a URDF (XML: {exc})") from None
    links = tuple(link.get("name", "") for link in root.findall("link"))
    if tip not in links:
        raise UrdfError(f"no link {tip!r} in {Path(path).name} (links: {', '.join(links)})")
    parent_joint = {}
    for joint in root.findall("joint"):
        child, parent = joint.find("child"), joint.find("parent")
        if child is not None and parent is not None:
            parent_joint[child.get("link")] = (joint, parent.get("link"))
    joints, link, seen = [], tip, set()
    while link in parent_joint and link not in seen:
        seen.add(link)
        joint, link = parent_joint[link]
        joints.append(joint)
    return links, tuple(reversed(joints))


@functools.lru_cache(maxsize=32)
def read_arm(path: str, tip: str) -> UrdfArm:
    """The movable joints on the way from the URDF's root link to ``tip``; UrdfError naming what is
    wrong (no such file, not XML, no such link)."""
    links, joints = _path(path, tip)
    chain = []
    for joint in joints:
        if joint.get("type") in MOVABLE:
            limit = joint.find("limit")
            lower = float(limit.get("lower", "-3.14159")) if limit is not None else -3.14159
            upper = float(limit.get("upper", "3.14159")) if limit is not None else 3.14159
            velocity = float(limit.get("velocity", "0")) if limit is not None else 0.0
            if joint.get("type") == "continuous":
                lower, upper = -3.14159, 3.14159
            chain.append(ChainJoint(joint.get("name", ""), lower, upper, velocity))
    return UrdfArm(links, tuple(chain))


def read_frames(path: str, tip: str) -> tuple[ChainFrame, ...]:
    """Every joint, fixed ones too, from the URDF's root link to ``tip``, root first: what forward
    kinematics multiplies out (``Kinematics.tcp_positions``)."""

    def triple(element: ET.Element | None, key: str, default: str) -> tuple[float, float, float]:
        x, y, z = (float(v) for v in (element.get(key, default) if element is not None else default).split())
        return x, y, z

    return tuple(ChainFrame(j.get("name", ""), j.get("type", ""), triple(j.find("origin"), "xyz", "0 0 0"),
                            triple(j.find("origin"), "rpy", "0 0 0"), triple(j.find("axis"), "xyz", "1 0 0"))
                 for j in _path(path, tip)[1])


def resolve(urdf: str, base_dir: Path | None) -> str:
    """A URDF path as given: relative to the config file's directory when it is there, else as
    PyBullet finds it (absolute, or in pybullet_data)."""
    path = Path(urdf)
    if not path.is_absolute() and base_dir is not None and (base_dir / path).exists():
        return str((base_dir / path).resolve())
    if path.is_absolute() or path.exists():
        return str(path)
    data = Path(pybullet_data.getDataPath()) / path  # the data path only: no physics
    return str(data) if data.exists() else urdf
