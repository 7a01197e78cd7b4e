"""Custody bookkeeping of one cell: every change to the ledger (with its event), reconciliation with
the physical state after a restart, and the resync that settles parts in flight with a neighbour
after a reconnect, and the custody of parts inside the machines the cell tends (the tending
skills report through it: ``cellctl.skills.context.Tending``). The cell decides *when*; this module
decides *what the ledger says*, from the ledger and the sensors, never from memory."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from cellctl.faults import FaultKind
from cellctl.custody import ledger as L
from cellctl.handoff.link import HandoffLink
from cellctl.config.line import CellConfig
from cellctl.devices.sensing import PartSensor
from cellctl.drivers.machine import MachineDriver, MachineStatus
from cellctl.skills.context import SkillContext
from cellctl.twin.config import StationConfig

UNIDENTIFIED = "?"  # a part rests on a presence-only station and the ledger does not say which


class Custodian:
    def __init__(self, ledger: L.Ledger, sensor: PartSensor, cfg: CellConfig, ctx: SkillContext,
                 emit: Callable[..., None], now: Callable[[], float],
                 stations: Mapping[str, StationConfig] | None = None,
                 machine_stations: Mapping[str, str] | None = None) -> None:
        self.ledger, self.sensor, self.cfg, self.ctx = ledger, sensor, cfg, ctx
        self.stations = stations or {}
        self.machine_stations = dict(machine_stations or {})  # tended machine -> its station
        self._emit, self._now = emit, now

    def change(self, change: str, part: str, *args: object) -> None:
        """One custody change (a :class:`~cellctl.custody.ledger.Ledger` method name), then its event."""
        getattr(self.ledger, change)(part, *args, self._now())
        self._emit("custody", part=part, state=self.ledger.get(part).state, station=self._station(change, args))

    def _station(self, change: str, args: tuple) -> str | None:
        """Where the part rests at this change: taken from the take station, placed on (or given on
        from) the give station, in a machine's station; None where no station says (found in the
        gripper, missing, taken out of a machine)."""
        if change == "in_machine":
            return self.machine_stations.get(args[0])
        if change == "own":
            return None if args[1] == "unknown" else self.cfg.take
        return self.cfg.give if change in ("in_transit", "given", "delivered") else None

    def finished(self) -> int:
        """Parts this cell is done with (given on or delivered), from the ledger: restart-safe."""
        return self.ledger.count(L.GIVEN, L.DELIVERED)

    def occupant(self, station: str, exclude: str | None = None) -> str | None:
        """Which part rests on ``station``: the sensor's reading, or — where it senses presence
        only — the part this ledger says is there: on the give station the part IN_TRANSIT to the
        neighbour (or, placed but not committed, the one OWNED and not in the gripper), on the
        take station the one OWNED and not in the gripper (``exclude``: one known to be elsewhere).
        A part there that the ledger does not know is UNIDENTIFIED."""
        if self.sensor.identifies(station):
            return self.sensor.occupant(station)
        if not self.sensor.present(station):
            return None
        inside = [c.part for c in self.ledger.with_state(L.IN_MACHINE) if self.machine_stations.get(c.peer) == station]
        if inside:
            return inside[0]
        if station == self.cfg.give:
            moving = [c.part for c in self.ledger.with_state(L.IN_TRANSIT)]
            if moving:
                return moving[0]
        if not self.ctx.driver.gripper_state().part_present:
            owned = [c.part for c in self.ledger.with_state(L.OWNED) if c.part != exclude]
            if owned:
                return owned[0]
        return UNIDENTIFIED

    def name_part(self, station: str) -> str:
        """An id for an unidentified part on a feed station (presence-only sensor): minted in the
        ledger with the feed's prefix."""
        feed = self.stations[station].feed
        return self.ledger.mint((feed.prefix if feed else None) or station)

    def part_in_hand(self) -> str | None:
        """The part in the gripper, for backends that sense presence only (a vacuum switch): the
        one this cell owns that is not resting on its take station."""
        on_take = self.sensor.occupant(self.cfg.take) if self.sensor.identifies(self.cfg.take) else None
        return next((c.part for c in self.ledger.with_state(L.OWNED) if c.part != on_take), None)

    # -- parts in the machines the cell tends (cellctl.skills.context.Tending) -----------------------
    def inside(self, machine: str) -> str | None:
        c = self.ledger.in_machines().get(machine)
        return c.part if c is not None else None

    def loaded(self, part: str, machine: str) -> None:
        self.change("in_machine", part, machine)

    def printing(self, part: str, machine: str, part_type: str) -> None:
        if self.ledger.get(part) is None:  # (a print run again after a failed one is in the ledger already)
            self.ledger.in_machine(part, machine, self._now(), part_type)
            self._emit("custody", part=part, state=L.IN_MACHINE, station=self.machine_stations.get(machine))

    def job(self, part: str, machine: str, state: str) -> None:
        if state != L.JobState.STARTED and self.ledger.job_state(part, machine) == state:
            return  # (a done seen again after a re-plan; every start is recorded: it counts the runs)
        self.ledger.job(part, machine, L.JobState(state), self._now())
        self._emit("machine_job", part=part, machine=machine, state=state,
                   runs=self.ledger.job_runs(part, machine))

    def job_state(self, part: str, machine: str) -> str | None:
        return self.ledger.job_state(part, machine)

    def unloaded(self, part: str, machine: str, part_type: str) -> None:
        self.change("out_of_machine", part, part_type)

    # -- after a restart ---------------------------------------------------------------------------
    def reconcile(self, downstream: HandoffLink | None, machines: Mapping[str, MachineDriver] | None = None) -> None:
        """Bring the ledger in line with the gripper and stations (after a restart, before Reset).
        An OWNED part in the gripper or on the take station stays OWNED; one on the give station was
        placed but not committed: IN_TRANSIT to the neighbour (a sink consumes it: DELIVERED); one a
        sink took meanwhile is DELIVERED; one in a tended machine's station was loaded but not
        committed: IN_MACHINE; one nowhere is MISSING (a fault event says so). A part IN_MACHINE
        that is in the gripper was taken out but not committed: OWNED, as what the machine made of
        it if its job is done."""
        held = self.ctx.driver.gripper_state()
        in_hand = (held.part_id or self.part_in_hand()) if held.part_present else None
        for c in self.ledger.with_state(L.IN_MACHINE):
            if held.part_present and held.part_id == c.part:
                self._taken_out(c, (machines or {}).get(c.peer))
                in_hand = c.part
        on_give = self.occupant(self.cfg.give)  # first: a presence-only take must not claim the placed part
        on_take = self.occupant(self.cfg.take, exclude=on_give)
        in_machines = {m: self.sensor.occupant(s) if self.sensor.identifies(s) else None
                       for m, s in self.machine_stations.items()}
        sink = self.cfg.give in self.ctx.sinks
        for c in self.ledger.with_state(L.OWNED):
            if c.part in (in_hand, on_take):
                continue
            machine = next((m for m, p in in_machines.items() if p == c.part), None)
            if machine is not None:
                self.change("in_machine", c.part, machine)  # loaded, not committed: now it is
            elif c.part == on_give and downstream is not None:
                self.change("in_transit", c.part, downstream.peer)  # placed, not committed: now it is
            elif sink and (c.part == on_give or self._gone(c.part)):
                self.change("delivered", c.part)  # placed on the sink (consumed, or about to be) before the commit
            else:
                self.change("missing", c.part)
                self._emit("fault", reason=f"part {c.part} is in the ledger but nowhere to be found",
                           fault_kind=FaultKind.PART_MISSING.value, source="ledger")
        if held.part_present and held.part_id and self.ledger.get(held.part_id) is None:
            self.change("own", held.part_id, "?", "unknown")
        self._emit("reconciled", owned=[c.part for c in self.ledger.with_state(L.OWNED)],
                   in_transit=[c.part for c in self.ledger.with_state(L.IN_TRANSIT)],
                   in_machines={m: c.part for m, c in self.ledger.in_machines().items()})

    def _taken_out(self, c: L.Custody, machine: MachineDriver | None) -> None:
        """A part IN_MACHINE found in the gripper: taken out before the commit."""
        done = self.ledger.job_state(c.part, c.peer) == L.JobState.DONE
        if machine is not None and not done:
            state = machine.state()
            done = state.job == c.part and state.status == MachineStatus.DONE
        self.change("out_of_machine", c.part, machine.describe().makes if done and machine is not None else c.part_type)

    def _gone(self, part: str) -> bool:
        """Not in the world any more (a sink consumed it): where the backend locates parts, by
        asking; else by the give station's sensor no longer seeing it."""
        if self.ctx.locate is not None:
            return self.ctx.locate(part) is None
        return self.occupant(self.cfg.give) in (None, UNIDENTIFIED)

    # -- resync with a neighbour -------------------------------------------------------------------
    def resync(self, link: HandoffLink, received: list[str], announce: bool = True) -> None:
        """Sender side, on the receiver's Resync: a part IN_TRANSIT to it that it received is
        GIVEN; any other is announced again — with ``announce`` (the robot is clear of the
        station), else later, by the cell's continuous settlement."""
        for c in self.ledger.with_state(L.IN_TRANSIT):
            if c.peer != link.peer:
                continue
            if c.part in received:
                self.change("given", c.part)
            elif announce:
                link.send_extra("ResyncTransfer", part=c.part, part_type=c.part_type)

    def announce(self, link: HandoffLink, part: str) -> None:
        """Sender side: a part IN_TRANSIT to the link's peer, announced again (settlement is
        continuous: no custody state waits for a message that will never come)."""
        c = self.ledger.get(part)
        link.send_extra("ResyncTransfer", part=part, part_type=c.part_type if c else "?")

    def resync_transfer(self, link: HandoffLink, msg: dict) -> None:
        """Receiver side: a part this ledger has from that peer was received already; otherwise own
        it if it rests on the take station."""
        known = self.ledger.get(msg["part"])
        found = known is not None and known.source == link.peer
        if not found and self.occupant(self.cfg.take) in (msg["part"], UNIDENTIFIED):
            self.change("own", msg["part"], msg.get("part_type", "?"), link.peer)
            found = True
        link.send_extra("ResyncAck", part=msg["part"], found=found)

    def resync_ack(self, link: HandoffLink, msg: dict) -> None:
        if msg["found"]:
            self.change("given", msg["part"])
        else:  # not (yet) there: it stays IN_TRANSIT and is announced again
            self._emit("waiting", neighbour=link.peer, reason=f"{link.peer} does not find part {msg['part']} "
                                                             f"on {self.cfg.give}")
