"""Child processes of cellctl (the twin server, its rosbridge endpoint): started with the same
Python, their readiness read from one announced stdout line, and always cleaned up.

With a ``log`` file the child writes there, never into a pipe: a launcher that dies must not take
its children down with a broken pipe at their next line of output (SIGPIPE / EPIPE). Without one
(tests) its output is read through a pipe and kept in ``output``."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

from cellctl.drivers.twin import TwinDriver
from cellctl.drivers.twin_wire import ROSBRIDGE_READY, TWIN_READY


class ProcessFailed(RuntimeError):
    pass


class AnnouncedProcess:
    """A cellctl child process that prints one ``PREFIX {json}`` line once it serves."""

    prefix = ""

    def __init__(self, cmd: list[str], ready_timeout: float = 30.0, log: Path | None = None,
                 pass_fds: tuple[int, ...] = ()) -> None:
        self.cmd = cmd
        self.ready_timeout = ready_timeout
        self.log = log
        self.pass_fds = pass_fds
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}
        self.output: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.spawn()
        self.wait_ready()

    def spawn(self) -> None:
        """Start the process; ``wait_ready`` waits for its announcement (a caller may start others
        in between)."""
        lines = self._lines = queue.Queue()
        if self.log is None:
            self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                         pass_fds=self.pass_fds)
            threading.Thread(target=self._pump, args=(lines,), daemon=True).start()
        else:
            with open(self.log, "a") as out:
                start = out.tell()
                self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT, text=True,
                                             pass_fds=self.pass_fds)
            threading.Thread(target=self._follow, args=(lines, start), daemon=True).start()

    def wait_ready(self) -> None:
        """Until the process announces itself (``info``); ProcessFailed, the process stopped, if it
        exits first or stays silent for ``ready_timeout``."""
        lines = self._lines
        deadline = time.monotonic() + self.ready_timeout
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise ProcessFailed(f"{self.cmd[3:5]} did not announce itself within {self.ready_timeout}s") from None
            if line is None:
                self.stop()
                raise ProcessFailed(f"{self.cmd[3:5]} exited before it was ready:\n" + "".join(self.output))
            if line.startswith(self.prefix):
                self.info = json.loads(line[len(self.prefix):])
                return

    def _pump(self, lines: queue.Queue) -> None:
        """Keep reading the child's output so it never blocks on a full pipe."""
        for line in self.proc.stdout:
            self.output.append(line)
            lines.put(line)
        lines.put(None)

    def _follow(self, lines: queue.Queue, start: int) -> None:
        """Read the child's log from ``start`` until its ready line (or its exit)."""
        with open(self.log) as log:
            log.seek(start)
            pending = ""
            while True:
                chunk = log.readline()
                if chunk:
                    pending += chunk
                    if pending.endswith("\n"):
                        self.output.append(pending)
                        lines.put(pending)
                        if pending.startswith(self.prefix):
                            return
                        pending = ""
                elif self.proc.poll() is not None:
                    lines.put(None)
                    return
                else:
                    time.sleep(0.02)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash would (tests use it)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()


DASHBOARD_READY = "CELLCTL-DASHBOARD-READY "  # + {"url", "login"}: the operator's page serves


class DashboardProcess(AnnouncedProcess):
    """``cellctl dashboard RUN_DIR`` beside a line (``cellctl run --dashboard PORT``)."""

    prefix = DASHBOARD_READY

    def __init__(self, run_dir: Path, port: int = 0, log: Path | None = None) -> None:
        super().__init__([sys.executable, "-m", "cellctl", "dashboard", str(run_dir), "--port", str(port)],
                         log=log)

    @property
    def url(self) -> str:
        return self.info["url"]


OPCUA_READY = "CELLCTL-OPCUA-READY "  # + {"url", "secured", "login", "cells", "pid"}: the OPC UA server serves
MQTT_READY = "CELLCTL-MQTT-READY "  # + {"url", "group", "edge", "topics", "cells", "pid"}: the publisher is set up


class SideProcess(AnnouncedProcess):
    """A server beside a line (``cellctl run --opcua PORT`` / ``--mqtt URL``) or a cell (``cellctl
    cell run``, then ``--cell`` and ``--parent``: it stops when the cell is gone): ``cellctl opcua``
    or ``cellctl mqtt`` for TARGET, announcing itself in the run directory."""

    def __init__(self, command: str, target: Path, args: list[str], log: Path | None = None) -> None:
        self.prefix = {"opcua": OPCUA_READY, "mqtt": MQTT_READY}[command]
        super().__init__([sys.executable, "-m", "cellctl", command, str(target), *args, "--announce"], log=log)

    @property
    def url(self) -> str:
        return self.info["url"]


class TwinProcess(AnnouncedProcess):
    """A twin server in its own process, on ephemeral loopback ports unless told otherwise.

        with TwinProcess("configs/demo_cell.yaml") as twin:
            TwinDriver(twin.endpoint, "robot") ...
    """

    prefix = TWIN_READY

    def __init__(self, config: str, port: int = 0, pub_port: int = 0, extra: list[str] | None = None,
                 ready_timeout: float = 30.0, log: Path | None = None, listen_fd: int | None = None) -> None:
        listen = ["--listen-fd", str(listen_fd)] if listen_fd is not None else []
        super().__init__([sys.executable, "-m", "cellctl", "twin", "serve", str(config), "--port", str(port),
                          "--pub-port", str(pub_port), *listen, *(extra or [])], ready_timeout, log,
                         (listen_fd,) if listen_fd is not None else ())

    @property
    def endpoint(self) -> str:
        return self.info["endpoint"]

    @property
    def pub_endpoint(self) -> str:
        return self.info["pub"]

    def driver(self, robot: str, **kwargs: object) -> TwinDriver:
        """A driver for one of this twin's robots (use it as a context manager, or ``connect()``)."""
        return TwinDriver(self.endpoint, robot, **kwargs)


class RosbridgeProcess(AnnouncedProcess):
    """The twin's rosbridge endpoint in its own process (killable alone: a dropped bridge)."""

    prefix = ROSBRIDGE_READY

    def __init__(self, config: str, twin: str, port: int = 0, ready_timeout: float = 30.0,
                 log: Path | None = None) -> None:
        super().__init__([sys.executable, "-m", "cellctl", "twin", "rosbridge", str(config), "--twin", twin,
                          "--port", str(port)], ready_timeout, log)

    @property
    def url(self) -> str:
        return self.info["url"]

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])
