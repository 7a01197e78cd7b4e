"""A whole line in one process, in virtual time: the real ``Cell`` of every cell of a config, each
on a ``FakeDriver`` in one shared ``FakeWorld``, its handoff links joined by an in-memory wire,
its custody in a real SQLite ledger. No process, no socket: a line's work order takes milliseconds,
and a test can crash a cell at a named crash point, restart it from its ledger, cut a link or
silence a neighbour, and check the custody invariants after every round.

Time: driver time is the world's virtual clock. Wall time — what liveness, ``hold_after`` and
re-announcements are judged on — is the same virtual clock, so a neighbour silent for 5 s of
wall time is silent for 5 s of the test's time, and nothing sleeps.

Delivery is lockstep's: what a cell sends in one round is read by its neighbour at the start of
the next, before it ticks. A message to a cell that is down is lost, as a mailbox's send to an
unconnected peer is (the protocol's liveness and resync deal with it).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cellctl.cell.controller import Cell, CellSetup
from cellctl.cell.packml import Command, State
from cellctl.config.line import LineConfig
from cellctl.config.loader import load_config
from cellctl.custody.ledger import CustodyState, Ledger
from cellctl.drivers.fake import FakeDriver
from cellctl.drivers.fake_world import FakeWorld
from cellctl.handoff.link import HandoffLink
from cellctl.line.launcher import prepare
from cellctl.line.summary import PartCounts, count_parts, custody_states
from cellctl.processes.crash import Crash
from cellctl.rundir import RunDir
from cellctl.skills.events import ListSink, make_event
from cellctl.twin.checkpoint import SavedPart, WorldState


class Wire:
    """Handoff messages between in-process cells, delivered a round later. ``cut`` pairs and cells
    that are down get nothing (the sender is told False, as by an unconnected mailbox)."""

    def __init__(self) -> None:
        self._inbox: defaultdict[str, list[tuple[str, object]]] = defaultdict(list)
        self.down: set[str] = set()
        self.cut: set[frozenset[str]] = set()

    def sender(self, me: str) -> Callable[..., bool]:
        def send(peer: str, payload: object, live: bool = False) -> bool:
            if me in self.down or peer in self.down or frozenset((me, peer)) in self.cut:
                return False
            self._inbox[peer].append((me, payload))
            return True

        return send

    def take(self, name: str) -> list[tuple[str, object]]:
        return self._inbox.pop(name, [])

    def pending(self) -> bool:
        return any(self._inbox.values())

    def lose(self, name: str) -> None:
        """What was in flight to a cell that died is gone."""
        self._inbox.pop(name, None)


class PresenceOnly:
    """The world's station sensors as light barriers: presence, no part ids (the ledger says which
    part it is, and a feed's parts are named by the cell that takes them). The vacuum switch of a
    gripper gives presence only too: where the backend cannot locate parts, ``locate`` is None."""

    def __init__(self, world: FakeWorld) -> None:
        self._world = world

    def present(self, station: str) -> bool:
        return self._world.occupant(station) is not None

    def identifies(self, station: str) -> bool:
        return False

    def occupant(self, station: str) -> str | None:
        return None


@dataclass
class Member:
    """One cell of the line as its process would hold it."""

    name: str
    cell: Cell
    links: dict[str, HandoffLink] = field(default_factory=dict)  # by peer


class FakeLine:
    """The cells of ``config`` in one process (see the module docstring). ``parts``: each cell's
    work order and each feed's count, as ``cellctl run --parts``. ``presence_only``: the stations'
    sensors and the grippers report presence, not part ids (light barriers, vacuum switches)."""

    def __init__(self, config: str | Path | LineConfig, directory: Path, parts: int | None = None,
                 presence_only: bool = False) -> None:
        line = config if isinstance(config, LineConfig) else load_config(config)
        if parts is not None:
            line = LineConfig.model_validate(prepare(line, parts))
        self.config, self.parts = line, parts
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.world = FakeWorld.from_config(line)
        self.sensor = PresenceOnly(self.world) if presence_only else self.world
        self.locate = None if presence_only else self.world.locate
        self.wire = Wire()
        self.events = ListSink()
        self.drivers = {cell.robot: FakeDriver.from_config(cell.robot, line.robots[cell.robot], self.world)
                        for cell in line.cells.values()}
        self.members: dict[str, Member] = {}
        self.starting: set[str] = set()  # cells sent Reset, to be sent Start at Idle
        self.crashes: list[tuple[str, str, float]] = []  # (cell, crash point, sim time)
        for name in line.cells:
            self.start(name)

    # -- time ------------------------------------------------------------------------------------
    def now(self) -> float:
        return self.world.clock.now()

    # -- a cell's life ---------------------------------------------------------------------------
    def ledger_path(self, name: str) -> Path:
        return RunDir(self.directory).ledger(name)

    def start(self, name: str, command: bool = True) -> Member:
        """Start (or restart) a cell as its process does: a new boot from its ledger, reconcile
        after an unclean end, then Reset and Start (``command``)."""
        cfg = self.config.cells[name]
        ledger = Ledger(self.ledger_path(name))
        boot = ledger.next_boot()
        driver = self.drivers[cfg.robot]
        self.wire.down.discard(name)

        def emit(kind: str, **fields: object) -> None:
            self.events.emit(make_event(kind, driver.now(), cell=name, **fields))

        links = {peer: HandoffLink(role, name, peer, self.wire.sender(name), boot, emit, cfg.handoff_timeout,
                                   cfg.check_alive, driver.now, self.now)
                 for role, peer in (("receiver", cfg.upstream), ("sender", cfg.downstream)) if peer is not None}
        by_role = {link.role: link for link in links.values()}
        cell = Cell(CellSetup.from_config(self.config, name, driver, self.sensor, ledger, self.events,
                                          self.locate, upstream=by_role.get("receiver"),
                                          downstream=by_role.get("sender"), work_order=self.parts, wall=self.now))
        if not ledger.was_clean():
            cell.reconcile()
        ledger.clean_shutdown(False)
        self.members[name] = Member(name, cell, links)
        if command:
            cell.command(Command.RESET)
            self.starting.add(name)
        return self.members[name]

    def crash(self, name: str) -> None:
        """The cell's process dies here: its memory is gone, its ledger keeps what it committed,
        its robot finishes whatever it was doing, and what was in flight to it is lost."""
        member = self.members.pop(name)
        member.cell.ledger.close()
        self.wire.down.add(name)
        self.wire.lose(name)
        self.starting.discard(name)

    def cell(self, name: str) -> Cell:
        return self.members[name].cell

    # -- running ---------------------------------------------------------------------------------
    def round(self) -> None:
        """Every live cell reads what was sent to it last round, then ticks; then time moves to
        the earliest wake-up (one period when a message is in flight). A cell that reaches an
        armed crash point dies there (``crash``)."""
        for name, member in list(self.members.items()):
            try:
                for sender, msg in self.wire.take(name):
                    if sender in member.links:
                        member.links[sender].handle(msg)
                member.cell.tick()
            except Crash as point:
                self.crashes.append((name, str(point), self.now()))
                self.crash(name)
                continue
            if name in self.starting and member.cell.state == State.IDLE:
                member.cell.command(Command.START)
                self.starting.discard(name)
        hints = [h for m in self.members.values() if (h := m.cell.wake_hint()) is not None]
        self.world.clock.advance(None if self.wire.pending() or not hints else min(hints))

    def run_until(self, done: Callable[[FakeLine], bool], max_rounds: int = 200_000,
                  check: Callable[[FakeLine], None] | None = None) -> None:
        """Rounds until ``done(line)``; ``check(line)`` after every round (an invariant)."""
        for _ in range(max_rounds):
            if done(self):
                return
            self.round()
            if check is not None:
                check(self)
        raise AssertionError(f"not done after {max_rounds} rounds (sim time {self.now():.1f}s); "
                             f"{ {n: m.cell.status() for n, m in self.members.items()} }")

    def complete(self) -> bool:
        """Every cell is Complete and nothing is left in transit."""
        return len(self.members) == len(self.config.cells) and all(
            m.cell.state == State.COMPLETE and not m.cell.ledger.with_state(CustodyState.IN_TRANSIT)
            for m in self.members.values())

    # -- custody, read from the ledgers as the summary reads them ---------------------------------
    def custody(self) -> dict[str, dict[str, str]]:
        """part -> {cell: state} over every ledger (a crashed cell's file too)."""
        parts: defaultdict[str, dict[str, str]] = defaultdict(dict)
        for name in self.config.cells:
            path = self.ledger_path(name)
            if not path.exists():
                continue
            for part, state in custody_states(path).items():  # read-only, as the summary reads it
                parts[part][name] = state
        return dict(parts)

    def check_custody(self) -> None:
        """The invariants: never OWNED in two ledgers, never DELIVERED twice."""
        for part, by_cell in self.custody().items():
            owners = [c for c, s in by_cell.items() if s == CustodyState.OWNED]
            delivered = [c for c, s in by_cell.items() if s == CustodyState.DELIVERED]
            if len(owners) > 1 or len(delivered) > 1:
                raise AssertionError(f"part {part}: {by_cell} at sim {self.now():.2f}s")

    def world_state(self) -> WorldState:
        """The fake world in the shape of the twin's checkpoint, for the summary's counts."""
        heights = self.world.part_heights
        parts = tuple(SavedPart(p.id, p.type, (p.bottom[0], p.bottom[1], p.bottom[2] + heights.get(p.type, 0.0) / 2),
                                (0.0, 0.0, 0.0, 1.0), p.held_by) for p in self.world.parts.values())
        steps = round(self.now() * self.config.twin.physics_hz)
        return WorldState(steps, parts, {}, {}, tuple(self.world.log), 0, 0)

    def summary(self) -> PartCounts:
        """What ``cellctl run``'s summary would count: from the ledgers and the world's part log."""
        return count_parts(self.config, self.directory, self.world_state())

    def delivered(self) -> list[str]:
        return sorted(p for p, by_cell in self.custody().items() if CustodyState.DELIVERED in by_cell.values())

    def close(self) -> None:
        """Close the live cells' ledgers (their files stay)."""
        for member in self.members.values():
            member.cell.ledger.close()

