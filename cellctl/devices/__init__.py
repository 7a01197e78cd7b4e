"""What a cell touches: its robot's backend (the twin driver or a ROS robot through rosbridge), its
part sensors, and probing a robot's bridge before anything moves.

May import ``config`` and the drivers; never a cell, a handoff or the line."""
