"""The stamper: a pneumatic press on one of the robot's digital outputs. On is pressing."""

from __future__ import annotations

from cellctl.drivers.contract import RobotDriver


class Stamper:
    """Fires and releases the stamper through the robot's named output."""

    def __init__(self, driver: RobotDriver, output: str) -> None:
        self.driver, self.output = driver, output

    def present(self) -> bool:
        return self.output in self.driver.describe().io_names

    def fire(self) -> None:
        self.driver.write_io(self.output, True)

    def release(self) -> None:
        self.driver.write_io(self.output, False)
