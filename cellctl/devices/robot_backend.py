"""How a cell reaches its robot: the twin driver (ZeroMQ) by default, or — when the robot's config
entry has ``driver: {ros: ...}``, or ``cellctl cell run --rosbridge URL`` says so — the ROS driver
through a rosbridge server (the twin's endpoint or a real robot's)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from rich.console import Console

from cellctl.config.line import LineConfig
from cellctl.drivers.description import describe_from_config
from cellctl.drivers.errors import ConnectionLost
from cellctl.drivers.robot_config import RosDriverConfig

if TYPE_CHECKING:  # imported where a ROS robot is driven: a cell on the twin never loads roslibpy
    from cellctl.drivers.ros import RosDriver

BRIDGE_WAIT = float(os.environ.get("CELLCTL_BRIDGE_WAIT", "30"))  # wall s to wait for a bridge coming up
PROGRESS_EVERY = 5.0  # wall s between "still trying" lines


@dataclass(frozen=True)
class RosBackend:
    """Where a ROS-backed robot is: its bridge URL and driver config."""

    url: str
    cfg: RosDriverConfig


def ros_backend(config: LineConfig, robot: str, rosbridge: str | None = None) -> RosBackend | None:
    """The robot's ROS backend, or None when it is the twin's. ``rosbridge`` (a command-line URL)
    means the twin's rosbridge endpoint: the twin's names, whatever the config says."""
    if rosbridge is not None:
        return RosBackend(rosbridge, RosDriverConfig(url=rosbridge.rstrip("/")))
    ros = config.robots[robot].driver.ros
    return RosBackend(ros.url, ros) if ros is not None else None


def ros_driver(backend: RosBackend, robot: str, config: LineConfig) -> RosDriver:
    """The robot's driver through rosbridge, not yet connected."""
    desc = describe_from_config(robot, config.robots[robot])
    where = urlparse(backend.url)
    if backend.cfg.ca:
        os.environ["SSL_CERT_FILE"] = backend.cfg.ca  # roslibpy's TLS context reads the default verify paths
    from cellctl.drivers.ros import RosDriver, RosNames

    return RosDriver(where.hostname, where.port, desc, RosNames.from_config(robot, backend.cfg, desc.io_names),
                     joint_map=backend.cfg.joints, secure=where.scheme == "wss", accept_timeout=backend.cfg.accept_timeout)


def connect_ros(backend: RosBackend, robot: str, config: LineConfig, console: Console | None = None) -> RosDriver:
    """The robot through rosbridge, retrying (with a progress line) while the bridge comes up;
    ConnectionLost naming the URL and what was missing after BRIDGE_WAIT."""
    driver = ros_driver(backend, robot, config)
    started = said = time.monotonic()
    while True:
        try:
            driver.connect()
            return driver
        except ConnectionLost as exc:
            if time.monotonic() - started > BRIDGE_WAIT:
                raise ConnectionLost(f"robot {robot}: {exc} (tried for {BRIDGE_WAIT:.0f}s)") from None
            if console is not None and time.monotonic() - said > PROGRESS_EVERY:
                said = time.monotonic()
                console.print(f"robot {robot}: {exc}; still trying ({said - started:.0f}s)")
            time.sleep(0.5)
