"""How a cell reaches its robot: the twin driver (ZeroMQ) by default, or the ROS driver through a
rosbridge server (the twin's endpoint or a real robot's)."""

from __future__ import annotations

import time
from urllib.parse import urlparse

from cellctl.line_config import LineConfig
from drivers.description import describe_from_config
from drivers.errors import ConnectionLost
from drivers.ros import RosDriver, RosNames

BRIDGE_WAIT = 30.0  # wall s to wait for a bridge that is coming up


def connect_ros(url: str, robot: str, config: LineConfig) -> RosDriver:
    """The robot through rosbridge, retrying while the bridge comes up."""
    desc = describe_from_config(robot, config.robots[robot])
    where = urlparse(url)
    driver = RosDriver(where.hostname, where.port, desc, RosNames.for_twin(robot, desc.io_names))
    deadline = time.monotonic() + BRIDGE_WAIT
    while True:
        try:
            driver.connect()
            return driver
        except ConnectionLost:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
