"""The machines a cell tends, each reached as its config says: a real one through its own API
(``driver: {octoprint: ...}`` or ``{linuxcnc: ...}``), otherwise the twin's simulation of it over the
twin's API."""

from __future__ import annotations

from cellctl.config.line import LineConfig
from cellctl.drivers.curve import Keys
from cellctl.drivers.machine import MachineDriver
from cellctl.drivers.twin_machine import TwinMachine


def machine_driver(config: LineConfig, name: str, twin: str, keys: Keys | None, timeout: float) -> MachineDriver:
    """Machine ``name``'s driver, not yet connected."""
    return config.machines[name].real(name) or TwinMachine(twin, name, timeout=timeout, keys=keys)
