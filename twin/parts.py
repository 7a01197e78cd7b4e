"""Parts in the twin's world: rigid boxes with an id and a type, created and removed by id."""

from __future__ import annotations

from dataclasses import dataclass

from cellctl.drivers.bullet import pb

from cellctl.twin.config import PartTypeConfig


@dataclass
class SimPart:
    id: str
    type: str
    body: int
    height: float


class Parts:
    def __init__(self, client: int, types: dict[str, PartTypeConfig]) -> None:
        self._client = client
        self._types = types
        self._shapes: dict[str, tuple[int, int]] = {}
        self.by_id: dict[str, SimPart] = {}
        self.by_body: dict[int, SimPart] = {}

    def _shape(self, type_name: str) -> tuple[int, int]:
        if type_name not in self._shapes:
            t = self._types[type_name]
            half = [s / 2 for s in t.size]
            col = pb.createCollisionShape(pb.GEOM_BOX, halfExtents=half, physicsClientId=self._client)
            vis = pb.createVisualShape(pb.GEOM_BOX, halfExtents=half, rgbaColor=t.color, physicsClientId=self._client)
            self._shapes[type_name] = (col, vis)
        return self._shapes[type_name]

    def spawn(self, part_id: str, type_name: str, resting_on: tuple[float, float, float]) -> SimPart:
        """Create a part whose bottom face rests at ``resting_on`` (a station's top centre)."""
        t = self._types[type_name]
        col, vis = self._shape(type_name)
        x, y, z = resting_on
        body = pb.createMultiBody(
            t.mass, col, vis, basePosition=(x, y, z + t.size[2] / 2 + 1e-4), physicsClientId=self._client
        )
        pb.changeDynamics(body, -1, lateralFriction=0.8, physicsClientId=self._client)
        part = SimPart(part_id, type_name, body, t.size[2])
        self.by_id[part_id] = part
        self.by_body[body] = part
        return part

    def place(self, part_id: str, type_name: str, position, orientation) -> SimPart:
        """Create a part at a saved pose (a restored checkpoint), at rest."""
        part = self.spawn(part_id, type_name, (0.0, 0.0, 0.0))
        pb.resetBasePositionAndOrientation(part.body, position, orientation, physicsClientId=self._client)
        return part

    def overlapping(self, type_name: str, resting_on: tuple[float, float, float]) -> str | None:
        """The id of a part already in the space a new part would take: parts spawned into each
        other make the physics solver fight them apart, which costs seconds per step."""
        t = self._types[type_name]
        x, y, z = resting_on
        lo = (x - t.size[0] / 2, y - t.size[1] / 2, z + 2e-3)
        hi = (x + t.size[0] / 2, y + t.size[1] / 2, z + t.size[2])
        for body, _ in pb.getOverlappingObjects(lo, hi, physicsClientId=self._client) or ():
            if body in self.by_body:
                return self.by_body[body].id
        return None

    def remove(self, part_id: str) -> None:
        part = self.by_id.pop(part_id)
        del self.by_body[part.body]
        pb.removeBody(part.body, physicsClientId=self._client)

    def pose(self, part_id: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
        pos, orn = pb.getBasePositionAndOrientation(self.by_id[part_id].body, physicsClientId=self._client)
        return pos, orn

    def _face_centre(self, part: SimPart, sign: float) -> tuple[float, float, float]:
        pos, orn = pb.getBasePositionAndOrientation(part.body, physicsClientId=self._client)
        point, _ = pb.multiplyTransforms(pos, orn, (0, 0, sign * part.height / 2), (0, 0, 0, 1))
        return point

    def top_centre(self, part: SimPart) -> tuple[float, float, float]:
        return self._face_centre(part, 1.0)

    def bottom_centre(self, part: SimPart) -> tuple[float, float, float]:
        return self._face_centre(part, -1.0)
