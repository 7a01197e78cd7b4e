"""A twin's machine behind the machine contract (``drivers/machine.py``): the twin's machine ops
over its ZeroMQ API (docs/twin-protocol.md), as a real machine's driver speaks to OctoPrint or
LinuxCNC. The twin's time is the machine's: in lockstep it moves with the line's cells."""

from __future__ import annotations

from cellctl.drivers.curve import Keys
from cellctl.drivers.errors import DriverError
from cellctl.drivers.machine import MachineDescription, MachineError, MachineState, MachineStatus
from cellctl.drivers.twin_client import TwinClient
from cellctl.drivers.twin_wire import MACHINE_REFUSED


class TwinMachine:
    def __init__(self, endpoint: str, name: str, timeout: float = 2.0, keys: Keys | None = None) -> None:
        self.name = name
        self._client = TwinClient(endpoint, timeout=timeout, client=f"machine:{name}", keys=keys)

    def __enter__(self) -> TwinMachine:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        self._client.connect()

    def close(self) -> None:
        self._client.close()

    def _request(self, op: str, **args: object) -> dict:
        try:
            return self._client.request(op, machine=self.name, **args)
        except DriverError as exc:
            if exc.code == MACHINE_REFUSED:
                raise MachineError(str(exc), self.name) from None
            raise

    def describe(self) -> MachineDescription:
        return MachineDescription(**self._request("machine_describe"))

    def state(self) -> MachineState:
        s = self._request("machine_state")
        return MachineState(MachineStatus(s["status"]), s["job"], s["progress"], s["reason"], s["door_open"], s["at"],
                            s["expected"], s["spindle"], s["heater"], s["clamped"])

    def start_job(self, job: str, program: str | None = None, params: dict | None = None) -> None:
        """The twin's machines run one program per kind: ``program`` and ``params`` are accepted and
        not used (a real machine's driver sends them)."""
        self._request("machine_start", job=job)

    def stop(self) -> None:
        self._request("machine_stop")

    def clear(self) -> None:
        self._request("machine_clear")

    def set_door(self, open_: bool) -> None:
        self._request("machine_door", open=open_)

    def now(self) -> float:
        return self._client.request("time")["time"]
