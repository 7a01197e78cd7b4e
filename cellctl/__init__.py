"""cellctl: robot cells that steer themselves, with a PyBullet digital twin."""

__version__ = "0.1.0"
