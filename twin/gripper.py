"""The suction gripper: close attaches the nearest part whose top face is within tolerance of
the TCP, after the actuation time (vacuum build-up); open releases it after the same time and
the part falls and settles by physics. An attached part is held by a fixed constraint, so it is
carried by the arm's physics, not teleported."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from cellctl.drivers.bullet import pb

from cellctl.drivers.types import GripperState
from cellctl.twin.config import GripperConfig
from cellctl.twin.parts import Parts, SimPart


class SuctionGripper:
    def __init__(self, client: int, body: int, tcp_link: int, tcp_offset, cfg: GripperConfig, parts: Parts) -> None:
        self._client, self._body, self._link = client, body, tcp_link
        self._offset = tuple(tcp_offset)
        self._cfg = cfg
        self._parts = parts
        self.state = "open"
        self.held: SimPart | None = None
        self._constraint = -1
        self._pending: tuple[str, float, Callable[[], None]] | None = None

    def tcp(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        s = pb.getLinkState(self._body, self._link, computeForwardKinematics=True, physicsClientId=self._client)
        return pb.multiplyTransforms(s[4], s[5], self._offset, (0, 0, 0, 1))

    def command(self, command: str, now: float, on_done: Callable[[], None]) -> None:
        """Start actuating; ``on_done`` runs when the actuation time has passed."""
        self.state = "closing" if command == "close" else "opening"
        self._pending = (command, now + self._cfg.actuation_time, on_done)

    def update(self, now: float) -> list[dict]:
        """Finish a due actuation; returns part events (attached / released)."""
        if self._pending is None or now + 1e-12 < self._pending[1]:
            return []
        command, _, on_done = self._pending
        self._pending = None
        events = self._close() if command == "close" else self._open()
        on_done()
        return events

    def _close(self) -> list[dict]:
        self.state = "closed"
        if self.held is not None:
            return []
        tcp_pos, _ = self.tcp()
        best, best_d = None, self._cfg.tolerance
        for part in self._parts.by_id.values():
            d = float(np.linalg.norm(np.subtract(self._parts.top_centre(part), tcp_pos)))
            if d <= best_d:
                best, best_d = part, d
        if best is None:
            return []
        self.attach(best)
        return [{"event": "attached", "part": best.id}]

    def attach(self, part: SimPart) -> None:
        """Hold ``part`` where it is now relative to the TCP (also a restored checkpoint's held part)."""
        self.state = "closed"
        link = pb.getLinkState(self._body, self._link, computeForwardKinematics=True, physicsClientId=self._client)
        pos, orn = pb.getBasePositionAndOrientation(part.body, physicsClientId=self._client)
        # Constraint frames are relative to the link's centre of mass, not its URDF frame.
        inv_pos, inv_orn = pb.invertTransform(link[0], link[1])
        rel_pos, rel_orn = pb.multiplyTransforms(inv_pos, inv_orn, pos, orn)
        self._constraint = pb.createConstraint(
            self._body, self._link, part.body, -1, pb.JOINT_FIXED, (0, 0, 0),
            parentFramePosition=rel_pos, childFramePosition=(0, 0, 0),
            parentFrameOrientation=rel_orn, physicsClientId=self._client,
        )
        pb.changeConstraint(self._constraint, maxForce=500, physicsClientId=self._client)
        self.held = part

    def _open(self) -> list[dict]:
        self.state = "open"
        return self.release()

    def release(self) -> list[dict]:
        """Drop whatever is held (also used when the part is removed from the world)."""
        if self.held is None:
            return []
        pb.removeConstraint(self._constraint, physicsClientId=self._client)
        part, self.held, self._constraint = self.held, None, -1
        return [{"event": "released", "part": part.id}]

    def settle(self, state: str) -> None:
        """Take a saved state ("open"/"closed"), with no actuation in progress."""
        self._pending = None
        self.state = state

    def snapshot(self) -> GripperState:
        return GripperState(self.state, self.held is not None, self.held.id if self.held else None)
