"""The cell controller: PackML decides which state the cell is in; this module decides what each
state does, one non-blocking tick per control period.

In Execute the cell works part by part, in phases:

    acquire  take a part: from a feed station (own it), or from the upstream neighbour by the
             handoff handshake (MachineReady → BoardAvailable → StartTransport → TransportFinished,
             own it, StopTransport)
    work     pick it from the take station, run the recipe's skills
    deliver  place it on a sink (DELIVERED), or hand it to the downstream neighbour (BoardAvailable,
             wait for StartTransport, place it on the handoff station, commit IN_TRANSIT,
             TransportFinished, wait for StopTransport → GIVEN)

Every custody change goes to the ledger first, then to the peer. A skill failure or driver fault
→ Held (Execute → Hold is always legal); never a silent retry loop. A neighbour that disappears
while the cell waits on it → Suspended, Held after ``hold_after`` s, and back to Execute when it
returns (from Held only with a simulated robot: a real one moves again on an operator's Unhold).
The twin itself going away (simulation only) → Held, with nothing sent to it; when the same twin
answers again (a network outage, a pause: its world went on as it was) the cell resumes by itself,
while a restarted twin's restored world waits for the launcher's reconciliation and Unhold. Unhold
and restarts re-plan from the physical state and the ledger, never from memory.

A cell may tend machines (a printer, a CNC: ``cells.NAME.machines``). A printer whose bed is the
cell's take station is its source: acquiring a part starts a print for a part id minted in the
ledger, waits for it and takes it off the bed (start_job, wait_job, unload_machine, then the
recipe); the recipe tends the others (load_machine, start_job, wait_job, unload_machine). The cell
stays in Execute while a machine runs its job; it is Suspended, with the machine's reason, while a
machine is paused at its panel, offline or busy (a tending skill's ``blocked``), and Held on a
machine's alarm — an Unhold acknowledges the alarm through the machine's API and runs the job again.
After a restart the steps still to run on a part come from the ledger (which machine it is in,
which jobs it left), and start_job asks the machine before it starts anything: never twice.
"""

from __future__ import annotations

import time
import traceback
from datetime import datetime
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from cellctl.custody import ledger as L
from cellctl.processes.crash import crash_point
from cellctl.custody.custodian import UNIDENTIFIED, Custodian
from cellctl.handoff.hermes import HermesState as H
from cellctl.handoff.link import HandoffLink, LinkEvent
from cellctl.handoff.messages import MAX_RESYNC
from cellctl.config.line import CellConfig, LineConfig
from cellctl.faults import LOST_WORLD, NO_FAULT, Fault, FaultKind
from cellctl.cell.packml import Command, CommandRefused, PackML, State
from cellctl.devices.sensing import PartSensor
from cellctl.drivers.contract import Motion, RobotDriver
from cellctl.drivers.machine import MachineDriver, MachineStatus
from cellctl.drivers.errors import ConnectionLost, DriverError, LimitViolation, Unreachable
from cellctl.drivers.types import Vec3
from cellctl.skills.context import SkillContext
from cellctl.skills.events import EventSink, make_event
from cellctl.skills.sequence import SkillSequence
from cellctl.twin.config import StationConfig

CELL, LAUNCHER = "cell", "launcher"  # who gives a command besides operators (cli, page, opcua, ...)
MAX_ALARMS = 100  # the alarm history kept in memory (the run's events keep every one)
STATUS_ALARMS = 10  # the newest cleared alarms a status reply carries
LOST_TEXT = {FaultKind.TWIN_LOST: ("twin lost", "twin"), FaultKind.ROBOT_LINK_LOST: ("robot link lost", "robot")}
LINK_PROBE_EVERY_S = 1.0  # wall s between looks at a real robot's lost link while Held
STARVED_AFTER = 30.0  # driver s a cell waits for a part (starved) or for its downstream (blocked) before Suspended
WAIT_HORIZON = 1.0  # s of driver time a waiting cell sleeps at most (lockstep next-event advance)
ANNOUNCE_EVERY = 1.0  # wall s between re-announcements of a part in transit that no exchange settles


class Phase(StrEnum):
    """Where the cell is with its current part in Execute (see the module docstring)."""

    ACQUIRE = "acquire"
    WORK = "work"
    DELIVER = "deliver"
    HANDOVER = "handover"


@dataclass
class CellSetup:
    """What a cell is wired to, built by its process from config: its recipe, its robot (through
    the skill context), its part sensor, its ledger and its neighbours."""

    name: str
    cfg: CellConfig
    ctx: SkillContext
    sensor: PartSensor
    ledger: L.Ledger
    feed_types: Mapping[str, str] = field(default_factory=dict)  # feed station -> the part type it produces
    upstream: HandoffLink | None = None
    downstream: HandoffLink | None = None
    work_order: int | None = None  # parts to finish; None: the config's
    simulated: bool = True  # the robot is the twin's: a cell Held only for a gone neighbour resumes by itself
    stations: Mapping[str, StationConfig] = field(default_factory=dict)  # for feeds' prefixes (minted ids)
    wall: Callable[[], float] = time.monotonic  # liveness and re-announcement timing (a test passes a virtual one)
    machine_stations: Mapping[str, str] = field(default_factory=dict)  # tended machine -> its station

    @classmethod
    def from_config(cls, config: LineConfig, name: str, driver: RobotDriver, sensor: PartSensor, ledger: L.Ledger,
                    events: EventSink, locate: Callable[[str], Vec3 | None] | None = None,
                    **wiring: object) -> CellSetup:
        """Cell ``name`` of a line config on ``driver``: its skill context (stations, part height,
        sinks) and feed types from the config; ``wiring`` is the rest (neighbours, work order...)."""
        cfg = config.cells[name]
        machines: Mapping[str, MachineDriver] = wiring.pop("machines", {})  # type: ignore[assignment]
        ctx = SkillContext.create(driver, stations={n: s.position for n, s in config.stations.items()},
                                  part_height=max(t.size[2] for t in config.part_types.values()),
                                  locate=locate, events=events, robot=cfg.robot,
                                  sinks=frozenset(n for n, s in config.stations.items() if s.sink),
                                  machines=machines)
        feed_types = {n: s.feed.part_type for n, s in config.stations.items() if s.feed}
        return cls(name, cfg, ctx, sensor, ledger, feed_types, stations=config.stations,
                   machine_stations={m: config.machines[m].station for m in cfg.machines}, **wiring)


class Cell:
    def __init__(self, setup: CellSetup) -> None:
        self.name, self.cfg, self.ctx = setup.name, setup.cfg, setup.ctx
        self.driver: RobotDriver = setup.ctx.driver
        self.sensor = setup.sensor
        self.feed_types = setup.feed_types
        self.events, self.ledger = setup.ctx.events, setup.ledger
        self.upstream, self.downstream = setup.upstream, setup.downstream
        self.work_order = setup.work_order if setup.work_order is not None else self.cfg.parts
        self.simulated = setup.simulated
        self._wall = setup.wall
        self.stations = setup.stations
        self._last_time = 0.0
        self.custody = Custodian(self.ledger, self.sensor, self.cfg, self.ctx, self.emit, self.driver.now,
                                 setup.stations, setup.machine_stations)
        self.ctx.tending = self.custody
        self.machines: Mapping[str, MachineDriver] = self.ctx.machines
        # a printer whose bed is the take station: the cell's source of parts
        self.take_machine = next((m for m, st in setup.machine_stations.items() if st == self.cfg.take), None)
        self._machine_wait = False  # Suspended because a tending skill waits on its machine
        self.part: str | None = None  # the part this cell is working on
        self.phase: Phase | None = None
        self.sequence: SkillSequence | None = None
        self.fault: Fault | None = None  # the active alarm
        self._raised: tuple[float, str] = (0.0, "")  # when it was raised: sim s, ISO wall time
        self.alarm_history: list[dict] = []  # cleared alarms, oldest first (at most MAX_ALARMS)
        self._queued: list[tuple[str, str, str | None]] = []  # commands from outside (command, by, user), applied
        # at the next tick
        self.offered: tuple[str, str] | None = None  # (part, type) the upstream neighbour offers
        self._action: Motion | None = None
        self._suspended_at: float | None = None  # monotonic wall time
        self._idle_since: float | None = None  # driver time the cell began to wait (starved or blocked)
        self._announced_at = 0.0  # monotonic wall time of the last re-announcement of a part in transit
        self._neighbour: HandoffLink | None = None  # the gone neighbour we are Suspended / Held for
        self._twin_back = False  # Held for a lost twin, and the same twin answers again
        self._link_back = False  # Held for a lost robot link, and the robot answers again
        self._link_probed = 0.0  # wall time of the last look at a lost robot link
        # The robot is known to be clear of the give station (home after placing, or homed). Until it
        # is, a part IN_TRANSIT there is not announced: the receiver would reach into our arm.
        self.clear_of_give = False
        # The world was restored from a checkpoint: the robot may stand where it stood a moment
        # before (over a shared station, say). It homes first, before any plan.
        self.rehome = False
        self._phases: dict[Phase, Callable[[], None]] = {
            Phase.ACQUIRE: self._phase_acquire, Phase.WORK: self._phase_work,
            Phase.DELIVER: self._phase_deliver, Phase.HANDOVER: self._phase_handover,
        }
        self.packml = PackML(self._on_change)

    # -- status and events -----------------------------------------------------------------------
    @property
    def state(self) -> State:
        return State(self.packml.state)

    @property
    def parts_done(self) -> int:
        """Parts of the current work order given on or delivered, counted in the ledger: a part
        settled by a resync, a reconcile or a StopTransport while the cell was doing something else
        counts too. A new work order (Reset after Complete) starts from the ledger's count then."""
        return self.custody.finished() - self.ledger.order_base()

    def status(self) -> dict:
        skill = self.sequence.current.name if self.sequence and self.sequence.current else None
        waiting = self._waiting_on() if self.state in (State.EXECUTE, State.SUSPENDED, State.HELD) else None
        return {"cell": self.name, "state": self.state, "state_number": self.packml.state_number, "skill": skill,
                "phase": self.phase, "parts_done": self.parts_done, "work_order": self.work_order,
                "part": self.part, "sim_time": round(self._last_time, 3), **(self.fault.fields() if self.fault else NO_FAULT),
                "fault_since": self._raised[1] if self.fault else None,
                "alarm_history": self.alarm_history[-STATUS_ALARMS:],
                "waiting_for": waiting.peer if waiting else None,
                "links": {"robot": self._robot_link(),
                          **{link.role: {"peer": link.peer, "state": link.fsm.state, "connected": link.connected}
                             for link in (self.upstream, self.downstream) if link is not None}}}

    def emit(self, kind: str, **fields: object) -> None:
        try:
            self._last_time = self.driver.now()
        except DriverError:
            pass  # the time source is gone (a lost twin): the event is stamped with the last time seen
        self.events.emit(make_event(kind, self._last_time, cell=self.name, **fields))

    def _on_change(self, source: str, dest: str, event: str) -> None:
        self.emit("packml", source=source, dest=dest, event=event, state_number=self.packml.state_number)

    # -- commands ----------------------------------------------------------------------------------
    def command(self, command: str, by: str = CELL, user: str | None = None) -> None:
        """A PackML command, applied now (CommandRefused if the state forbids it). ``by``: who asked
        — the cell itself, the launcher, or an operator through cli, page, opcua...; ``user``: the
        logged-in person behind a page or OPC UA command. An operator's Hold, Stop or Abort is the
        stop's reason (fault kind ``operator``); the commands that resume or restart clear the
        active fault into the alarm history."""
        new_order = command == Command.RESET and self.state == State.COMPLETE
        self.packml.command(command)
        if by != CELL:
            self.emit("command", command=str(command), by=by, **({"user": user} if user else {}))
        who = f"{user} via {by}" if user else by
        if new_order:
            self.ledger.start_order(self.custody.finished())
        if command in (Command.UNHOLD, Command.RESET) and self._fault_is(FaultKind.MACHINE_FAULT):
            self._acknowledge(self.fault.source.removeprefix("machine "))
        if command in (Command.UNHOLD, Command.UNSUSPEND, Command.RESET, Command.CLEAR, Command.START):
            self._clear_fault(f"{command} by {who}")
        if command in (Command.STOP, Command.ABORT, Command.HOLD):
            if by not in (CELL, LAUNCHER):
                self._raise_fault(Fault(FaultKind.OPERATOR, f"{command} by the operator ({who})", f"operator {who}"))
            self._halt()
        if command in (Command.UNHOLD, Command.UNSUSPEND, Command.STOP, Command.ABORT):
            self._neighbour, self._twin_back = None, False

    def queue(self, command: str, by: str, user: str | None = None) -> None:
        """A command from outside (an operator, the launcher): refused now if the state forbids it,
        else applied at the start of the next tick — never "busy". If the state changed by then and
        forbids it, a ``command_refused`` event says why."""
        self.packml.check(command)
        self._queued.append((command, by, user))

    def _apply_queued(self) -> None:
        queued, self._queued = self._queued, []
        for command, by, user in queued:
            try:
                self.command(command, by, user)
            except CommandRefused as exc:
                self.emit("command_refused", command=str(command), by=by, reason=str(exc),
                          **({"user": user} if user else {}))

    def _acknowledge(self, name: str) -> None:
        """An operator resumes after a machine's alarm: the alarm is acknowledged through the
        machine's API, and the part's job counts as failed, so it runs again once the cell is back
        in Execute (unless the machine still runs it)."""
        machine = self.machines.get(name)
        if self.part is not None and self.ledger.job_state(self.part, name) == L.JobState.STARTED:
            self.custody.job(self.part, name, L.JobState.FAILED)
        try:
            if machine is not None and machine.state().status == MachineStatus.FAULT:
                machine.clear()
        except DriverError as exc:  # it stays in its alarm: the job's next look at it holds the cell again
            self._emit_fault(Fault(FaultKind.MACHINE_FAULT, f"machine {name}: the alarm could not be acknowledged: "
                                                            f"{exc}", f"machine {name}"))

    def _halt(self) -> None:
        """Stop whatever moves; the part stays where it is (in the gripper, if held)."""
        sequence, self.sequence = self.sequence, None
        self.phase = None  # re-plan from the physical state on the way back to Execute
        self._action = None
        self._machine_wait = False
        self.clear_of_give = False  # stopped wherever it was
        try:
            if sequence is not None:
                sequence.cancel()
            self.driver.stop()  # whatever the cancel could not reach stops here
        except DriverError as exc:
            self._emit_fault(Fault(FaultKind.DRIVER, f"stop failed: {exc}", "robot"))
            try:
                self.driver.stop()
            except DriverError:
                pass  # the robot is unreachable: the fault above says so

    def replan(self, reason: str) -> None:
        """Drop the running skills and choose again from the ledger and the physical state (after
        this controller was away while the world went on)."""
        self.emit("replan", reason=reason)
        if self.state == State.EXECUTE:
            self._halt()
            # What the halted skills left behind (a part placed on the handoff station but not yet
            # committed, say) is read from the stations, as after a restart.
            self.reconcile()

    # -- recovery ----------------------------------------------------------------------------------
    def reconcile(self) -> None:
        """Bring the ledger in line with the gripper, stations and machines (after a restart, before Reset)."""
        self.custody.reconcile(self.downstream, self.machines)

    # -- links -------------------------------------------------------------------------------------
    def peers(self) -> list[str]:
        return [link.peer for link in (self.upstream, self.downstream) if link is not None]

    def cut_link(self, peer: str, seconds: float) -> None:
        """An injected fault (simulation only): the link to ``peer`` is down for ``seconds`` of sim time."""
        link = next(link for link in (self.upstream, self.downstream) if link is not None and link.peer == peer)
        link.cut(self.driver.now() + seconds)

    def _service_links(self) -> None:
        for link, handler in ((self.upstream, self._upstream_event), (self.downstream, self._downstream_event)):
            if link is None:
                continue
            if link.cut_until is not None and self.driver.now() >= link.cut_until:
                link.mend()
            link.tick()
            for event in link.take_events():
                handler(link, event)

    def _upstream_event(self, link: HandoffLink, ev: LinkEvent) -> None:
        msg = ev.msg
        if ev.kind == "connected":
            link.send_extra("Resync", received=self.ledger.received_from(link.peer, MAX_RESYNC))
        elif ev.kind == "BoardAvailable":
            self.offered = (msg["part"], msg.get("part_type", "?"))
        elif ev.kind in ("RevokeBoardAvailable", "disconnected"):
            self.offered = None
        elif ev.kind == "TransportFinished":
            crash_point("receiver_after_transport_finished_before_commit")
            self.custody.change("own", msg["part"], msg.get("part_type", "?"), link.peer)
            if link.fsm.state in (H.TRANSPORTING, H.TRANSPORT_FINISHED):
                link.send("StopTransport", part=msg["part"], transfer_state="Complete")
            # else the session ended after the message came (a reconnect in the same tick): the
            # Resync of the next session lists the part as received, and the sender settles on it
            self.offered = None
        elif ev.kind == "ResyncTransfer":
            self.custody.resync_transfer(link, msg)

    def _downstream_event(self, link: HandoffLink, ev: LinkEvent) -> None:
        msg = ev.msg
        if ev.kind == "Resync":
            self.custody.resync(link, msg["received"], announce=self.clear_of_give)
        elif ev.kind == "ResyncAck":
            self.custody.resync_ack(link, msg)
        elif ev.kind == "StopTransport":
            crash_point("sender_after_stop_transport_before_commit")
            self.custody.change("given", msg["part"])

    def _waiting_on(self) -> HandoffLink | None:
        """The neighbour link the current phase cannot proceed without."""
        if self.phase in (None, Phase.ACQUIRE) and self.upstream is not None and self.part is None \
                and not self._order_done():
            return self.upstream
        if self.phase in (Phase.DELIVER, Phase.HANDOVER) and self.downstream is not None:
            return self.downstream
        return None

    # -- tick --------------------------------------------------------------------------------------
    def wake_hint(self) -> float | None:
        """When the next tick is needed at the latest, if nothing happens first. In Execute with no
        skill running the cell waits for a part (an event at its take station) or a neighbour (a
        message): both wake it, so it sleeps up to WAIT_HORIZON instead of acknowledging every period."""
        if self.sequence is not None:
            return self.sequence.wake_hint()
        if self.state == State.EXECUTE and self.phase is not None:
            return self.driver.now() + WAIT_HORIZON
        if self.state == State.SUSPENDED:
            return self.driver.now() + WAIT_HORIZON  # hold_after is wall time: looked at every tick
        return None

    def tick(self) -> None:
        self._apply_queued()
        state = self.state
        try:
            self._service_links()
            if state == State.EXECUTE:
                self._execute()
            elif state == State.RESETTING:
                self._resetting()
            elif state == State.SUSPENDED:
                self._suspended()
            elif state == State.HELD:
                self._probe_robot_link()
                if self.simulated and self._gone_is_back():
                    self.command(Command.UNHOLD)  # held only because the twin, link or neighbour was gone: it is
                    # back (a real robot moves again only on an operator's Unhold: automatic resumption is from
                    # Suspended only)
            elif self.packml.acting:
                if state in (State.STOPPING, State.ABORTING) or (state == State.HOLDING and not self.world_gone):
                    self._halt()  # (held for a world that is gone: nothing to send it, world_lost dropped it all)
                if state == State.UNHOLDING:  # a motion dropped when the world was lost may still run: it ends
                    self.driver.stop()    # first (and a world still gone is noticed here, Held again)
                if state == State.UNSUSPENDING:
                    self._suspended_at = None
                self.packml.complete()
        except ConnectionLost as exc:  # the world is gone: Held for it (in simulation Unheld once it is back)
            self.world_lost(self.lost_kind, str(exc))
        except DriverError as exc:
            kind = FaultKind.LIMIT if isinstance(exc, (LimitViolation, Unreachable)) else FaultKind.DRIVER
            self._fail(Fault(kind, f"{type(exc).__name__}: {exc}", "robot"))
        except Exception as exc:  # noqa: BLE001 - a ledger error or a bug in a user's skill: Held, never a dead cell
            traceback.print_exc()  # into the cell's log
            self._fail(Fault(FaultKind.INTERNAL, f"{type(exc).__name__} in state {state}: {exc}", "cell"))

    @property
    def lost_kind(self) -> FaultKind:
        """What losing the world means for this cell: a twin (simulation) or a real robot's link."""
        return FaultKind.TWIN_LOST if self.simulated else FaultKind.ROBOT_LINK_LOST

    def world_lost(self, kind: FaultKind, detail: str) -> None:
        """The twin (or a ROS robot's bridge) stopped answering: Held with the reason. Nothing is
        sent to it — the skills and the homing move it was running are dropped, not cancelled — and
        the cell re-plans from the world as it is when it is Unheld."""
        if self.state in (State.HELD, State.HOLDING, State.RESETTING) and self.fault and self.fault.kind == kind:
            return  # said already (a link retried every second stays one fault; a Reset homes once it is back)
        text, source = LOST_TEXT[kind]
        self._raise_fault(Fault(kind, f"{text}: {detail}", source))
        self._twin_back = self._link_back = False
        self.sequence, self.phase, self._action = None, None, None
        self.clear_of_give, self._machine_wait = False, False
        if Command.HOLD in self.packml.allowed():
            self.packml.command(Command.HOLD)

    @property
    def world_gone(self) -> bool:
        """Held (or holding) because the twin or the robot's bridge stopped answering."""
        return self.state in (State.HOLDING, State.HELD) and self.fault is not None and self.fault.kind in LOST_WORLD

    def waits_for_twin(self) -> bool:
        """A simulated cell Held for a lost twin, not yet told that it is back."""
        return self.simulated and self.world_gone and not self._twin_back

    def _robot_link(self) -> dict:
        """The link to the robot (its bridge, or the twin) as status shows it: lost from the moment
        a request failed until the cell has seen it answer again."""
        lost = self.world_gone and not self._twin_back and not self._link_back
        return {"peer": self.cfg.robot, "state": "lost" if lost else "up", "connected": not lost}

    def _probe_robot_link(self) -> None:
        """Held for a real robot's lost link: ask the robot (its joint state) once a second, so
        status shows when it is back and an operator's Unhold works from then on."""
        if self._link_back or not self._fault_is(FaultKind.ROBOT_LINK_LOST) or \
                self._wall() - self._link_probed < LINK_PROBE_EVERY_S:
            return
        self._link_probed = self._wall()
        try:
            self.driver.joint_state()
            self.sensor.present(self.cfg.take)  # its station sensors too (on the same bridge, or their own)
        except DriverError:
            return
        self._link_back = True
        self.emit("robot_link", state="up", reason="the robot and its sensors answer again")

    def _gone_is_back(self) -> bool:
        """Held only because the twin, the robot's link (simulated) or the neighbour was gone, and
        it is back."""
        if self._twin_back and self._fault_is(FaultKind.TWIN_LOST):
            return True
        if self.simulated and self._link_back and self._fault_is(FaultKind.ROBOT_LINK_LOST):
            return True
        return self._neighbour is not None and self._neighbour.connected

    def twin_back(self) -> None:
        """The twin we lost answers again, the same instance (not restarted from a checkpoint): held
        only for it, a simulated cell resumes — a line run cell by cell has no launcher to Unhold it."""
        if self.simulated and self._fault_is(FaultKind.TWIN_LOST):
            self._twin_back = True

    def _fault_is(self, kind: FaultKind) -> bool:
        return self.fault is not None and self.fault.kind == kind

    def _emit_fault(self, fault: Fault) -> None:
        self.emit("fault", reason=fault.reason, fault_kind=fault.kind.value, source=fault.source)

    def _raise_fault(self, fault: Fault) -> None:
        """``fault`` is now the cell's active alarm (one that was active goes to the history)."""
        self._clear_fault(f"replaced by {fault.kind}")
        self.fault, self._raised = fault, (self._last_time, _iso())
        self._emit_fault(fault)

    def _clear_fault(self, why: str) -> None:
        """The active alarm, if any, goes to the alarm history with when it was raised and cleared."""
        if self.fault is None:
            return
        entry = {**self.fault.fields(), "raised": self._raised[1], "raised_sim": round(self._raised[0], 3),
                 "cleared": _iso(), "cleared_sim": round(self._last_time, 3), "cleared_by": why}
        self.alarm_history = [*self.alarm_history[-(MAX_ALARMS - 1):], entry]
        self.fault = None
        self.emit("alarm_cleared", **{k: v for k, v in entry.items() if k != "fault"}, reason=entry["fault"])

    def _fail(self, fault: Fault) -> None:
        self._raise_fault(fault)
        self._halt()
        self.packml.command(Command.HOLD if Command.HOLD in self.packml.allowed() else Command.ABORT)

    def _resetting(self) -> None:
        """Home the robot; Idle when it is there. Faults are cleared here, not silently earlier."""
        if self._action is None:
            if self.fault is None or self.fault.kind not in LOST_WORLD:  # (a link lost while homing stays the
                self._clear_fault("Reset")                                 # alarm until the homing is done)
            self.driver.stop()  # whatever the robot still does (a dead predecessor's motion) ends first
            self._action = self.driver.move_joints([list(self.driver.describe().home)], speed=0.5)
            return
        status = self._action.status
        if status.done:
            ended, reason, self._action = self._action, self._action.reason, None
            if ended.link_lost:  # the bridge went away: homing goes on once
                self.world_lost(self.lost_kind, f"homing: {reason}")  # it is back (Reset was the operator's ask)
            elif status.value != "succeeded":  # the driver's reason (the controller's words) goes with it
                self._fail(Fault(FaultKind.CONTROLLER_STOPPED,
                                 f"homing {status.value}" + (f": {reason}" if reason else ""), "robot"))
            else:
                self._clear_fault("Reset: homed")
                self.clear_of_give = True
                self.packml.complete()

    def _suspended(self) -> None:
        link = self._neighbour
        if self._machine_wait:  # the tending skill goes on looking at its machine: back when it can go on
            if self.sequence is None or self.sequence.tick() is not None or self.sequence.blocked() is None:
                self._machine_wait = False
                self.command(Command.UNSUSPEND)
        elif link is None:  # starved or blocked: back to Execute by itself once a part or room is there
            if self._idle_reason() is None:
                self.command(Command.UNSUSPEND)
        elif link.connected:
            self.command(Command.UNSUSPEND)
        elif self._wall() - self._suspended_at > self.cfg.hold_after:
            self._raise_fault(Fault(FaultKind.NEIGHBOUR_LOST,
                                    f"neighbour {link.peer} gone for over {self.cfg.hold_after}s",
                                    f"neighbour {link.peer}"))
            self.packml.command(Command.HOLD)  # keeps _neighbour: Held resumes by itself when it is back
            self._halt()

    def _execute(self) -> None:
        link = self._waiting_on()
        if link is not None and not link.connected and self.sequence is None:
            self._suspended_at = self._wall()  # a neighbour's absence is judged in wall time
            self.emit("waiting", neighbour=link.peer, reason="neighbour not connected")
            self.command(Command.SUSPEND)
            self._neighbour = link
            return
        if self.rehome:
            if self.sequence is None:
                self._start([{"skill": "move_joints", "params": {"positions": list(self.driver.describe().home)}}])
            if self._run_sequence():
                self.rehome, self.clear_of_give = False, True
            return
        if self.phase is None:
            self._plan()
        self._phases[self.phase]()
        if self.sequence is not None and (why := self.sequence.blocked()) is not None:
            machine = getattr(self.sequence.current.params, "machine", "?")
            self._raise_fault(Fault(FaultKind.MACHINE_UNAVAILABLE, f"part {self.part}: {why}", f"machine {machine}"))
            self.command(Command.SUSPEND)
            self._machine_wait = True
            return
        self._check_idle()

    def _check_idle(self) -> None:
        """Waiting for a part, or for the downstream neighbour to take one, for STARVED_AFTER s of
        driver time: Suspended with the reason (PackML: the machine's own state), which comes back
        to Execute by itself."""
        reason = self._idle_reason() if self.state == State.EXECUTE else None
        now = self.driver.now()
        if reason is None:
            self._idle_since = None
        elif self._idle_since is None:
            self._idle_since = now
        elif now - self._idle_since >= STARVED_AFTER:
            self._idle_since = None
            self._raise_fault(reason)  # its fault event says why (``waiting`` is for a gone neighbour)
            self.command(Command.SUSPEND)

    def _idle_reason(self) -> Fault | None:
        """Why the cell can do nothing now, if it waits: starved (no part to take; for good once its
        feed has given all it will) or blocked (its downstream neighbour does not take its part)."""
        if self.sequence is not None or self.rehome or self.part is not None and self.phase != Phase.DELIVER:
            return None
        if self.phase in (None, Phase.ACQUIRE) and self.part is None:
            if self._order_done() or self.custody.occupant(self.cfg.take) is not None or self.offered is not None:
                return None
            if self.upstream is not None:
                return Fault(FaultKind.STARVED, f"starved: no part from {self.upstream.peer}",
                             f"neighbour {self.upstream.peer}")
            feed = self.stations[self.cfg.take].feed if self.cfg.take in self.stations else None
            fed = self.ledger.count_from(self.cfg.take)
            if feed is not None and feed.count is not None and fed >= feed.count:
                return Fault(FaultKind.DRY_FEED, f"starved: {self.cfg.take} empty, {fed} of "
                                                 f"{self.work_order or feed.count} fed", f"station {self.cfg.take}")
            return Fault(FaultKind.STARVED, f"starved: {self.cfg.take} empty", f"station {self.cfg.take}")
        link = self.downstream
        if self.phase == Phase.DELIVER and link is not None and link.connected \
                and link.fsm.state in (H.NOT_AVAILABLE_NOT_READY, H.BOARD_AVAILABLE):
            return Fault(FaultKind.BLOCKED, f"blocked: {link.peer} not ready", f"neighbour {link.peer}")
        return None

    def _plan(self) -> None:
        """Choose the phase from the ledger and the physical state, never from memory."""
        held = self.driver.gripper_state()
        owned = [c.part for c in self.ledger.with_state(L.OWNED)]
        if not held.part_present and owned and any(p != self.custody.occupant(self.cfg.take) for p in owned):
            # owned, not in the hand, not on the take station: placed on the give station and not
            # committed (a skill cut off by a lost twin or a halt), or gone
            self.reconcile()
        in_transit = self.ledger.with_state(L.IN_TRANSIT)
        inside = [c for m, c in self.ledger.in_machines().items() if m != self.take_machine]
        if in_transit:
            self.part, self.phase = in_transit[0].part, Phase.HANDOVER
        elif held.part_present:
            self.part, self.phase = held.part_id or self.custody.part_in_hand(), Phase.WORK
            self._start(self._remaining(self.part))  # resume: already picked (or taken out of a machine)
        elif inside:  # in a machine the recipe tends: its job, and on from there
            self.part, self.phase = inside[0].part, Phase.WORK
            self._start(self._remaining(self.part))
        else:
            self.part, self.phase = None, Phase.ACQUIRE

    def _remaining(self, part: str) -> list[dict]:
        """The steps still to run on ``part``, from the ledger: after the ``load_machine`` that put
        it into the machine it is in, or after the ``unload_machine`` that last took it out of one;
        with a printer as the source, its print's steps first. A part in the hand with no machine
        behind it runs the whole recipe (it was just picked)."""
        steps = [*self._take_steps(), *self.cfg.recipe]
        c = self.ledger.get(part)
        for i in range(len(steps) - 1, -1, -1):
            machine = steps[i].get("params", {}).get("machine")
            if c is not None and c.state == L.IN_MACHINE:
                if steps[i]["skill"] == "load_machine" and machine == c.peer:
                    return steps[i + 1:]
            elif steps[i]["skill"] == "unload_machine" and self.ledger.job_state(part, machine) == L.JobState.UNLOADED:
                return steps[i + 1:]
        to_print = c is None or c.state == L.IN_MACHINE and c.peer == self.take_machine  # (c None: a minted id)
        return steps if to_print or not self.take_machine else list(self.cfg.recipe)

    def _take_steps(self) -> list[dict]:
        """With a printer as the source: print the part, wait for it, take it off the bed."""
        if self.take_machine is None:
            return []
        return [{"skill": skill, "params": {"machine": self.take_machine}}
                for skill in ("start_job", "wait_job", "unload_machine")]

    def _start(self, steps: list[dict]) -> None:
        self.ctx.part = self.part  # the tending skills' jobs are named after it
        self.sequence = SkillSequence(self.ctx, steps)

    def _run_sequence(self) -> bool | None:
        """Tick the running sequence: True when it succeeded, None while running (failure holds)."""
        result = self.sequence.tick()
        if result is None:
            return None
        self.sequence = None
        if result.ok:
            return True
        if result.link_lost:  # the world went away under the skill: Held for it, not a task failure
            self.world_lost(self.lost_kind, f"part {self.part}: {result.reason}")
        elif result.machine:
            self._fail(Fault(FaultKind.MACHINE_FAULT, f"part {self.part}: {result.reason}", f"machine {result.machine}"))
        else:
            self._fail(Fault(FaultKind.SKILL_FAILED, f"part {self.part}: {result.reason}", "recipe"))
        return None

    def _order_done(self) -> bool:
        return self.work_order is not None and self.parts_done >= self.work_order

    def _phase_acquire(self) -> None:
        if self._order_done():
            self.packml.complete()
            return
        if self.take_machine is not None:  # the part is printed for it: its id minted here, the job named after it
            self.part = self.custody.inside(self.take_machine) or self.ledger.mint(self.take_machine)
            self.phase = Phase.WORK
            self.emit("part_start", part=self.part)
            self._start(self._remaining(self.part))
            return
        on_take = self.custody.occupant(self.cfg.take)
        if self.upstream is None and on_take is not None:
            part_type = self.feed_types.get(self.cfg.take, "?")
            if not self._accepts(on_take, part_type):
                return
            if on_take == UNIDENTIFIED:  # a feed whose sensor gives presence only: this cell names the part
                on_take = self.custody.name_part(self.cfg.take)
            self.custody.change("own", on_take, part_type, self.cfg.take)
        if on_take is not None and (c := self.ledger.get(on_take)) is not None and c.state == L.OWNED:
            self.part, self.phase = on_take, Phase.WORK
            self.emit("part_start", part=on_take)
            # where the backend locates parts (the twin; a vision system) the pick goes to the part
            # itself: one knocked off the station's centre (a neighbour's arm, a pause mid-grasp) is
            # still picked; otherwise to the station's position
            target = {"part": on_take} if self.ctx.locate is not None else {"station": self.cfg.take}
            self._start([{"skill": "pick", "params": target}, *self.cfg.recipe])
            return
        link = self.upstream
        if link is None or not link.connected or on_take is not None:
            return  # starved, or the offered part is being placed on the station
        if link.fsm.state in (H.NOT_AVAILABLE_NOT_READY, H.BOARD_AVAILABLE):
            link.send("MachineReady")
        elif link.fsm.state == H.AVAILABLE_AND_READY and self.offered is not None and self._accepts(*self.offered):
            link.send("StartTransport", part=self.offered[0])

    def _accepts(self, part: str, part_type: str) -> bool:
        """A part of a type outside the cell's ``part_types`` is never taken: Held, for an operator."""
        if not self.cfg.part_types or part_type in self.cfg.part_types:
            return True
        self._fail(Fault(FaultKind.WRONG_PART, f"part {part} is of type {part_type!r}; this cell works on "
                               f"{self.cfg.part_types}",
                               f"neighbour {self.upstream.peer}" if self.upstream else f"station {self.cfg.take}"))
        return False

    def _phase_work(self) -> None:
        if self._run_sequence():
            self.phase = Phase.DELIVER

    def _phase_deliver(self) -> None:
        link = self.downstream
        if link is None:
            if self.sequence is None:
                self._start([{"skill": "place", "params": {"station": self.cfg.give}}])
            if self._run_sequence():
                self.custody.change("delivered", self.part)
                self._part_done()
            return
        if self.sequence is None:
            state = link.fsm.state
            if state != H.TRANSPORTING and not self.driver.gripper_state().part_present:
                # the part left the hand (a restored world, a halted place): the offer is void, choose again
                if state in (H.BOARD_AVAILABLE, H.AVAILABLE_AND_READY):
                    link.send("RevokeBoardAvailable")
                self.phase = None
                return
            if state in (H.NOT_AVAILABLE_NOT_READY, H.MACHINE_READY):
                c = self.ledger.get(self.part)
                link.send("BoardAvailable", part=self.part, part_type=c.part_type if c else "?")
            elif state == H.TRANSPORTING:  # place it, then clear the shared station before TransportFinished
                self.clear_of_give = False
                self._start([{"skill": "place", "params": {"station": self.cfg.give}},
                             {"skill": "move_joints", "params": {"positions": list(self.driver.describe().home)}}])
            return
        if self._run_sequence():
            self.clear_of_give = True  # placed, then home
            crash_point("sender_after_place_before_commit")
            self.custody.change("in_transit", self.part, link.peer)
            crash_point("sender_after_in_transit_commit")
            if link.fsm.state == H.TRANSPORTING:
                link.send("TransportFinished", part=self.part, transfer_state="Complete",
                          part_type=self.ledger.get(self.part).part_type)
            self.phase = Phase.HANDOVER

    def _phase_handover(self) -> None:
        """The part rests on the handoff station, IN_TRANSIT: done once the neighbour took custody
        (StopTransport, or the resync after a reconnect). It is announced only once the robot is
        clear of the station (home), so a re-plan between placing and moving away waits for that."""
        c = self.ledger.get(self.part)
        if c is not None and c.state == L.GIVEN:
            self._part_done()
            return
        if not self.clear_of_give:  # after a re-plan or restart: out of the station before the receiver comes
            if self.sequence is None:
                self._start([{"skill": "move_joints", "params": {"positions": list(self.driver.describe().home)}}])
            if self._run_sequence():
                self.clear_of_give = True
            return
        link = self.downstream
        now = self._wall()
        if link is not None and link.connected and link.fsm.state == H.TRANSPORTING:
            # placed during a transport whose TransportFinished was never sent (a re-plan came between)
            link.send("TransportFinished", part=self.part, transfer_state="Complete", part_type=c.part_type)
        elif link is not None and link.connected and link.fsm.state != H.TRANSPORT_FINISHED \
                and now - self._announced_at > ANNOUNCE_EVERY:
            # No live Transporting exchange will settle it (the receiver restarted, say): ask again.
            self._announced_at = now
            self.custody.announce(link, self.part)

    def _part_done(self) -> None:
        self.emit("part_done", part=self.part)
        self.part, self.phase = None, None


def _iso() -> str:
    """Wall time as a technician reads it: ISO 8601 in local time, to the second."""
    return datetime.now().astimezone().isoformat(timespec="seconds")
