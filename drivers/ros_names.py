"""The ROS names and types the twin's rosbridge endpoint serves, one place for the endpoint, the
ROS driver's defaults and the docs. Per robot ``R``:

    /R/joint_states                                          sensor_msgs/msg/JointState      (published)
    /R/joint_trajectory_controller/follow_joint_trajectory   control_msgs/action/FollowJointTrajectory
    /R/gripper_controller/gripper_cmd                        control_msgs/action/GripperCommand
    /R/gripper/part_present                                  std_msgs/msg/Bool               (published)
    /R/io/NAME                                               std_msgs/msg/Bool               (published)
    /R/io/NAME/set                                           std_msgs/msg/Bool               (subscribed)
    /R/stop                                                  std_srvs/srv/Trigger            (service: halt)
    /clock                                                   rosgraph_msgs/msg/Clock         (published)

and per station ``S`` (unless its config names other topics under ``sensor: {ros: ...}``):

    /stations/S/present                                      std_msgs/msg/Bool               (published)
    /stations/S/part_id                                      std_msgs/msg/String             (published, "" if empty)
"""

from __future__ import annotations

JOINT_STATE = "sensor_msgs/msg/JointState"
BOOL = "std_msgs/msg/Bool"
STRING = "std_msgs/msg/String"
UR_ROBOT_MODE = "ur_dashboard_msgs/msg/RobotMode"
UR_SAFETY_MODE = "ur_dashboard_msgs/msg/SafetyMode"
CLOCK = "rosgraph_msgs/msg/Clock"
LOG = "rcl_interfaces/msg/Log"  # /rosout
FOLLOW_JOINT_TRAJECTORY = "control_msgs/action/FollowJointTrajectory"
GRIPPER_COMMAND = "control_msgs/action/GripperCommand"
TRIGGER = "std_srvs/srv/Trigger"
UR_IO_STATES = "ur_msgs/msg/IOStates"  # digital_in_states / digital_out_states: [{pin, state}]
UR_SET_IO = "ur_msgs/srv/SetIO"  # {fun, pin, state} -> {success}
UR_SET_DIGITAL_OUT = 1  # SetIO.fun

# GripperCommand: the suction gripper is "closed" (vacuum on) below this commanded position.
GRIPPER_CLOSED_BELOW = 0.5


def joint_states(robot: str) -> str:
    return f"/{robot}/joint_states"


def trajectory_action(robot: str) -> str:
    return f"/{robot}/joint_trajectory_controller/follow_joint_trajectory"


def gripper_action(robot: str) -> str:
    return f"/{robot}/gripper_controller/gripper_cmd"


def stop_service(robot: str) -> str:
    return f"/{robot}/stop"


def part_present(robot: str) -> str:
    return f"/{robot}/gripper/part_present"


def io_state(robot: str, name: str) -> str:
    return f"/{robot}/io/{name}"


def io_states(robot: str) -> str:
    return f"/{robot}/io_states"


def set_io(robot: str) -> str:
    return f"/{robot}/set_io"


def io_set(robot: str, name: str) -> str:
    return f"/{robot}/io/{name}/set"


def same_type(given: str | None, canonical: str) -> bool:
    """Both spellings name the same type: ``pkg/Type`` (ROS 1) and ``pkg/msg/Type`` (ROS 2)."""
    if not given:
        return True
    pkg, _, name = canonical.split("/")
    return given in (canonical, f"{pkg}/{name}")


def stamp(t: float) -> dict:
    sec = int(t)
    return {"sec": sec, "nanosec": int(round((t - sec) * 1e9))}


def seconds(duration: dict) -> float:
    """A builtin_interfaces Duration / Time (ROS 2 ``nanosec`` or ROS 1 ``nsecs``) in seconds."""
    return duration.get("sec", duration.get("secs", 0)) + duration.get("nanosec", duration.get("nsecs", 0)) * 1e-9
