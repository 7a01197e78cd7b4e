"""``cellctl demo``: the main job, headless. Starts a twin; one robot runs the recipe
pick (infeed) → place (outfeed) → home on each part as skills, each arrival is checked against the
twin's physics, and what happened is printed. Exit status 0 only when every part arrived."""

from __future__ import annotations

import json
import time

from rich.console import Console

from cellctl.config import load_config
from cellctl.processes import TwinProcess
from drivers.twin import TwinDriver
from skills.context import SkillContext
from skills.runner import run
from skills.sequence import SkillSequence

ARRIVAL_TOLERANCE = 0.03  # m, from the outfeed's centre


class ConsoleSink:
    """Prints skill transitions as they happen."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def emit(self, event: dict) -> None:
        if event["kind"] == "skill":
            self.console.print(f"  t={event['sim_time']:6.2f}s  {event['skill']}: {event['source']} -> {event['dest']}")


def run_demo(config_path: str, parts: int = 3, as_json: bool = False) -> int:
    console = Console(stderr=as_json, highlight=False)
    config = load_config(config_path)
    robot_name = next(iter(config.robots))
    stations = {name: s.position for name, s in config.stations.items()}
    height = config.part_types["box"].size[2]
    arrived, started = [], time.monotonic()
    with TwinProcess(config_path) as twin, TwinDriver(twin.endpoint, robot_name) as robot:
        ctx = SkillContext.create(robot, stations=stations, part_height=height, locate=robot.locate,
                                  events=ConsoleSink(console))
        recipe = [{"skill": "pick", "params": {"station": "infeed"}},
                  {"skill": "place", "params": {"station": "outfeed"}},
                  {"skill": "move_joints", "params": {"positions": list(robot.describe().home)}}]
        console.print(f"twin up at {twin.endpoint}: robot {robot_name} ({robot.describe().model}), "
                      f"infeed -> outfeed, {parts} parts")
        for existing in robot.request("list_parts"):
            robot.request("remove_part", id=existing["id"])
        for k in range(1, parts + 1):
            part_id = f"part-{k}"
            robot.request("spawn_part", id=part_id, type="box", station="infeed")
            console.print(f"[bold]{part_id}[/bold] appeared on the infeed")
            result = run(SkillSequence(ctx, recipe))
            if not result.ok:
                console.print(f"[red]{part_id} failed: {result.reason}[/red]")
                break
            where = robot.locate(part_id)
            dst = stations["outfeed"]
            off = ((where[0] - dst[0]) ** 2 + (where[1] - dst[1]) ** 2) ** 0.5
            if off < ARRIVAL_TOLERANCE and abs(where[2] - dst[2]) < 0.01:
                arrived.append(part_id)
                console.print(f"[green]{part_id} rests on the outfeed[/green] ({off * 1000:.1f} mm from its centre)")
            else:
                console.print(f"[red]{part_id} is not on the outfeed: {where}[/red]")
            robot.request("remove_part", id=part_id)  # the outfeed is a sink
        faults = robot.request("faults")
        sim_s = robot.now()
    wall_s = time.monotonic() - started
    console.print(f"{len(arrived)}/{parts} parts delivered in {sim_s:.1f}s sim ({wall_s:.1f}s wall), "
                  f"{len(faults)} contact faults")
    if as_json:
        print(json.dumps({"parts_in": parts, "parts_out": len(arrived), "faults": len(faults),
                          "sim_s": round(sim_s, 3), "wall_s": round(wall_s, 3)}))
    return 0 if len(arrived) == parts else 1
