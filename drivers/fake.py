"""``FakeDriver``: the driver contract in-process, with no twin server and no sockets, for unit
tests of skills and cells that run in milliseconds.

Planning, IK and the envelope are the real ones (``CommandingMixin``, the robot's URDF through
``drivers/kinematics.py``), so a command outside the limits raises ``LimitViolation`` exactly as on
the twin or a real robot. Only execution is fake: a trajectory is followed exactly in virtual time
(``drivers/fake_world.py``'s clock, which jumps to a motion's end), the suction gripper attaches the
part under the TCP of a :class:`FakeWorld`, and ``break_link()`` makes every call raise
``ConnectionLost`` as a dropped bridge does. It passes ``check_driver``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cellctl.drivers.commanding import CommandingMixin
from cellctl.drivers.description import describe_from_config
from cellctl.drivers.errors import ConnectionLost, DriverError
from cellctl.drivers.fake_world import FakeWorld, VirtualClock
from cellctl.drivers.robot_config import RobotConfig
from cellctl.drivers.types import GripperCommand, GripperState, JointState, MotionStatus, RobotDescription, Trajectory

ACTUATION_S = 0.1  # s: suction build-up or release, as the twin's default gripper


class FakeMotion:
    """A trajectory or a gripper actuation in virtual time: running until ``end``, then succeeded,
    unless cancelled or failed first. ``clock`` lets ``cellctl.drivers.wait`` advance to its end."""

    def __init__(self, clock: VirtualClock, end: float) -> None:
        self.clock, self.end = clock, end
        self._final: MotionStatus | None = None
        self._reason: str | None = None
        self._link_lost = False
        self.stopped_at = end  # driver time it stops (earlier when cancelled or failed)
        clock.wake_at(end)

    @property
    def status(self) -> MotionStatus:
        if self._final is not None:
            return self._final
        return MotionStatus.SUCCEEDED if self.clock.now() >= self.end - 1e-9 else MotionStatus.RUNNING

    @property
    def reason(self) -> str | None:
        return self._reason

    @property
    def link_lost(self) -> bool:
        return self._link_lost

    def cancel(self) -> None:
        self.finish(MotionStatus.CANCELLED, "cancelled")

    def finish(self, status: MotionStatus, reason: str, link_lost: bool = False) -> None:
        if not self.status.done:
            self._final, self._reason, self.stopped_at = status, reason, self.clock.now()
            self._link_lost = link_lost


class FakeDriver(CommandingMixin):
    """One robot of a :class:`FakeWorld` (a world of its own when none is given)."""

    def __init__(self, description: RobotDescription, world: FakeWorld | None = None) -> None:
        self._desc = description
        self.world = world if world is not None else FakeWorld({})
        self.clock = self.world.clock
        self._home = np.asarray(description.home, dtype=float)  # where it rests before its first motion
        self._trajectory: tuple[Trajectory, float, FakeMotion] | None = None  # (trajectory, start, motion)
        self._gripper, self._actuation = "open", FakeMotion(self.clock, self.clock.now())
        self._held: str | None = None
        self._io = dict.fromkeys(description.io_names, False)
        self._link_up = True

    @classmethod
    def from_config(cls, name: str, robot: RobotConfig, world: FakeWorld | None = None) -> FakeDriver:
        """The robot ``name`` of a line config (``config.robots[name]``)."""
        return cls(describe_from_config(name, robot), world)

    def __enter__(self) -> FakeDriver:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- faults a test injects -----------------------------------------------------------------------
    def break_link(self) -> None:
        """From now on every call raises ConnectionLost and the motion in flight fails (never succeeds)."""
        reason = "ConnectionLost: the link to the fake robot was broken (break_link)"
        if self._trajectory is not None:
            self._trajectory[2].finish(MotionStatus.FAILED, reason, link_lost=True)
        self._actuation.finish(MotionStatus.FAILED, reason, link_lost=True)
        self._link_up = False

    def restore_link(self) -> None:
        self._link_up = True

    def _up(self) -> None:
        if not self._link_up:
            raise ConnectionLost(f"{self._desc.name}: the link to the fake robot is broken (break_link)")

    # -- the contract ----------------------------------------------------------------------------------
    def connect(self) -> None:
        self._link_up = True

    def close(self) -> None:
        self.close_kinematics()

    def describe(self) -> RobotDescription:
        self._up()
        return self._desc

    def now(self) -> float:
        """Local time, so it answers with the link down too (as a ROS driver's wall or last /clock time)."""
        return self.clock.now()

    def joint_state(self) -> JointState:
        self._up()
        positions, velocities = self._sample(self.clock.now())
        return JointState(self._desc.joint_names, tuple(map(float, positions)), tuple(map(float, velocities)),
                          self.clock.now())

    def execute(self, trajectory: Trajectory) -> FakeMotion:
        self._up()
        if self._trajectory is not None:
            self._trajectory[2].finish(MotionStatus.CANCELLED, "replaced by a new trajectory")
        start = self.clock.now()
        motion = FakeMotion(self.clock, start + float(trajectory.times[-1]))
        self._trajectory = (trajectory, start, motion)
        return motion

    def stop(self) -> None:
        self._up()
        if self._trajectory is not None:
            self._trajectory[2].cancel()

    def gripper(self, command: GripperCommand) -> FakeMotion:
        self._up()
        self._actuation.finish(MotionStatus.CANCELLED, "replaced by a new gripper command")
        tcp = self.kinematics.fk(self._sample(self.clock.now())[0]).position
        if command is GripperCommand.CLOSE and self._held is None:
            self._held = self.world.grasp(self._desc.name, tcp)
        elif command is GripperCommand.OPEN and self._held is not None:
            self.world.release(self._held, tcp)
            self._held = None
        self._gripper = "closed" if command is GripperCommand.CLOSE else "open"
        self._actuation = FakeMotion(self.clock, self.clock.now() + ACTUATION_S)
        return self._actuation

    def gripper_state(self) -> GripperState:
        self._up()
        moving = not self._actuation.status.done
        state = {"closed": "closing", "open": "opening"}[self._gripper] if moving else self._gripper
        return GripperState(state, self._held is not None and not moving, None if moving else self._held)

    def read_io(self, name: str) -> bool:
        self._up()
        return self._io[self._io_name(name)]

    def write_io(self, name: str, value: bool) -> None:
        self._up()
        self._io[self._io_name(name)] = bool(value)

    def _io_name(self, name: str) -> str:
        if name not in self._io:
            raise DriverError(f"{self._desc.name} has no IO named {name!r}; it has {sorted(self._io)}")
        return name

    # -- virtual execution -------------------------------------------------------------------------------
    def _sample(self, t: float) -> tuple[Sequence[float], Sequence[float]]:
        """Joint positions and velocities at driver time ``t``: on the trajectory until its motion
        stopped (at its end, or where it was cancelled), at rest there after."""
        if self._trajectory is None:
            return self._home, np.zeros_like(self._home)
        trajectory, start, motion = self._trajectory
        local = min(t, motion.stopped_at) - start
        positions = [np.interp(local, trajectory.times, trajectory.positions[:, j]) for j in range(self._desc.dof)]
        if t >= motion.stopped_at:
            return np.asarray(positions), np.zeros_like(self._home)
        velocities = [np.interp(local, trajectory.times, trajectory.velocities[:, j]) for j in range(self._desc.dof)]
        return np.asarray(positions), np.asarray(velocities)
