"""``cellctl demo``: the main job, headless. Starts a twin, then one robot moves parts from the
infeed station to the outfeed station, checks each arrival against the twin's physics, and
prints what happened. Exit status 0 only when every part arrived."""

from __future__ import annotations

import json
import time

from rich.console import Console

from cellctl.config import load_config
from cellctl.processes import TwinProcess
from drivers.geometry import facing
from drivers.twin import TwinDriver
from drivers.types import GripperCommand, MotionStatus, Pose
from drivers.wait import wait

HOVER = 0.10  # m above the grip height
GAP = 0.005  # m between the suction cup and the part's top face
ARRIVAL_TOLERANCE = 0.03  # m, horizontal, from the station centre


class DemoFailed(RuntimeError):
    pass


def _do(console: Console, robot: TwinDriver, what: str, motion) -> None:
    status = wait(motion, timeout=60)
    if status is not MotionStatus.SUCCEEDED:
        raise DemoFailed(f"{what}: {status.value} ({motion.reason})")
    console.print(f"  t={robot.now():6.2f}s  {what}")


def _over(robot: TwinDriver, home: Pose, xyz: tuple[float, float, float], dz: float) -> Pose:
    pos = (xyz[0], xyz[1], xyz[2] + dz)
    return Pose(pos, facing(home, robot.describe().base, pos))


def move_part(console: Console, robot: TwinDriver, home: Pose, src, dst, part_height: float) -> None:
    grip = part_height + GAP
    _do(console, robot, "above the infeed", robot.move_pose([_over(robot, home, src, grip + HOVER)]))
    _do(console, robot, "down to the part", robot.move_pose([_over(robot, home, src, grip)], speed=0.5))
    _do(console, robot, "suction on", robot.gripper(GripperCommand.CLOSE))
    held = robot.gripper_state()
    if not held.part_present:
        raise DemoFailed("suction on, but no part attached")
    _do(console, robot, f"lifted {held.part_id}", robot.move_pose([_over(robot, home, src, grip + HOVER)], speed=0.5))
    _do(console, robot, "above the outfeed", robot.move_pose([_over(robot, home, dst, grip + HOVER)]))
    _do(console, robot, "down to the outfeed", robot.move_pose([_over(robot, home, dst, grip)], speed=0.5))
    _do(console, robot, "suction off", robot.gripper(GripperCommand.OPEN))
    _do(console, robot, "clear of the outfeed", robot.move_pose([_over(robot, home, dst, grip + HOVER)], speed=0.5))


def run_demo(config_path: str, parts: int = 3, as_json: bool = False) -> int:
    console = Console(stderr=as_json, highlight=False)
    config = load_config(config_path)
    robot_name = next(iter(config.robots))
    src, dst = config.stations["infeed"].position, config.stations["outfeed"].position
    part_type = "box"
    height = config.part_types[part_type].size[2]
    arrived, started = [], time.monotonic()
    with TwinProcess(config_path) as twin, TwinDriver(twin.endpoint, robot_name) as robot:
        home = robot.kinematics.fk(robot.describe().home)
        console.print(f"twin up at {twin.endpoint}: robot {robot_name} ({robot.describe().model}), "
                      f"infeed -> outfeed, {parts} parts")
        for existing in robot.request("list_parts"):
            robot.request("remove_part", id=existing["id"])
        for k in range(1, parts + 1):
            part_id = f"part-{k}"
            robot.request("spawn_part", id=part_id, type=part_type, station="infeed")
            console.print(f"[bold]{part_id}[/bold] appeared on the infeed")
            try:
                move_part(console, robot, home, src, dst, height)
            except DemoFailed as exc:
                console.print(f"[red]{part_id} failed: {exc}[/red]")
                break
            _do(console, robot, "settling", robot.move_joints([list(robot.describe().home)]))
            info = next(p for p in robot.request("list_parts") if p["id"] == part_id)
            off = ((info["position"][0] - dst[0]) ** 2 + (info["position"][1] - dst[1]) ** 2) ** 0.5
            on_top = abs(info["position"][2] - (dst[2] + height / 2)) < 0.01
            if info["held_by"] is None and on_top and off < ARRIVAL_TOLERANCE:
                arrived.append(part_id)
                console.print(f"[green]{part_id} rests on the outfeed[/green] ({off * 1000:.1f} mm from its centre)")
            else:
                console.print(f"[red]{part_id} is not on the outfeed: {info}[/red]")
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
