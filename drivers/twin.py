"""The driver contract over ZeroMQ to a twin server (``twin/server.py``).

Requests go through :class:`~drivers.twin_client.TwinClient`, so the driver never hangs: a server
that does not answer surfaces as ``ConnectionLost`` within the request's timeout, and the next call
reconnects, which is how the driver recovers when the server comes back.

    with TwinDriver("tcp://127.0.0.1:5555", "press") as robot:
        motion = robot.move_joints([[0, 0.5, 0, -1.2, 0, 1.4, 0]])
"""

from __future__ import annotations

import os

from cellctl.drivers.curve import Keys
from cellctl.drivers.clock import Clock, WallClock
from cellctl.drivers.commanding import CommandingMixin
from cellctl.drivers.errors import DriverError
from cellctl.drivers.twin_client import TwinClient
from cellctl.drivers.twin_lockstep import LockstepClock
from cellctl.drivers.types import GripperCommand, GripperState, JointState, MotionStatus, RobotDescription, Trajectory


class TwinMotion:
    """Motion handle backed by the twin's motion id; a finished status is cached."""

    def __init__(self, driver: TwinDriver, motion_id: int) -> None:
        self._driver, self.id = driver, motion_id
        self.clock = driver.clock
        self._status, self._reason = MotionStatus.RUNNING, None

    def _refresh(self, info: dict) -> None:
        self._status, self._reason = MotionStatus(info["status"]), info["reason"]

    @property
    def status(self) -> MotionStatus:
        if not self._status.done:
            self._refresh(self._driver.request("motion_status", motion=self.id))
        return self._status

    @property
    def reason(self) -> str | None:
        return self._reason

    @property
    def link_lost(self) -> bool:
        return False  # a lost twin raises ConnectionLost from the status request itself

    def cancel(self) -> None:
        self._refresh(self._driver.request("cancel", motion=self.id))


class TwinDriver(TwinClient, CommandingMixin):
    def __init__(self, endpoint: str, robot: str, timeout: float = 2.0, client: str = "",
                 keys: Keys | None = None) -> None:
        super().__init__(endpoint, timeout, client or f"twin-driver-{os.getpid()}", keys)
        self.robot = robot
        self._desc: RobotDescription | None = None
        self._clock: Clock | None = None

    # -- connection --------------------------------------------------------------------------
    def __enter__(self) -> TwinDriver:
        self.connect()
        return self

    def connect(self) -> None:
        self._open()
        self._desc = RobotDescription.from_wire(self.request("describe", robot=self.robot))

    @property
    def clock(self) -> Clock:
        """How time passes for code using this driver: a lockstep participant (named after the
        client, woken by this robot's events) on a lockstep twin, the wall clock otherwise."""
        if self._clock is None:
            if self.server_info.get("mode") == "lockstep":
                self._clock = LockstepClock(self, self.client, [self.robot])
            else:
                self._clock = WallClock(self.now)
        return self._clock

    def use_clock(self, clock: Clock) -> None:
        """Install a clock built elsewhere (a cell's, with its mailbox and name)."""
        self._clock = clock

    def close(self) -> None:
        if self._clock is not None and self.connected:
            self._clock.close()
        self._clock = None
        self._drop()
        self.close_kinematics()

    # -- contract ----------------------------------------------------------------------------
    def describe(self) -> RobotDescription:
        if self._desc is None:
            raise DriverError("not connected: call connect() first (or use the driver as a context manager)")
        return self._desc

    def joint_state(self) -> JointState:
        r = self.request("joint_state", robot=self.robot)
        return JointState(tuple(r["names"]), tuple(r["positions"]), tuple(r["velocities"]), r["stamp"])

    def execute(self, trajectory: Trajectory) -> TwinMotion:
        r = self.request("execute", robot=self.robot, trajectory=trajectory.to_wire())
        return TwinMotion(self, r["motion"])

    def gripper(self, command: GripperCommand | str) -> TwinMotion:
        r = self.request("gripper", robot=self.robot, command=GripperCommand(command).value)
        return TwinMotion(self, r["motion"])

    def gripper_state(self) -> GripperState:
        r = self.request("gripper_state", robot=self.robot)
        return GripperState(r["state"], r["part_present"], r["part_id"])

    def read_io(self, name: str) -> bool:
        return bool(self.request("read_io", robot=self.robot, name=name))

    def write_io(self, name: str, value: bool) -> None:
        self.request("write_io", robot=self.robot, name=name, value=bool(value))

    def locate(self, part_id: str) -> tuple[float, float, float] | None:
        """Bottom-face centre of a part in the twin (skills' ``SkillContext.locate``), None if gone."""
        part = next((p for p in self.request("list_parts") if p["id"] == part_id), None)
        return tuple(part["bottom"]) if part else None

    def now(self) -> float:
        if isinstance(self._clock, LockstepClock):
            return self._clock.now()  # the twin cannot have moved on without our acknowledgement
        return float(self.request("time")["time"])

    def stop(self) -> None:
        self.request("stop", robot=self.robot)
