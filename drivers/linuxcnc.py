"""A CNC through LinuxCNC's ``linuxcncrsh`` text protocol (TCP, port 5007), behind the machine
contract (``drivers/machine.py``). LinuxCNC's own Python module is built for Debian's system
Python, not the project's: the text protocol needs nothing but a socket.

A session: ``hello CONNECTPW cellctl 1.1`` → ``HELLO ACK``; ``set echo off``; ``set verbose on``
(every ``set`` answers ``SET X ACK`` or ``NAK``); ``set enable ENABLEPW`` for control. A job runs
the program (an NGC file on the CNC's PC) in auto mode: ``set mode auto``, ``set open PATH``,
``set run``. This driver never releases an E-stop nor powers the machine on: that is the
machine's operator's, at the machine.

| LinuxCNC | contract |
|---|---|
| no answer | `offline`, with why |
| E-stop on | `fault`: `E-stop on` and LinuxCNC's last error (a job it ended stays a fault until `clear()`) |
| machine power off | `offline` (`machine power is off`) |
| program running / paused | `running` / `paused` (job: the one this driver started) |
| idle after this driver's job ran to its end | `done` until `clear()` |
| idle after this driver's job ended with an error | `fault` with LinuxCNC's error, until `clear()` |
| idle otherwise | `idle` |

LinuxCNC names no jobs (``get program`` gives the file): the job a restarted driver finds running
is unknown to it (``job`` None). The description says so (``names_jobs`` False), and the tending
cell then trusts its ledger and holds for the operator rather than run a job that may have run
(docs/machines.md). A stop (``set abort``) is not a safety function.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

from cellctl.drivers.machine import MachineDescription, MachineError, MachineState, MachineStatus

MAX_REPLY = 4096  # bytes of one reply line at most: a server that sends more is broken, not trusted
START_WAIT_S = 2.0  # wall s for a started program to show as running
ESTOP = "E-stop on"  # the fault's reason while the E-stop is on (then LinuxCNC's last error, if any)


class LinuxCncMachine:
    def __init__(self, description: MachineDescription, host: str, port: int = 5007,
                 password_file: str | Path | None = None, program: str | None = None, timeout: float = 3.0,
                 expected: float | None = None) -> None:
        self.name, self.host, self.port = description.name, host, port
        self._description = description
        self._password_file = Path(password_file) if password_file else None
        self._program, self._timeout, self._expected = program, timeout, expected
        self._sock: socket.socket | None = None
        self._buffer = b""
        self._lock = threading.Lock()
        self._job: str | None = None  # the job this driver started
        self._outcome: MachineStatus | None = None  # DONE or FAULT once that job ended, until clear()
        self._reason: str | None = None
        self._ran = False  # the job was seen running (or finished within the first look)
        self._unreachable = f"{self.where} has not been asked yet"

    @property
    def where(self) -> str:
        return f"linuxcncrsh at {self.host}:{self.port}"

    def __enter__(self) -> LinuxCncMachine:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the session ---------------------------------------------------------------------------
    def _passwords(self) -> tuple[str, str]:
        """(connect, enable) passwords: the file's two lines, or LinuxCNC's defaults."""
        if self._password_file is None:
            return "EMC", "EMCTOO"
        try:
            lines = self._password_file.read_text().split()
        except OSError as exc:
            raise MachineError(f"machine {self.name}: cannot read the LinuxCNC password file {self._password_file}: "
                               f"{exc.strerror or exc}", self.name) from None
        if len(lines) != 2:
            raise MachineError(f"machine {self.name}: {self._password_file} holds {len(lines)} words: expected two "
                               f"lines, linuxcncrsh's --connectpw and --enablepw", self.name)
        return lines[0], lines[1]

    def connect(self) -> None:
        connect_pw, enable_pw = self._passwords()
        self.close()
        try:
            self._sock = socket.create_connection((self.host, self.port), timeout=self._timeout)
        except OSError as exc:
            self._sock = None
            raise ConnectionRefusedError(f"{self.where} does not answer ({exc})") from None
        if not self._send(f"hello {connect_pw} cellctl 1.1").startswith("HELLO ACK"):
            self.close()
            raise MachineError(f"machine {self.name}: {self.where} refused the connect password from "
                               f"{self._password_file or 'the default'} (HELLO NAK): expected linuxcncrsh's "
                               f"--connectpw", self.name)
        self._send("set echo off")  # (answered with its own echo: echo is still on for it)
        self._set("verbose on")
        self._enable_pw = enable_pw
        self._take_control()

    def _take_control(self) -> None:
        """linuxcncrsh lets one session at a time command (the last one enabled, a panel's say): this
        one takes it before each command it sends."""
        if not self._send(f"set enable {self._enable_pw}").endswith("ACK"):
            self.close()
            raise MachineError(f"machine {self.name}: {self.where} refused the enable password (NAK): expected "
                               f"linuxcncrsh's --enablepw", self.name)

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock, self._buffer = None, b""

    def _send(self, line: str) -> str:
        """One request line and its reply line (OSError when the link fails)."""
        assert self._sock is not None
        self._sock.sendall(line.encode() + b"\r\n")
        while b"\n" not in self._buffer:
            chunk = self._sock.recv(1024)
            if not chunk:
                raise ConnectionResetError(f"{self.where} closed the connection")
            self._buffer += chunk
            if len(self._buffer) > MAX_REPLY:
                raise ConnectionResetError(f"{self.where} sent a line of over {MAX_REPLY} bytes")
        reply, self._buffer = self._buffer.split(b"\n", 1)
        return reply.decode(errors="replace").strip()

    def _get(self, what: str) -> str:
        """``get WHAT`` → the value after the echoed key (``get estop`` → ``ON``)."""
        reply = self._send(f"get {what}")
        key, _, value = reply.partition(" ")
        if key.upper() != what.split()[0].upper():
            raise MachineError(f"machine {self.name}: {self.where} answered {reply!r} to get {what}", self.name)
        return value

    def _set(self, what: str) -> None:
        reply = self._send(f"set {what}")
        if not reply.upper().endswith("ACK") or reply.upper().endswith("NAK"):
            raise MachineError(f"machine {self.name}: {self.where} refused set {what} ({reply})", self.name)

    def _session(self) -> bool:
        """Connected (again, after a lost link); False when the CNC does not answer."""
        if self._sock is not None:
            return True
        try:
            self.connect()
        except (ConnectionRefusedError, OSError) as exc:
            self._unreachable = str(exc)
            return False
        return True

    # -- the contract --------------------------------------------------------------------------
    def describe(self) -> MachineDescription:
        return self._description

    def now(self) -> float:
        return time.time()

    def state(self) -> MachineState:
        with self._lock:
            now = time.time()
            if not self._session():
                return MachineState(MachineStatus.OFFLINE, reason=self._unreachable, at=now)
            try:
                estop, power = self._get("estop").upper(), self._get("machine").upper()
                program = self._get("program_status").upper()
                spindle = self._get("spindle 0").upper().split()[-1:] not in (["OFF"], [])  # (a bare `get spindle`
                # crashes linuxcncrsh 2.9: the spindle's number is needed)
                error = self._get("error")
            except OSError as exc:
                self.close()
                return MachineState(MachineStatus.OFFLINE, reason=f"{self.where} does not answer ({exc})", at=now)
            base = {"job": self._job, "at": now, "expected": self._expected, "spindle": spindle}
            error = None if error.upper() in ("OK", "") else error
            if estop == "ON":
                if self._job is not None and self._outcome is None:
                    self._outcome, self._reason = MachineStatus.FAULT, f"job {self._job} ended by an E-stop"
                return MachineState(MachineStatus.FAULT, reason=ESTOP + (f": {error}" if error else ""), **base)
            if power != "ON":
                return MachineState(MachineStatus.OFFLINE, reason="machine power is off", **base)
            if program in ("RUNNING", "PAUSED"):
                self._ran = True
                status = MachineStatus.RUNNING if program == "RUNNING" else MachineStatus.PAUSED
                return MachineState(status, reason="paused at the machine" if program == "PAUSED" else None, **base)
            if self._job is not None and self._outcome is None and self._ran:
                self._outcome, self._reason = (MachineStatus.FAULT, f"LinuxCNC: {error}") if error \
                    else (MachineStatus.DONE, None)
            if self._outcome is not None:
                return MachineState(self._outcome, progress=1.0 if self._outcome == MachineStatus.DONE else None,
                                    reason=self._reason, **base)
            return MachineState(MachineStatus.IDLE, **base)

    def start_job(self, job: str, program: str | None = None, params: dict | None = None) -> None:
        """Run ``program`` (a path on the CNC's PC; default: the config's) for ``job``. Refused, with
        why, while the E-stop is on, the machine is off, or a program runs."""
        program = program or self._program
        if program is None:
            raise MachineError(f"machine {self.name}: job {job} needs a program: start_job's program, or "
                               f"driver.linuxcnc.program in the config (an NGC file on the CNC's PC)", self.name)
        state = self.state()
        if state.status == MachineStatus.FAULT and state.reason and state.reason.startswith(ESTOP):
            raise MachineError(f"machine {self.name} refuses job {job}: its E-stop is on (release it at the "
                               f"machine)", self.name)
        if state.status not in (MachineStatus.IDLE,):
            raise MachineError(f"machine {self.name} refuses job {job}: it is {state.status.value}"
                               f"{f' ({state.reason})' if state.reason else ''}", self.name)
        with self._lock:
            try:
                self._take_control()
                self._set("mode auto")
                self._set(f"open {program}")
                opened = self._get("program").strip()
                if opened != program:
                    raise MachineError(f"machine {self.name}: {self.where} cannot open program {program} (it has "
                                       f"{opened or 'none'} open): expected an NGC file on the CNC's PC", self.name)
                self._job, self._outcome, self._reason, self._ran = job, None, None, False
                self._set("run")
                deadline = time.monotonic() + START_WAIT_S
                while time.monotonic() < deadline and not self._ran:
                    if self._get("program_status").upper() in ("RUNNING", "PAUSED"):
                        self._ran = True
                    else:
                        time.sleep(0.05)
                self._ran = True  # (a program short enough to end before the first look ran too)
            except OSError as exc:
                self.close()
                raise MachineError(f"machine {self.name}: job {job} not started: {self.where} does not answer "
                                   f"({exc})", self.name) from None

    def stop(self) -> None:
        with self._lock:
            if not self._session():
                raise MachineError(f"machine {self.name}: {self._unreachable}", self.name)
            self._take_control()
            self._set("abort")
            self._outcome, self._reason = MachineStatus.IDLE, f"job {self._job} stopped"

    def clear(self) -> None:
        state = self.state()
        if state.status == MachineStatus.FAULT and state.reason and state.reason.startswith(ESTOP):
            raise MachineError(f"machine {self.name}: its E-stop is on: release it at the machine first", self.name)
        if state.busy or state.status == MachineStatus.OFFLINE:
            raise MachineError(f"machine {self.name}: nothing to clear while {state.status.value}", self.name)
        self._outcome, self._reason, self._ran = None, None, False  # (the job's name stays: idle after it)

    def set_door(self, open_: bool) -> None:
        raise MachineError(f"machine {self.name}: its door is not reached through LinuxCNC (driver.linuxcnc)",
                           self.name)
