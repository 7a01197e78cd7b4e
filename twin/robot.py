"""One simulated robot: URDF body, trajectory execution under position control, its gripper
and IO. Only simulates; deciding what to do is the controllers' job (dm_control's split)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from cellctl.drivers.bullet import pb

from cellctl.drivers.description import describe_from_config
from cellctl.drivers.types import JointState, MotionStatus, Trajectory
from cellctl.drivers.urdf import by_name, link_indices, loaded_joints
from cellctl.drivers.robot_config import RobotConfig
from cellctl.twin.checkpoint import SavedRobot
from cellctl.twin.config import TwinConfig
from cellctl.twin.gripper import SuctionGripper
from cellctl.twin.parts import Parts


@dataclass
class SimMotion:
    id: int
    robot: str
    kind: str  # "trajectory" | "gripper"
    started: float
    status: MotionStatus = MotionStatus.RUNNING
    reason: str | None = None
    finished: float | None = None

    def to_wire(self) -> dict:
        return {"motion": self.id, "robot": self.robot, "kind": self.kind, "status": self.status.value,
                "reason": self.reason, "started": self.started, "finished": self.finished}


class SimRobot:
    def __init__(self, client: int, name: str, cfg: RobotConfig, twin: TwinConfig, parts: Parts) -> None:
        self._client = client
        self.name = name
        self.cfg = cfg
        self._twin = twin
        self.body = pb.loadURDF(cfg.spec.urdf, cfg.base.position, cfg.base.orientation, useFixedBase=True,
                                physicsClientId=client)
        info = loaded_joints(client, self.body, cfg.spec.urdf)  # its description reads them, not a second load
        named, links = by_name(info), link_indices(info)
        if cfg.tcp_link not in links:
            raise ValueError(f"robot {name}: TCP link {cfg.tcp_link!r} is not in {cfg.spec.urdf} (links: {sorted(links)})")
        self.joints = [named[n].index for n in cfg.spec.joints]
        self._forces = [max(named[n].max_force, 1.0) for n in cfg.spec.joints]
        self._position_gains, self._velocity_gains = [0.2] * len(self.joints), [1.0] * len(self.joints)
        self._zeros = [0.0] * len(self.joints)
        self.description = describe_from_config(name, cfg)
        home = np.asarray(self.description.home)
        if np.any(home < self.description.lower) or np.any(home > self.description.upper):
            raise ValueError(f"robot {name}: home {home.tolist()} is outside the joint limits")
        for j, q in zip(self.joints, home):
            pb.resetJointState(self.body, j, float(q), physicsClientId=client)
        self._hold = home.copy()
        self._hold_applied = False
        self._dt = 1.0 / twin.physics_hz
        self._traj: Trajectory | None = None
        self._t0 = 0.0
        self.motion: SimMotion | None = None
        self.pending_fault: str | None = None  # an injected fault, failing the running or next trajectory
        self.io = dict(cfg.io)
        self.gripper = SuctionGripper(client, self.body, links[cfg.tcp_link], cfg.tcp_offset,
                                      twin.gripper, parts)

    # -- state -------------------------------------------------------------------------------
    def positions(self) -> np.ndarray:
        return np.array([s[0] for s in pb.getJointStates(self.body, self.joints, physicsClientId=self._client)])

    def joint_state(self, now: float) -> JointState:
        states = pb.getJointStates(self.body, self.joints, physicsClientId=self._client)
        return JointState(self.description.joint_names, tuple(s[0] for s in states), tuple(s[1] for s in states), now)

    def saved(self) -> SavedRobot:
        """Joints, gripper (an actuation under way counts as done) and IO, for a checkpoint."""
        g = self.gripper.state
        return SavedRobot(tuple(float(q) for q in self.positions()),
                          {"closing": "closed", "opening": "open"}.get(g, g), dict(self.io))

    def restore(self, saved: SavedRobot) -> None:
        """Stand where a checkpoint says, holding still (no motion survives a restart)."""
        self._traj, self.motion = None, None
        for j, q in zip(self.joints, saved.positions):
            pb.resetJointState(self.body, j, q, physicsClientId=self._client)
        self._hold, self._hold_applied = np.asarray(saved.positions, dtype=float), False
        self.gripper.settle(saved.gripper)
        self.io.update({k: v for k, v in saved.io.items() if k in self.io})

    @property
    def moving(self) -> bool:
        return self._traj is not None

    # -- commands ----------------------------------------------------------------------------
    def start(self, traj: Trajectory, motion: SimMotion, now: float) -> None:
        """Sample the trajectory once, at every physics step it spans, so a step only indexes."""
        self._traj, self._t0, self.motion = traj, now, motion
        steps = np.arange(int(np.ceil(traj.duration / self._dt)) + 1) * self._dt
        targets = np.column_stack([np.interp(steps, traj.times, traj.positions[:, j])
                                   for j in range(traj.positions.shape[1])])
        velocities = np.column_stack([np.interp(steps, traj.times, traj.velocities[:, j])
                                      for j in range(traj.velocities.shape[1])])
        velocities[-1] = 0.0
        # as lists of floats: PyBullet reads a list row faster than a numpy one, every step
        self._targets, self._target_velocities = targets.tolist(), velocities.tolist()

    def halt(self, status: MotionStatus, reason: str, now: float) -> SimMotion | None:
        """End the running trajectory and hold where the arm is now."""
        motion = self.motion
        if motion is None:
            return None
        self._hold, self._hold_applied = self.positions(), False
        self._traj, self.motion = None, None
        motion.status, motion.reason, motion.finished = status, reason, now
        return motion

    # -- simulation --------------------------------------------------------------------------
    def control(self, now: float) -> SimMotion | None:
        """Set this step's motor targets; returns the motion if it ended this step."""
        traj = self._traj
        if traj is not None and self.pending_fault is not None:
            reason, self.pending_fault = self.pending_fault, None
            return self.halt(MotionStatus.FAILED, reason, now)
        if traj is None:
            if self._hold_applied:  # PyBullet keeps motor targets: re-sending a hold is wasted work
                return None
            self._hold_applied = True
            target, velocity = self._hold.tolist(), self._zeros
        else:
            k = min(int(round((now - self._t0) / self._dt)), len(self._targets) - 1)
            target, velocity = self._targets[k], self._target_velocities[k]
        pb.setJointMotorControlArray(
            self.body, self.joints, pb.POSITION_CONTROL, targetPositions=target, targetVelocities=velocity,
            forces=self._forces, positionGains=self._position_gains, velocityGains=self._velocity_gains,
            physicsClientId=self._client,
        )
        if traj is None or now - self._t0 < traj.duration:
            return None
        error = float(np.max(np.abs(self.positions() - traj.goal)))
        if error <= self._twin.goal_tolerance:
            self._hold, self._hold_applied = traj.goal.copy(), False
            motion, self._traj, self.motion = self.motion, None, None
            motion.status, motion.finished = MotionStatus.SUCCEEDED, now
            return motion
        if now - self._t0 > traj.duration + self._twin.settle_time:
            return self.halt(MotionStatus.FAILED, f"goal not reached within {self._twin.settle_time}s "
                                                  f"of the trajectory's end (error {error:.4f} rad)", now)
        return None
