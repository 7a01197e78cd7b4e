"""Forward and inverse kinematics from the URDF, shared by every driver and by the twin.

Each :class:`Kinematics` owns a private PyBullet DIRECT client (never the simulation's), so IK
never disturbs physics and two robots never share state. PyBullet's IK never says "unreachable":
here a target is unreachable when, after the iterations, the FK residual exceeds the tolerance or
the solution leaves the joint limits.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from cellctl.drivers.bullet import pb

from cellctl.drivers.errors import Unreachable
from cellctl.drivers.types import Pose
from cellctl.drivers.urdf import by_name, link_indices, open_client, read_joints

POSITION_TOLERANCE = 1e-3  # m
ORIENTATION_TOLERANCE = 1e-2  # rad
_IK_ROUNDS = 30


def quat_angle(q1: Sequence[float], q2: Sequence[float]) -> float:
    """Angle (rad) of the rotation between two unit quaternions."""
    dot = abs(float(np.dot(q1, q2)))
    return 2.0 * float(np.arccos(min(1.0, dot)))


class Kinematics:
    def __init__(
        self,
        urdf: str,
        base: Pose,
        tcp_link: str,
        tcp_offset: Sequence[float],
        joint_names: Sequence[str],
        lower: Sequence[float],
        upper: Sequence[float],
    ) -> None:
        self._client = open_client()
        self.base = base
        self._body = pb.loadURDF(
            urdf, base.position, base.orientation, useFixedBase=True, physicsClientId=self._client
        )
        info = read_joints(self._client, self._body)
        named = by_name(info)
        self._joints = [named[n].index for n in joint_names]
        self._tcp = link_indices(info)[tcp_link]
        self._offset = np.asarray(tcp_offset, dtype=float)
        movable = [j for j in info if j.movable]
        slots = {j.index: slot for slot, j in enumerate(movable)}
        self._ik_slots = [slots[j] for j in self._joints]
        # IK wants limits for every movable joint; unconfigured ones (fingers) keep the URDF's.
        lo = [j.lower for j in movable]
        hi = [j.upper for j in movable]
        for slot, l, h in zip(self._ik_slots, lower, upper):
            lo[slot], hi[slot] = l, h
        self._lo, self._hi = lo, hi
        self._lower, self._upper = np.asarray(lower), np.asarray(upper)
        self._rest = [0.5 * (a + b) for a, b in zip(lo, hi)]

    def close(self) -> None:
        if self._client >= 0:
            pb.disconnect(self._client)
            self._client = -1

    def to_world(self, pose: Pose) -> Pose:
        if pose.frame == "world":
            return pose
        if pose.frame != "base":
            raise ValueError(f"unknown frame {pose.frame!r}: expected 'world' or 'base'")
        pos, orn = pb.multiplyTransforms(self.base.position, self.base.orientation, pose.position, pose.orientation)
        return Pose(tuple(pos), tuple(orn))

    def _set(self, q: Sequence[float]) -> None:
        for j, v in zip(self._joints, q):
            pb.resetJointState(self._body, j, float(v), physicsClientId=self._client)

    def fk(self, q: Sequence[float]) -> Pose:
        """World pose of the TCP at joint positions ``q``."""
        self._set(q)
        state = pb.getLinkState(self._body, self._tcp, computeForwardKinematics=True, physicsClientId=self._client)
        pos, orn = pb.multiplyTransforms(state[4], state[5], self._offset, (0, 0, 0, 1))
        return Pose(tuple(pos), tuple(orn))

    def ik(self, pose: Pose, seed: Sequence[float]) -> np.ndarray:
        """Joint positions putting the TCP at ``pose``; raises Unreachable with the residual."""
        target = self.to_world(pose)
        rot = np.asarray(pb.getMatrixFromQuaternion(target.orientation)).reshape(3, 3)
        link_pos = np.asarray(target.position) - rot @ self._offset
        q = np.asarray(seed, dtype=float)
        rest = list(self._rest)
        for slot, v in zip(self._ik_slots, q):
            rest[slot] = float(v)
        pos_err = orn_err = float("inf")
        for round_ in range(_IK_ROUNDS):
            # The first round uses the null space (limits, rest pose = seed) for a posture near the
            # seed; later rounds refine from there with plain damped least squares, which
            # converges where the null-space solver stalls a few mm short.
            self._set(q)
            nullspace = dict(lowerLimits=self._lo, upperLimits=self._hi,
                             jointRanges=[h - l for l, h in zip(self._lo, self._hi)], restPoses=rest) if round_ == 0 else {}
            sol = pb.calculateInverseKinematics(
                self._body, self._tcp, link_pos.tolist(), target.orientation, maxNumIterations=200,
                residualThreshold=1e-7, physicsClientId=self._client, **nullspace,
            )
            raw = np.asarray([sol[s] for s in self._ik_slots])
            q = np.clip(raw, self._lower, self._upper)  # project back into the limits, then refine
            reached = self.fk(q)
            pos_err = float(np.linalg.norm(np.subtract(reached.position, target.position)))
            orn_err = quat_angle(reached.orientation, target.orientation)
            if pos_err < POSITION_TOLERANCE and orn_err < ORIENTATION_TOLERANCE:
                break
        if pos_err >= POSITION_TOLERANCE or orn_err >= ORIENTATION_TOLERANCE:
            raise Unreachable(
                f"no joint solution for TCP at {_fmt(target.position)}: residual {pos_err * 1000:.1f} mm, "
                f"{np.degrees(orn_err):.1f} deg (tolerance {POSITION_TOLERANCE * 1000:.0f} mm, "
                f"{np.degrees(ORIENTATION_TOLERANCE):.1f} deg)"
            )
        return q


def _fmt(v: Sequence[float]) -> str:
    return "(" + ", ".join(f"{x:.3f}" for x in v) + ")"
