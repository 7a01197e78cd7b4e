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
from cellctl.drivers.urdf import by_name, link_indices, loaded_joints, open_client
from cellctl.drivers.urdf_chain import MOVABLE, UrdfError, read_frames, resolve

POSITION_TOLERANCE = 1e-3  # m
ORIENTATION_TOLERANCE = 1e-2  # rad
_IK_ROUNDS = 30


def _rpy_matrix(rpy: Sequence[float]) -> np.ndarray:
    """A URDF origin's roll-pitch-yaw (fixed axes x, y, z) as a rotation matrix."""
    return np.asarray(pb.getMatrixFromQuaternion(pb.getQuaternionFromEuler(rpy))).reshape(3, 3)


def _unit(axis: Sequence[float]) -> np.ndarray:
    """A URDF joint axis as a unit vector (a fixed joint's may be all zeros: it is never used)."""
    v = np.asarray(axis, dtype=float)
    norm = np.linalg.norm(v)
    return v / norm if norm > 0 else v


def _axis_rotations(axis: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Rotations by each of ``angles`` about the unit ``axis`` (Rodrigues), N×3×3."""
    k = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    s, c = np.sin(angles)[:, None, None], np.cos(angles)[:, None, None]
    return np.eye(3) + s * k + (1.0 - c) * (k @ k)


def quat_angle(q1: Sequence[float], q2: Sequence[float]) -> float:
    """Angle (rad) of the rotation between two unit quaternions."""
    dot = abs(float(np.dot(q1, q2)))
    return 2.0 * float(np.arccos(min(1.0, dot)))


class Kinematics:
    """IK and FK of one arm. The private PyBullet client is opened at the first ``fk`` or ``ik``:
    the twin checks trajectories with ``tcp_positions`` alone (numpy, no client), so a twin never
    loads a second copy of each robot it serves."""

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
        self._urdf, self._tcp_link, self._joint_names = urdf, tcp_link, list(joint_names)
        self._client = -1
        self.base = base
        self._offset = np.asarray(tcp_offset, dtype=float)
        self._lower, self._upper = np.asarray(lower), np.asarray(upper)
        self._base_rot = np.asarray(pb.getMatrixFromQuaternion(base.orientation)).reshape(3, 3)
        self._frames = self._chain(urdf, tcp_link, joint_names)

    def _load(self) -> None:
        """Open the private client and load the arm, once."""
        if self._client >= 0:
            return
        client = open_client()
        try:
            self._body = pb.loadURDF(
                self._urdf, self.base.position, self.base.orientation, useFixedBase=True, physicsClientId=client
            )
            info = loaded_joints(client, self._body, self._urdf)
            named = by_name(info)
            self._joints = [named[n].index for n in self._joint_names]
            self._tcp = link_indices(info)[self._tcp_link]
        except BaseException:
            pb.disconnect(client)
            raise
        movable = [j for j in info if j.movable]
        slots = {j.index: slot for slot, j in enumerate(movable)}
        self._ik_slots = [slots[j] for j in self._joints]
        # IK wants limits for every movable joint; unconfigured ones (fingers) keep the URDF's.
        lo = [j.lower for j in movable]
        hi = [j.upper for j in movable]
        for slot, l, h in zip(self._ik_slots, self._lower, self._upper):
            lo[slot], hi[slot] = float(l), float(h)
        self._lo, self._hi = lo, hi
        self._rest = [0.5 * (a + b) for a, b in zip(lo, hi)]
        self._client = client

    def tcp_positions(self, qs: np.ndarray) -> np.ndarray:
        """World TCP positions (N×3) at the rows of joint positions ``qs`` (N×dof), all at once:
        the envelope's workspace check of every sample of every trajectory. Multiplies out the
        URDF's joint frames in numpy (~2 µs a sample against ~35 of ``fk``, which sets the joints
        in PyBullet and reads the link); a chain with a joint it does not model (floating,
        planar) goes through ``fk``."""
        qs = np.asarray(qs, dtype=float).reshape(-1, len(self._joint_names))
        if self._frames is None:
            return np.array([self.fk(q).position for q in qs])
        n = len(qs)
        rot = np.broadcast_to(self._base_rot, (n, 3, 3)).copy()
        pos = np.broadcast_to(np.asarray(self.base.position, dtype=float), (n, 3)).copy()
        for origin_xyz, origin_rot, kind, axis, column in self._frames:
            pos += rot @ origin_xyz
            rot = rot @ origin_rot
            if column is None:  # fixed, or a movable joint not configured (a finger): it stays at 0, as in fk
                continue
            q = qs[:, column]
            if kind == "prismatic":
                pos += (rot @ axis) * q[:, None]
            else:
                rot = rot @ _axis_rotations(axis, q)
        return pos + rot @ self._offset

    def _chain(self, urdf: str, tcp_link: str, joint_names: Sequence[str]) -> list | None:
        """The URDF's frames from the root to the TCP link as (origin xyz, origin rotation, kind,
        axis, column of q or None), or None when ``tcp_positions`` cannot multiply them out."""
        try:
            frames = read_frames(resolve(urdf, None), tcp_link)
        except UrdfError:
            return None
        if any(f.kind not in (*MOVABLE, "fixed") for f in frames):
            return None
        columns = {name: i for i, name in enumerate(joint_names)}
        # a prismatic joint moves q times its axis as written (as PyBullet does), a revolute one
        # turns about its axis's direction
        return [(np.asarray(f.xyz), _rpy_matrix(f.rpy), f.kind,
                 np.asarray(f.axis, dtype=float) if f.kind == "prismatic" else _unit(f.axis),
                 columns.get(f.name) if f.kind != "fixed" else None) for f in frames]

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
        self._load()
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
        self._load()
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
