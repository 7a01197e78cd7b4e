"""The peer's side of ``python -m benchmarks --peers``: pybullet-fleet 0.8 running N Panda arms, each
pick → place → home per cycle, physics on at 240 Hz, headless, as fast as it goes — its own
pick-and-drop arm example's job (``examples/scale/pick_drop_arm_100robots_demo.py``), cycle 1 only and
no idle wait, so it is the job our line does: take a part at one station, put it at another, go home.

Run inside the peer's own virtualenv (it pins its own numpy): ``python peer_fleet.py N SIM_S``.
Prints one JSON line: robots, sim and wall seconds of the run (without set-up), cycles done, and
the physics engine's parameters as ``getPhysicsEngineParameters()`` reports them.
"""

from __future__ import annotations

import json
import sys
import time

import pybullet as p
from pybullet_fleet.action import DropAction, JointAction, PickAction
from pybullet_fleet.agent import AgentSpawnParams
from pybullet_fleet.agent_manager import AgentManager, GridSpawnParams
from pybullet_fleet.config_utils import load_yaml_config, merge_configs
from pybullet_fleet.core_simulation import MultiRobotSimulationCore
from pybullet_fleet.robot_models import resolve_model
from pybullet_fleet.sim_object import Pose, ShapeParams, SimObject

# the example's Panda presets (joint targets, fingers open), the base turned ±0.55 rad as our line's
# stations are (0.5 m out, 0.3 m to each side): the example's 3.14 is past the Panda's joint limit
# (2.90), which physics does not reach; box positions relative to the arm
INIT = [0.0, -0.8, 0.0, -2.3, 0.0, 1.6, 0.8, 0.0, 0.0, 0.04, 0.04, 0.0]
PICK = [-0.55, 0.4, 0.0, -1.5, 0.0, 1.9, 0.8, 0.0, 0.0, 0.04, 0.04, 0.0]
PLACE = [0.55, 0.4, 0.0, -1.5, 0.0, 1.9, 0.8, 0.0, 0.0, 0.04, 0.04, 0.0]
BOX_PICK, BOX_PLACE = [0.5, -0.3, 0.25], [0.5, 0.3, 0.25]
HZ = 240.0


def main() -> None:
    robots, sim_s = int(sys.argv[1]), float(sys.argv[2])
    config = merge_configs(load_yaml_config("config/config.yaml"), {"simulation": {
        "target_rtf": 0, "timestep": 1.0 / HZ, "physics": True, "gui": False, "monitor": False,
        "enable_monitor_gui": False}})
    sim = MultiRobotSimulationCore.from_dict(config)
    manager = AgentManager(sim_core=sim, update_frequency=10.0)
    side = max(1, int(robots ** 0.5 + 0.999))
    arms = manager.spawn_agents_grid(
        num_agents=robots, grid_params=GridSpawnParams(x_min=0, x_max=side - 1, y_min=0, y_max=side - 1, z_min=0,
                                                       z_max=0, spacing=[2.0, 2.0, 0.0], offset=[0.0, 0.0, 0.0]),
        spawn_params=AgentSpawnParams(urdf_path=resolve_model("panda"), use_fixed_base=True, mass=None))
    cycles = [0]

    def cycle(arm) -> list:
        base = arm.get_pose().position
        box = arm.user_data["box"]
        place = [base[0] + BOX_PLACE[0], base[1] + BOX_PLACE[1], BOX_PLACE[2]]
        return [JointAction(target_joint_positions=PICK, tolerance=0.05),
                PickAction(target_object_id=box.body_id, use_approach=False,
                           attach_link=p.getNumJoints(arm.body_id) - 1, attach_relative_pose=Pose.from_xyz(0, 0, 0.14)),
                JointAction(target_joint_positions=PLACE, tolerance=0.05),
                DropAction(drop_pose=Pose(position=place), use_approach=False),
                JointAction(target_joint_positions=INIT, tolerance=0.05)]

    for arm in arms:
        base = arm.get_pose().position
        arm.user_data["box"] = SimObject.from_mesh(
            visual_shape=ShapeParams(shape_type="box", half_extents=[0.025, 0.025, 0.025]),
            collision_shape=ShapeParams(shape_type="box", half_extents=[0.025, 0.025, 0.025]),
            pose=Pose.from_xyz(base[0] + BOX_PICK[0], base[1] + BOX_PICK[1], BOX_PICK[2]), mass=0.0, sim_core=sim)

    def again(mgr: AgentManager, dt: float) -> None:
        for arm in mgr.objects:
            if arm.is_action_queue_empty():
                cycles[0] += 1
                box = arm.user_data["box"]
                base = arm.get_pose().position
                p.resetBasePositionAndOrientation(box.body_id, [base[0] + BOX_PICK[0], base[1] + BOX_PICK[1],
                                                                BOX_PICK[2]], [0, 0, 0, 1],
                                                  physicsClientId=sim.client)
                arm.add_action_sequence(cycle(arm))

    manager.add_action_sequence_all(cycle)
    manager.register_callback(again, frequency=10.0)
    physics = p.getPhysicsEngineParameters(physicsClientId=sim.client)
    start = time.perf_counter()
    sim.run_simulation(duration=sim_s)
    wall = time.perf_counter() - start
    print(json.dumps({"robots": robots, "sim_s": sim_s, "wall_s": round(wall, 3), "cycles": cycles[0] - robots,
                      "physics": {k: v for k, v in physics.items() if isinstance(v, (int, float))}}))


if __name__ == "__main__":
    main()
