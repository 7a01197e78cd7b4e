"""The line config: the scene (twin/config.py) plus the cells that work in it."""

from __future__ import annotations

from pydantic import Field

from skills.sequence import step_problems
from twin.config import Problem, SceneConfig, Strict


class CellConfig(Strict):
    """One cell: its robot, where it takes parts from, the recipe it runs on each, where it gives
    them to. Take and give name stations (a feed and a sink, or shared handoff stations)."""

    robot: str
    take: str = Field(description="station the cell picks each part from")
    give: str = Field(description="station the cell places each finished part on")
    recipe: list[dict] = Field(default_factory=list, description="skill steps between take and give")
    parts: int | None = Field(None, ge=1, description="work order: parts to finish before Complete; None = no limit")
    control_port: int = Field(0, ge=0, le=65535, description="control socket port; 0 = ephemeral")
    upstream: str | None = Field(None, description="the cell that hands parts to this one on the take station")
    downstream: str | None = Field(None, description="the cell this one hands parts to on the give station")
    handoff_port: int = Field(0, ge=0, le=65535,
                              description="inbox port for neighbours' handoff messages; needed with neighbours "
                                          "(`cellctl run` assigns free ones)")
    handoff_timeout: float = Field(5.0, gt=0, description="wall s of silence before a neighbour counts as gone")
    hold_after: float = Field(10.0, gt=0, description="s (driver time) Suspended on a gone neighbour before Held")


class LineConfig(SceneConfig):
    cells: dict[str, CellConfig] = Field(default_factory=dict)

    def problems(self) -> list[Problem]:
        found = super().problems()
        for name, cell in self.cells.items():
            if cell.robot not in self.robots:
                found.append(Problem(("cells", name, "robot"), f"one of the robots {sorted(self.robots)}", cell.robot))
            for key in ("take", "give"):
                station = getattr(cell, key)
                if station not in self.stations:
                    found.append(Problem(("cells", name, key), f"one of the stations {sorted(self.stations)}", station))
            for i, message in step_problems(cell.recipe):
                found.append(Problem(("cells", name, "recipe", i), "a valid skill step", message))
        robots = [c.robot for c in self.cells.values()]
        for name, cell in self.cells.items():
            if robots.count(cell.robot) > 1:
                found.append(Problem(("cells", name, "robot"), "a robot no other cell drives", cell.robot))
        return found
