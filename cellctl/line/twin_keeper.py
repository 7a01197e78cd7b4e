"""The line's twin, kept alive: started with a checkpoint file, restarted from it when it dies (at
the latest sim time any cell saw: time never goes back), and the restored world reconciled with the
ledgers — a part some ledger has DELIVERED is not left in the world (the checkpoint may predate the
sink consuming it): it is taken off as consumed by that cell's sink."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

from rich.console import Console

from cellctl.config.line import LineConfig
from cellctl.line.summary import custody_states
from cellctl.drivers.curve import Keys
from cellctl.drivers.errors import DriverError
from cellctl.drivers.twin_client import TwinClient
from cellctl.processes.children import ProcessFailed, TwinProcess
from cellctl.rundir import RunDir

STATUS_TIMEOUT_S = 0.5


class TwinKeeper:
    """The twin's request port is a socket the keeper listens on for the whole run and hands to
    each twin process it starts (``--listen-fd``): the cells can be started with its address at
    once, alongside the twin (they connect and wait in its backlog while the twin loads), and a
    restarted twin serves on the very same socket — no other process can take the port meanwhile."""

    def __init__(self, run: RunDir, config: LineConfig, keys: Keys | None, console: Console,
                 emit: Callable[..., None]) -> None:
        self.run, self.config, self.keys, self.console, self._emit = run, config, keys, console, emit
        self.twin: TwinProcess | None = None  # the twin that announced itself
        self.starting: TwinProcess | None = None  # spawned, not yet announced
        self._listener: socket.socket | None = None
        self._pub_port = 0  # a restarted twin streams where its subscribers are

    def _listen(self) -> socket.socket:
        if self._listener is None:
            host = self.config.twin.host
            self._listener = socket.create_server((host, 0), family=socket.AF_INET6 if ":" in host else socket.AF_INET,
                                                  backlog=128)
        return self._listener

    @property
    def endpoint(self) -> str:
        """Where the twin serves requests, known (and connectable) before it is ready."""
        host = self.config.twin.host
        return f"tcp://{f'[{host}]' if ':' in host else host}:{self._listen().getsockname()[1]}"

    def spawn(self, restore: bool, resume_at: float = 0.0) -> None:
        """Start a twin process; ``wait_ready`` waits for it."""
        listener = self._listen()
        extra = ["--checkpoint", str(self.run.checkpoint), "--parent", str(os.getpid())]
        if restore:
            extra += ["--restore", "--resume-at", f"{resume_at:.6f}"]
        self.starting = TwinProcess(str(self.run.line_config), listener.getsockname()[1], self._pub_port, extra=extra,
                                    log=self.run.twin_log, listen_fd=listener.fileno())
        self.starting.spawn()

    def wait_ready(self) -> None:
        """Until the spawned twin serves (ProcessFailed, the process stopped, if it does not). It
        stays ``starting`` while waited for, so a stop (Ctrl-C, SIGTERM) meanwhile stops it too."""
        twin = self.starting
        try:
            twin.wait_ready()
        except ProcessFailed:
            self.starting = None
            raise
        self.starting, self.twin = None, twin
        self._pub_port = int(twin.pub_endpoint.rsplit(":", 1)[1])
        self._emit("process", component="twin", event="started", pid=twin.pid, restored=twin.info.get("restored"),
                   time=twin.info.get("time"))

    def start(self, restore: bool, resume_at: float = 0.0) -> None:
        self.spawn(restore, resume_at)
        self.wait_ready()

    def stop(self, timeout: float) -> None:
        """Stop the twin (and one still starting) and close its port."""
        for twin in (self.starting, self.twin):
            if twin is not None:
                twin.stop(timeout)
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    @property
    def pid(self) -> int | None:
        twin = self.twin or self.starting
        return twin.pid if twin and twin.proc else None

    def alive(self) -> bool:
        return self.twin is not None and self.twin.alive()

    def note_death(self) -> None:
        """The twin process is gone: say so (once) and forget it."""
        if self.twin is None:
            return
        code = self.twin.proc.returncode
        self._emit("process", component="twin", event="exited", code=code)
        self.console.print(f"the twin died ({f'signal {-code}' if code < 0 else f'exit status {code}'}); "
                           f"restarting it from its checkpoint")
        self.twin = None

    def restore(self, resume_at: float) -> bool:
        """Start the twin again from its checkpoint and reconcile the world; False if it did not
        come back (asked again after the restart policy's next due time)."""
        try:
            self.start(restore=True, resume_at=resume_at)
        except ProcessFailed as exc:
            self.console.print(f"[red]the twin did not come back: {str(exc).splitlines()[0]}; trying again[/red]")
            return False
        self._reconcile_world()
        return True

    def _reconcile_world(self) -> None:
        try:
            with TwinClient(self.twin.endpoint, timeout=5, client="launcher", keys=self.keys) as twin:
                present = {p["id"] for p in twin.request("list_parts")}
                for name, cell in self.config.cells.items():
                    states = custody_states(self.run.ledger(name))
                    for part in sorted(p for p, s in states.items() if s == "DELIVERED" and p in present):
                        twin.request("remove_part", id=part, consumed_at=cell.give)
                        self._emit("reconciled_world", cell=name, part=part, reason="delivered in the ledger")
        except DriverError as exc:
            self.console.print(f"[red]could not reconcile the restored world: {exc}[/red]")

    def answers(self) -> bool:
        """Whether the twin answers a hello now (a paused twin is alive but does not answer)."""
        if not self.alive():
            return False
        probe = TwinClient(self.twin.endpoint, client="launcher", keys=self.keys)
        try:
            return probe.alive(STATUS_TIMEOUT_S)
        finally:
            probe.close()

    def clients(self) -> dict[str, int] | None:
        """Who said hello to the (last) twin's API: cells of ROS robots must not be among them."""
        if not self.alive():
            return None
        try:
            with TwinClient(self.twin.endpoint, timeout=STATUS_TIMEOUT_S * 4, client="launcher",
                            keys=self.keys) as twin:
                return twin.request("clients")
        except DriverError:
            return None
