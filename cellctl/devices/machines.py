"""The machines a cell tends, each reached as its config says: a real one through its own API
(``driver: {octoprint: ...}``), otherwise the twin's simulation of it over the twin's API."""

from __future__ import annotations

from cellctl.config.line import LineConfig
from cellctl.drivers.curve import Keys
from cellctl.drivers.machine import MachineDescription, MachineDriver
from cellctl.drivers.octoprint import OctoPrintMachine
from cellctl.drivers.twin_machine import TwinMachine


def describe(config: LineConfig, name: str) -> MachineDescription:
    m = config.machines[name]
    return MachineDescription(name, m.kind, m.station, m.makes, m.takes, m.door)


def machine_driver(config: LineConfig, name: str, twin: str, keys: Keys | None, timeout: float) -> MachineDriver:
    """Machine ``name``'s driver, not yet connected."""
    driver = config.machines[name].driver
    if driver is not None:
        octo = driver.octoprint
        return OctoPrintMachine(describe(config, name), octo.url, octo.api_key_file, octo.timeout,
                                expected=config.machines[name].job_time, program=octo.program)
    return TwinMachine(twin, name, timeout=timeout, keys=keys)
