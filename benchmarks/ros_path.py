"""ROS path: a FollowJointTrajectory goal sent → its first feedback, through the ROS driver and the
twin's rosbridge endpoint, against the same trajectory sent through the twin driver → its first
status reply. Same twin (realtime), alternating; medians in milliseconds."""

from __future__ import annotations

import time

from benchmarks.common import config_variant, median
from cellctl.config.loader import load_config
from cellctl.processes.children import RosbridgeProcess, TwinProcess
from cellctl.drivers.description import describe_from_config
from cellctl.drivers.ros import RosDriver, RosNames
from cellctl.drivers.twin import TwinDriver
from cellctl.drivers.wait import wait

SWING = ([0.3, 0.5, 0.0, -1.2, 0.0, 1.4, 0.0], [0.0, 0.5, 0.0, -1.2, 0.0, 1.4, 0.0])


def main(quick: bool = False) -> dict:
    n = 5 if quick else 20
    ros_ms, twin_ms = [], []
    with config_variant("demo_cell.yaml", mode="realtime", rate=1.0) as path:
        config = load_config(path)
        desc = describe_from_config("press", config.robots["press"])
        with TwinProcess(str(path)) as twin, RosbridgeProcess(str(path), twin.endpoint) as bridge, \
                TwinDriver(twin.endpoint, "press") as direct, \
                RosDriver("127.0.0.1", bridge.port, desc, RosNames.for_twin("press", desc.io_names)) as ros:
            for k in range(n):
                goal = SWING[k % 2]
                t0 = time.perf_counter()
                motion = ros.move_joints([goal], feedback=(first := []).append)
                while not first and not motion.status.done:
                    time.sleep(0.0002)
                ros_ms.append((time.perf_counter() - t0) * 1e3)
                wait(motion, 20)
                goal = SWING[(k + 1) % 2]
                t0 = time.perf_counter()
                motion = direct.move_joints([goal])
                _ = motion.status  # the first status reply: the twin's equivalent of feedback
                twin_ms.append((time.perf_counter() - t0) * 1e3)
                wait(motion, 20)
    ros, tw = median(ros_ms), median(twin_ms)
    return {"ros_feedback_ms": round(ros, 2), "twin_feedback_ms": round(tw, 2), "ros_feedback_ratio": round(ros / tw, 2)}
