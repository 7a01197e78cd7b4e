"""Drivers: the one contract (``cellctl.drivers.contract``) between skills and a robot, and its
implementations (the twin over ZeroMQ, ROS through rosbridge)."""
