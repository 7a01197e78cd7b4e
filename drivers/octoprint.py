"""A 3D printer through OctoPrint's REST API, behind the machine contract (``drivers/machine.py``).

A job is a G-code file uploaded as ``JOB.gcode`` (the job named after its part) and printed in the
same request; a restarted cell finds its own job by that name — selected and printing, printed
(its file's last print and its outcome), or absent — before it starts another. OctoPrint reports
Operational at 100 % after a print and cannot see its bed: "part ready" comes from the job's end
(the file's last print succeeded), "bed clear" from the ledger or a sensor, never from OctoPrint.

| OctoPrint | contract |
|---|---|
| no answer, or the printer's connection Closed / Offline / Detecting | `offline`, with why |
| Error, Offline after error | `fault`, with OctoPrint's error text |
| Printing, Starting, Cancelling, Finishing | `running`, progress from `completion` |
| Pausing, Paused, Resuming | `paused` (at the printer) |
| Operational, `JOB.gcode` selected, its last print succeeded | `done` until `clear()` acknowledges it |
| Operational, `JOB.gcode` selected, its last print failed (cancelled at the printer) | `fault` until `clear()` |
| Operational otherwise | `idle` |

Acknowledgements (``clear()``) live in this driver's memory: after a restart a printed job shows
as done again, and the tending cell — whose ledger knows the part was taken out — clears it again.
A stop (``POST /api/job cancel``) is not a safety function (docs/machines.md).
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from cellctl.drivers.machine import MachineDescription, MachineError, MachineState, MachineStatus

SUFFIX = ".gcode"
RUNNING_STATES = ("Printing", "Starting", "Cancelling", "Finishing", "Printing from SD", "Sending file to SD")
PAUSED_STATES = ("Pausing", "Paused", "Resuming")
OFFLINE_STATES = ("Closed", "Offline", "Detecting serial connection", "Detecting baudrate", "Connecting",
                  "Opening serial connection", "Unknown")
MAX_PROGRAM_BYTES = 64 * 1024 * 1024  # a G-code file larger than this is refused before it is sent


class OctoPrintMachine:
    """``describe`` comes from the line config (OctoPrint knows no stations); the API key is read
    from a file, never from the config itself."""

    def __init__(self, description: MachineDescription, url: str, api_key_file: str | Path,
                 timeout: float = 5.0, expected: float | None = None, program: str | None = None) -> None:
        self.name, self.url = description.name, url.rstrip("/")
        self._description, self._expected = description, expected
        self._key_file = Path(api_key_file)
        self._timeout = timeout
        self._client: httpx.Client | None = None
        self._acknowledged: dict[str, float | None] = {}  # job -> the date of the print that was acknowledged
        self._unreachable = f"OctoPrint at {self.url} has not been asked yet"
        self._program = program  # the G-code file a job prints unless start_job names one
        self._stopped: str | None = None  # the job this driver's stop() ended: idle, not a fault

    def __enter__(self) -> OctoPrintMachine:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the link ------------------------------------------------------------------------------
    def connect(self) -> None:
        try:
            key = self._key_file.read_text().strip()
        except OSError as exc:
            raise MachineError(f"machine {self.name}: cannot read the OctoPrint API key file {self._key_file}: "
                               f"{exc.strerror or exc}", self.name) from None
        if not key or any(c.isspace() for c in key):
            raise MachineError(f"machine {self.name}: the OctoPrint API key file {self._key_file} holds no key "
                               f"(expected one line: the user's API key)", self.name)
        self._client = httpx.Client(base_url=self.url, headers={"X-Api-Key": key}, timeout=self._timeout)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _call(self, method: str, path: str, **kwargs: object) -> httpx.Response | None:
        """One request; None when OctoPrint does not answer (the machine is offline). A refused key
        or a request OctoPrint rejects is a MachineError naming the machine, the URL and why."""
        if self._client is None:
            self.connect()
        try:
            reply = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            self._unreachable = f"OctoPrint at {self.url} does not answer ({type(exc).__name__}: {exc})"
            return None
        if reply.status_code in (401, 403):
            raise MachineError(f"machine {self.name}: OctoPrint at {self.url} refused the API key from "
                               f"{self._key_file} ({reply.status_code}): expected a key of a user allowed to print",
                               self.name)
        return reply

    def _json(self, path: str) -> dict | None:
        reply = self._call("GET", path)
        if reply is None or reply.status_code == 404:
            return None
        if reply.status_code == 409:  # the printer is not connected to OctoPrint
            return {"state": {"text": "Closed"}, "_conflict": True}
        try:
            data = reply.json()
        except ValueError:
            raise MachineError(f"machine {self.name}: OctoPrint at {self.url}{path} answered {reply.status_code} "
                               f"with no JSON: expected OctoPrint's REST API", self.name) from None
        return data if isinstance(data, dict) else None

    # -- the contract --------------------------------------------------------------------------
    def describe(self) -> MachineDescription:
        return self._description

    def now(self) -> float:
        return time.time()

    def state(self) -> MachineState:
        now = time.time()
        job_info = self._json("/api/job")
        if job_info is None:
            return MachineState(MachineStatus.OFFLINE, reason=getattr(self, "_unreachable", "no answer"), at=now)
        text = str(job_info.get("state") or "Unknown")
        file_name = ((job_info.get("job") or {}).get("file") or {}).get("name") or ""
        job = file_name[:-len(SUFFIX)] if file_name.endswith(SUFFIX) else None
        completion = (job_info.get("progress") or {}).get("completion")
        expected = (job_info.get("job") or {}).get("estimatedPrintTime") or self._expected
        printer = self._json("/api/printer") or {}
        heating = any(isinstance(t, dict) and (t.get("target") or 0) > 0
                      for t in (printer.get("temperature") or {}).values())
        base = {"job": job, "at": now, "expected": expected, "heater": heating}
        if text.startswith("Offline after error") or text.startswith("Error"):
            error = (printer.get("state") or {}).get("error") or text
            return MachineState(MachineStatus.FAULT, reason=f"OctoPrint: {error}", **base)
        if text in OFFLINE_STATES or text.startswith("Offline"):
            return MachineState(MachineStatus.OFFLINE, reason=f"OctoPrint's printer connection is {text}", **base)
        progress = round(min(1.0, completion / 100.0), 4) if isinstance(completion, (int, float)) else None
        if text in RUNNING_STATES:  # (OctoPrint gives no completion yet in a print's first moment)
            return MachineState(MachineStatus.RUNNING, progress=progress or 0.0, **base)
        if text in PAUSED_STATES:
            return MachineState(MachineStatus.PAUSED, progress=progress, reason=f"{text.lower()} at the printer", **base)
        if job is None:
            return MachineState(MachineStatus.IDLE, **base)
        last = self._last_print(file_name)
        if last is None or self._acknowledged.get(job, -1.0) == last.get("date"):
            return MachineState(MachineStatus.IDLE, **base)
        if last.get("success"):
            return MachineState(MachineStatus.DONE, progress=1.0, **base)
        if job == self._stopped:
            return MachineState(MachineStatus.IDLE, reason=f"job {job} stopped", **base)
        return MachineState(MachineStatus.FAULT, reason=f"print {job} ended without finishing (cancelled or failed "
                                                        f"at the printer)", **base)

    def _last_print(self, file_name: str) -> dict | None:
        info = self._json(f"/api/files/local/{file_name}")
        last = ((info or {}).get("prints") or {}).get("last")
        return last if isinstance(last, dict) else None

    def start_job(self, job: str, program: str | None = None, params: dict | None = None) -> None:
        """Upload ``program`` (a G-code file on this PC) as ``JOB.gcode`` and print it. Refused,
        naming why, when the file does not exist or is too large (first: a config mistake), or the
        printer is not idle."""
        program = program or self._program
        if program is None:
            raise MachineError(f"machine {self.name}: job {job} needs a program: start_job's program, or "
                               f"driver.octoprint.program in the config (the G-code file to print)", self.name)
        path = Path(program)
        try:
            size = path.stat().st_size
        except OSError:
            raise MachineError(f"machine {self.name}: job {job}'s program {path} does not exist (expected a G-code "
                               f"file on this PC)", self.name) from None
        if size > MAX_PROGRAM_BYTES:
            raise MachineError(f"machine {self.name}: job {job}'s program {path} is {size} bytes (at most "
                               f"{MAX_PROGRAM_BYTES})", self.name)
        state = self.state()
        if state.status != MachineStatus.IDLE:
            raise MachineError(f"machine {self.name} refuses job {job}: it is {state.status.value}"
                               f"{f' with job {state.job}' if state.job else ''}"
                               f"{f' ({state.reason})' if state.reason else ''}", self.name)
        with path.open("rb") as data:
            reply = self._call("POST", "/api/files/local", data={"select": "true", "print": "true"},
                               files={"file": (f"{job}{SUFFIX}", data, "application/octet-stream")})
        if reply is None:
            raise MachineError(f"machine {self.name}: job {job} not started: {self._unreachable}", self.name)
        if reply.status_code >= 300:
            raise MachineError(f"machine {self.name}: OctoPrint at {self.url} refused job {job} ({reply.status_code}: "
                               f"{reply.text.strip()[:200]})", self.name)
        self._acknowledged.pop(job, None)
        if self._stopped == job:
            self._stopped = None

    def stop(self) -> None:
        state = self.state()
        if state.busy:
            self._stopped = state.job
        reply = self._call("POST", "/api/job", json={"command": "cancel"})
        if reply is not None and reply.status_code not in (204, 409):  # 409: nothing prints
            raise MachineError(f"machine {self.name}: OctoPrint at {self.url} refused the cancel "
                               f"({reply.status_code})", self.name)

    def clear(self) -> None:
        """Done (the part taken off the bed) or a failed print dealt with: acknowledged, idle. An
        error state of OctoPrint itself is cleared by connecting to the printer again."""
        state = self.state()
        if state.status == MachineStatus.FAULT and state.reason and state.reason.startswith("OctoPrint:"):
            self._call("POST", "/api/connection", json={"command": "connect"})
            return
        if state.job is not None and state.status in (MachineStatus.DONE, MachineStatus.FAULT):
            last = self._last_print(f"{state.job}{SUFFIX}")
            self._acknowledged[state.job] = last.get("date") if last else None
        elif state.busy or state.status == MachineStatus.OFFLINE:
            raise MachineError(f"machine {self.name}: nothing to clear while {state.status.value}", self.name)

    def set_door(self, open_: bool) -> None:
        raise MachineError(f"machine {self.name} has no door", self.name)
