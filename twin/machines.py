"""The twin's machines: a 3D printer that makes a part on its bed after its job time, and a CNC
that turns the part in its fixture (a ``takes`` blank) into a ``makes`` part after its cycle time —
in sim time, so in lockstep and realtime alike, behind the same contract as a real machine
(``drivers/machine.py``). Scenario faults: a job that fails, a machine that goes offline (and comes
back), a pause by the machine's own operator.

A machine with a ``driver:`` is real: the twin follows it (``twin/following.py``) and takes no
requests for it; a print it finishes puts its part on the bed.

What the twin decides here it decides as a machine would: the CNC refuses a job without a blank in
its fixture (its probe would find none); a printer whose bed is not clear when the job ends faults
(the print collided) — a printer cannot see its bed before, so it never refuses for that.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import get_args

from cellctl.drivers.machine import JOB_NAME, MachineError, MachineFaultKind, MachineStatus
from cellctl.twin.config import MachineConfig, StationConfig
from cellctl.twin.following import Follower
from cellctl.twin.parts import Parts

CHECK_EVERY = 10  # steps between looks at the machines (as the feeds)
FAULTS = get_args(MachineFaultKind)


@dataclass
class SimMachine:
    name: str
    cfg: MachineConfig
    station: StationConfig
    status: MachineStatus = MachineStatus.IDLE
    job: str | None = None
    worked: float = 0.0  # sim s of work done on the job
    since: float = 0.0  # sim time the job last ran from (running only)
    reason: str | None = None
    door_open: bool | None = None
    before_offline: MachineStatus | None = None
    stalled: bool = False  # a job that runs and never gets further (a hung controller): the deadline's case
    started: list[tuple[str, float]] = field(default_factory=list)  # every job it started, with the sim time
    follows: Follower | None = None  # a real machine the twin follows
    made: set[str] = field(default_factory=set)  # followed printer: the jobs whose part the twin put on the bed

    def __post_init__(self) -> None:
        self.door_open = False if self.cfg.door else None

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.cfg.kind, "station": self.cfg.station, "makes": self.cfg.makes,
                "takes": self.cfg.takes, "door": self.cfg.door}

    def state(self, now: float) -> dict:
        if self.follows is not None:
            real = asdict(self.follows.latest)
            return {**real, "status": self.follows.latest.status.value, "at": now}
        running = self.status == MachineStatus.RUNNING
        worked = self.worked + (now - self.since if running and not self.stalled else 0.0)
        busy = running or self.status == MachineStatus.PAUSED
        printer = self.cfg.kind == "printer"
        return {"status": self.status.value, "job": self.job, "reason": self.reason, "door_open": self.door_open,
                "progress": round(min(1.0, worked / self.cfg.job_time), 4) if busy else None, "at": now,
                "expected": self.cfg.job_time, "spindle": None if printer else running,
                "heater": running if printer else None, "clamped": None if printer else busy}


class Machines:
    """Every machine of the scene, stepped with the world."""

    def __init__(self, machines: dict[str, MachineConfig], stations: dict[str, StationConfig], parts: Parts,
                 record: Callable[[str, str, str, float], dict], occupant: Callable[[StationConfig], str | None]) -> None:
        self.by_name = {n: SimMachine(n, m, stations[m.station]) for n, m in machines.items()}
        self._parts, self._record, self._occupant = parts, record, occupant
        for name, m in self.by_name.items():
            real = m.cfg.real(name)
            if real is not None:
                m.follows = Follower(real)

    def close(self) -> None:
        for m in self.by_name.values():
            if m.follows is not None:
                m.follows.close()

    def get(self, name: str) -> SimMachine:
        if name not in self.by_name:
            raise KeyError(f"no machine {name!r}; machines: {sorted(self.by_name)}")
        return self.by_name[name]

    def simulated(self, name: str) -> SimMachine:
        """A machine the twin simulates (a request for a real one is refused: its cell reaches it)."""
        m = self.get(name)
        if m.follows is not None:
            raise MachineError(f"machine {name} is real (its driver: in the config): the twin follows it and takes "
                               f"no requests for it")
        return m

    # -- requests ---------------------------------------------------------------------------------
    def start(self, name: str, job: str, now: float) -> dict:
        m = self.simulated(name)
        if not JOB_NAME.fullmatch(job):
            raise MachineError(f"machine {name}: a job is named after its part: letters, digits, _ . - (up to 64)")
        refusal = {MachineStatus.OFFLINE: "it is offline",
                   MachineStatus.RUNNING: f"it runs job {m.job}", MachineStatus.PAUSED: f"job {m.job} is paused on it",
                   MachineStatus.DONE: f"job {m.job}'s part waits on {m.cfg.station}: clear it first",
                   MachineStatus.FAULT: f"it has an alarm ({m.reason}): clear it first"}.get(m.status)
        if refusal is None and m.door_open:
            refusal = "its door is open: close it first"
        if refusal is None and m.cfg.kind == "cnc":
            part = self._occupant(m.station)
            found = self._parts.by_id.get(part) if part else None
            if found is None or found.type != m.cfg.takes:
                refusal = (f"no {m.cfg.takes} in its fixture on {m.cfg.station} (found "
                           f"{f'{found.id}, a {found.type}' if found else 'nothing'})")
            elif found.id != job:
                refusal = f"the part in its fixture is {found.id}, not {job}"
        if refusal is not None:
            raise MachineError(f"machine {name} refuses job {job}: {refusal}")
        m.status, m.job, m.worked, m.since, m.reason, m.stalled = MachineStatus.RUNNING, job, 0.0, now, None, False
        m.started.append((job, now))
        return {"topic": "machines", "machine": name, "event": "started", "job": job, "time": now}

    def stop(self, name: str, now: float) -> dict | None:
        m = self.simulated(name)
        if m.status not in (MachineStatus.RUNNING, MachineStatus.PAUSED):
            return None
        m.status, m.reason, m.stalled = MachineStatus.IDLE, f"job {m.job} stopped", False
        return {"topic": "machines", "machine": name, "event": "stopped", "job": m.job, "time": now}

    def clear(self, name: str, now: float) -> dict:
        m = self.simulated(name)
        if m.status in (MachineStatus.RUNNING, MachineStatus.PAUSED, MachineStatus.OFFLINE):
            raise MachineError(f"machine {name}: nothing to clear while {m.status.value}")
        m.status, m.reason = MachineStatus.IDLE, None
        return {"topic": "machines", "machine": name, "event": "cleared", "job": m.job, "time": now}

    def set_door(self, name: str, open_: bool) -> None:
        m = self.simulated(name)
        if not m.cfg.door:
            raise MachineError(f"machine {name} has no door")
        if open_ and m.status in (MachineStatus.RUNNING, MachineStatus.PAUSED):
            raise MachineError(f"machine {name}: the door stays shut while job {m.job} runs")
        if m.status == MachineStatus.OFFLINE:
            raise MachineError(f"machine {name} is offline")
        m.door_open = open_

    def fault(self, name: str, kind: str, reason: str, now: float) -> dict:
        """A scenario's fault: ``fail`` (the machine's alarm, the job lost), ``offline`` /
        ``online``, ``pause`` / ``resume`` (its own operator)."""
        m = self.simulated(name)
        if kind == "fail":
            self._bank(m, now)
            m.status, m.reason = MachineStatus.FAULT, reason or "alarm"
        elif kind == "offline" and m.status != MachineStatus.OFFLINE:
            self._bank(m, now)
            m.before_offline, m.status, m.reason = m.status, MachineStatus.OFFLINE, reason or "offline"
        elif kind == "online" and m.status == MachineStatus.OFFLINE:
            m.status, m.since, m.reason = m.before_offline or MachineStatus.IDLE, now, None
        elif kind == "pause" and m.status == MachineStatus.RUNNING:
            self._bank(m, now)
            m.status, m.reason = MachineStatus.PAUSED, reason or "paused at the machine"
        elif kind == "resume" and m.status == MachineStatus.PAUSED:
            m.status, m.since, m.reason = MachineStatus.RUNNING, now, None
        elif kind == "stall" and m.status == MachineStatus.RUNNING:
            self._bank(m, now)
            m.stalled = True
        return {"topic": "machines", "machine": name, "event": kind, "job": m.job, "reason": m.reason, "time": now}

    @staticmethod
    def _bank(m: SimMachine, now: float) -> None:
        if m.status == MachineStatus.RUNNING and not m.stalled:
            m.worked += now - m.since

    # -- checkpoints -------------------------------------------------------------------------------
    def saved(self, now: float) -> dict[str, dict]:
        """Every machine's state for the twin's checkpoint (work done so far banked at ``now``)."""
        out = {}
        for name, m in self.by_name.items():
            worked = m.worked + (now - m.since if m.status == MachineStatus.RUNNING and not m.stalled else 0.0)
            out[name] = {"status": m.status.value, "job": m.job, "worked": worked, "reason": m.reason,
                         "door_open": m.door_open, "stalled": m.stalled,
                         "before_offline": m.before_offline.value if m.before_offline else None,
                         "started": [list(s) for s in m.started], "made": sorted(m.made)}
        return out

    def restore(self, saved: dict[str, dict], now: float) -> None:
        """Back to a checkpoint's states: a running job goes on from the work it had done."""
        for name, d in saved.items():
            if name not in self.by_name:
                continue
            m = self.by_name[name]
            m.status, m.job, m.worked, m.since, m.reason = MachineStatus(d["status"]), d["job"], d["worked"], now, d["reason"]
            m.door_open, m.stalled = d["door_open"], d["stalled"]
            m.before_offline = MachineStatus(d["before_offline"]) if d["before_offline"] else None
            m.started = [(job, at) for job, at in d["started"]]
            m.made = set(d.get("made", []))

    # -- time --------------------------------------------------------------------------------------
    def update(self, steps: int, now: float) -> list[dict]:
        if steps % CHECK_EVERY or not self.by_name:
            return []
        events = []
        for name, m in self.by_name.items():
            if m.follows is not None:
                events += self._follow(name, m, now)
            elif m.status == MachineStatus.RUNNING and not m.stalled and m.worked + now - m.since >= m.cfg.job_time:
                m.worked += now - m.since
                events += self._finish(name, m, now)
        return events

    def _follow(self, name: str, m: SimMachine, now: float) -> list[dict]:
        """What a followed machine did to the twin's world: a printer's finished print appears on
        the bed, once; a CNC's program that ran to its end (running, then idle or done: LinuxCNC
        names no jobs) turns the part in its fixture into what it makes."""
        real, before = m.follows.latest, m.status
        m.status = real.status
        if m.cfg.kind == "cnc":
            ended = before in (MachineStatus.RUNNING, MachineStatus.PAUSED) \
                and real.status in (MachineStatus.IDLE, MachineStatus.DONE)
            part = self._occupant(m.station)
            found = self._parts.by_id.get(part) if part else None
            if not ended or found is None or found.type != m.cfg.takes:
                return []
            self._parts.remove(part)
            self._parts.spawn(part, m.cfg.makes, m.station.position)
            return [{"topic": "machines", "machine": name, "event": "done", "job": part, "time": now}]
        if real.status != MachineStatus.DONE or real.job is None or real.job in m.made:
            return []
        m.made.add(real.job)
        if self._occupant(m.station) is not None or real.job in self._parts.by_id:
            return []  # the bed is not clear: the real print would have collided (the real printer says so)
        self._parts.spawn(real.job, m.cfg.makes, m.station.position)
        return [self._record("spawned", real.job, m.cfg.station, now),
                {"topic": "machines", "machine": name, "event": "done", "job": real.job, "time": now}]

    def _finish(self, name: str, m: SimMachine, now: float) -> list[dict]:
        here = self._occupant(m.station)
        if m.cfg.kind == "printer":
            if here is not None:
                m.status, m.reason = MachineStatus.FAULT, f"print {m.job} collided with {here} on {m.cfg.station}"
                return [{"topic": "machines", "machine": name, "event": "failed", "job": m.job, "reason": m.reason,
                         "time": now}]
            self._parts.spawn(m.job, m.cfg.makes, m.station.position)
            made = [self._record("spawned", m.job, m.cfg.station, now)]  # a part in, as a feed's
        else:
            if here != m.job:
                m.status, m.reason = MachineStatus.FAULT, f"part {m.job} left the fixture during the job"
                return [{"topic": "machines", "machine": name, "event": "failed", "job": m.job, "reason": m.reason,
                         "time": now}]
            self._parts.remove(m.job)  # the same part, now of the type the job makes
            self._parts.spawn(m.job, m.cfg.makes, m.station.position)
            made = []
        m.status, m.reason = MachineStatus.DONE, None
        return [*made, {"topic": "machines", "machine": name, "event": "done", "job": m.job, "time": now}]
