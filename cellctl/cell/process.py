"""``cellctl cell run``: one cell in its own process (how a pilot site runs one cell per PC).

Connects to the twin, opens the control socket, and runs the control loop: serve control
requests, tick the cell, let one period pass (or, in lockstep, up to the next event). Starts in
Stopped; with ``--start`` it sends Reset and Start itself (``cellctl run``/``demo`` use that) — but
a cell restarted after a crash whose robot is not simulated ignores ``--start`` and stays Stopped:
a real robot moves only on an operator's command. A twin that goes away puts the cell in Held (the
control socket keeps answering) until it is back. Ctrl-C (or SIGTERM) stops cleanly: Stop, the
robot halted, the state Stopped.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import zmq
from rich.console import Console

from cellctl.cell.packml import Command, State
from cellctl.handoff import rendezvous
from cellctl.cell.controller import Cell, CellSetup
from cellctl.faults import FaultKind
from cellctl.config.loader import load_config
from cellctl.processes.console import Tee
from cellctl.processes.signals import stop_on_sigterm
from cellctl.rundir import ControlFile, RunDir
from cellctl.cell.control import ControlServer
from cellctl.handoff.link import HandoffLink
from cellctl.custody.ledger import Ledger
from cellctl.config.line import LineConfig
from cellctl.handoff.mailbox import Mailbox
from cellctl.devices.machines import machine_driver
from cellctl.devices.robot_backend import connect_ros, ros_backend
from cellctl.devices.sensing import IoPartSensor, PartSensor, RosPartSensor, StationSensors, TwinPartSensor
from cellctl.drivers.clock import Clock, WallClock
from cellctl.drivers.contract import RobotDriver
from cellctl.drivers.curve import Keys, check_bind
from cellctl.drivers.errors import ConnectionLost
from cellctl.drivers.machine import MachineDriver
from cellctl.drivers.twin import TwinDriver
from cellctl.drivers.twin_lockstep import LockstepClock
from cellctl.skills.events import JsonlSink, make_event
from cellctl.twin.config import station_sensor

STOP_TIMEOUT = 10.0  # wall s to reach Stopped after Ctrl-C
TWIN_TIMEOUT_S = 5.0  # wall s a twin request may take before the twin counts as lost
LINK_RETRY_S = 1.0  # wall s between tries of a lost robot bridge (the control socket keeps answering)
LINK_CONNECT_S = 30.0  # wall s to wait for the neighbours' inboxes before joining the line
TWIN_PING_S = 0.5  # wall s a lost twin has to answer a hello
TWIN_PROBE_EVERY_S = 1.0  # wall s between such hellos while Held for a lost twin
TWIN_WAIT_REPORT_S = 10.0  # wall s between "still waiting for the twin" lines



def run_cell(config_path: str, name: str, twin: str, run_dir: Path, parts: int | None = None,
             start: bool = False, exit_when_complete: bool = False, quiet: bool = False,
             rosbridge: str | None = None, simulated: bool = False, supervised: bool = False,
             wall: Callable[[], float] = time.monotonic) -> int:
    """Run one cell. Its robot is the twin's (``twin``: its ZeroMQ API), or reached through ROS —
    by its config entry's ``driver: {ros: ...}``, or ``rosbridge`` (a URL: the twin's rosbridge
    endpoint, with the twin's names). A ROS-backed cell senses stations through their ROS topics
    and opens no connection to the twin's API; its robot counts as real unless ``simulated``."""
    config = load_config(config_path)
    cfg = config.cells[name]
    simulated = simulated or ros_backend(config, cfg.robot, rosbridge) is None
    run_dir.mkdir(parents=True, exist_ok=True)
    console = Console(quiet=quiet, highlight=False)
    run = RunDir(run_dir)
    sink = JsonlSink(run.events)
    ledger = Ledger(run.ledger(name))
    boot = ledger.next_boot()
    stop_on_sigterm()
    keys = config.keys(name)  # CURVE on every socket, where the config has security
    mailbox = _open_mailbox(name, config, run_dir, keys,
                            lambda reason: sink.emit(make_event("handoff_rejected", None, cell=name, reason=reason)))
    missing = mailbox.wait_connected(LINK_CONNECT_S)  # before sim time starts: no first message lost
    if missing:
        console.print(f"cell {name}: no connection to the handoff inbox of {', '.join(missing)} after "
                      f"{LINK_CONNECT_S:.0f}s; starting anyway (the link reconnects when it is up)")
    with open_world(config, name, twin, rosbridge, mailbox, console, keys) as world:
        driver, clock = world.driver, world.clock
        events = Tee(sink, console, simulated)

        def emit(kind: str, **fields: object) -> None:
            events.emit(make_event(kind, driver.now(), cell=name, **fields))

        links = {role: HandoffLink(role, name, peer, mailbox.send, boot, emit, cfg.handoff_timeout, cfg.check_alive,
                                   driver.now, wall)
                 for role, peer in (("receiver", cfg.upstream), ("sender", cfg.downstream)) if peer is not None}
        by_peer = {link.peer: link for link in links.values()}
        cell = Cell(CellSetup.from_config(config, name, driver, world.sensor, ledger, events, world.locate,
                                          upstream=links.get("receiver"), downstream=links.get("sender"),
                                          work_order=parts, simulated=simulated, wall=wall,
                                          machines=world.machines))
        if not ledger.was_clean():
            cell.reconcile()
            if start and not simulated:
                console.print(f"cell {name}: restarted after a crash with a real robot: it stays Stopped until an "
                              f"operator sends Reset and Start (`cellctl cmd`)")
                start = False
        ledger.clean_shutdown(False)
        control = _control_server(cell, cfg, keys, run.read_control(name))
        if isinstance(clock, LockstepClock):
            clock.idle = control.serve_pending  # status answered, commands queued, however long a grant takes
        run.write_control(ControlFile(name, control.endpoint, control.status_endpoint))
        console.print(f"cell {name}: robot {cfg.robot} ({world.describe()}), control at {control.endpoint}, "
                      f"status at {control.status_endpoint}, "
                      f"boot {boot}, state {cell.state}")
        clean = False
        try:
            if start:
                cell.command(Command.RESET)
            grant, rejoined, restarts = None, clock.rejoined, world.restarts_seen()
            probed = 0.0  # monotonic: when a lost twin was last asked whether it is back
            while not (exit_when_complete and cell.state == State.COMPLETE and _settled(cell)):
                for sender, msg in (grant.messages if grant else []):
                    if sender in by_peer:
                        by_peer[sender].handle(msg)
                control.serve_pending()
                cell.tick()
                if start and cell.state == State.IDLE:  # once: later Resets are an operator's
                    cell.command(Command.START)
                    start = False
                try:
                    grant = clock.advance(cell.wake_hint())
                except ConnectionLost as exc:
                    grant = None
                    if world.twin is None:  # the robot's bridge (its time source) is gone: Held, retried
                        cell.world_lost(FaultKind.ROBOT_LINK_LOST, str(exc))
                        _serve_for(control, LINK_RETRY_S)
                    else:
                        cell.world_lost(FaultKind.TWIN_LOST, str(exc))
                        _wait_for_twin(world.twin, control, console, name)
                        if world.restarts_seen() == restarts and not supervised:  # else the launcher
                            cell.twin_back()
                    continue
                if world.restarts_seen() != restarts:  # another twin answers: its world is a restored checkpoint
                    restarts, rejoined = world.restarts_seen(), clock.rejoined
                    cell.world_lost(FaultKind.TWIN_LOST, "it was restarted from its checkpoint")
                    cell.rehome = True
                elif clock.rejoined != rejoined:  # the twin went on without us: what we were doing is stale
                    rejoined = clock.rejoined
                    cell.replan("the twin had dropped this cell after a pause; it joined again")
                elif (world.twin is not None and not supervised and cell.waits_for_twin()
                      and wall() - probed > TWIN_PROBE_EVERY_S):
                    # the loss was noticed in a tick (a request timed out), where no wait for the twin
                    # follows, or the clock never talks to the twin (realtime): ask it, once a second
                    probed = wall()
                    if world.twin.alive(TWIN_PING_S) and world.restarts_seen() == restarts:
                        cell.twin_back()
            clean = True
        except KeyboardInterrupt:
            clean = _stop(cell, clock)
        finally:
            console.print(f"cell {name}: {cell.state}, {cell.parts_done} parts done")
            ledger.clean_shutdown(clean)
            ledger.close()
            control.close()
            mailbox.close()
            sink.close()
    return 0 if cell.state in (State.COMPLETE, State.STOPPED) else 1


@dataclass
class World:
    """What a cell reaches the world through: its robot, its station sensors and its clock — and,
    only when its robot is the twin's (simulation over the twin's own API), the twin itself."""

    driver: RobotDriver
    sensor: PartSensor
    clock: Clock
    locate: Callable[[str], tuple[float, float, float] | None] | None
    twin: TwinDriver | None
    machines: dict[str, MachineDriver] = field(default_factory=dict)  # the machines the cell tends

    def describe(self) -> str:
        return f"twin {self.twin.endpoint}" if self.twin is not None else f"rosbridge {self.driver.url}"

    def restarts_seen(self) -> int:
        return self.twin.restarts_seen if self.twin is not None else 0


@contextmanager
def open_world(config: LineConfig, name: str, twin: str, rosbridge: str | None, mailbox: Mailbox,
               console: Console, keys: Keys | None = None) -> Iterator[World]:
    """The twin's API (robot, sensors, lockstep clock), or — for a robot reached through ROS — its
    bridge and the stations' sensor topics, with no connection to the twin's API at all."""
    cfg = config.cells[name]
    backend = ros_backend(config, cfg.robot, rosbridge)
    if backend is None:
        with TwinDriver(twin, cfg.robot, client=name, timeout=TWIN_TIMEOUT_S, keys=keys) as robot:
            if robot.server_info["mode"] == "lockstep":
                clock = LockstepClock(robot, name, [cfg.robot], mailbox, stations=[cfg.take])
                robot.use_clock(clock)
            else:
                clock = WallClock(robot.now, mailbox)
            machines = {m: machine_driver(config, m, twin, keys, TWIN_TIMEOUT_S) for m in cfg.machines}
            for machine in machines.values():
                machine.connect()
            try:
                yield World(robot, _sensors(config, name, robot, TwinPartSensor(robot, config.stations)), clock,
                            robot.locate, robot, machines)
            finally:
                for machine in machines.values():
                    machine.close()
                clock.close()
        return
    driver = connect_ros(backend, cfg.robot, config, console)
    topics = RosPartSensor(backend.url, {s: station_sensor(s, config.stations[s]) for s in (cfg.take, cfg.give)
                                         if not _wired(config, s)})
    topics.start()  # before the first tick: a read never waits for the bridge
    try:
        yield World(driver, _sensors(config, name, driver, topics), WallClock(driver.now, mailbox), None, None)
    finally:
        topics.close()
        driver.close()


def _wired(config: LineConfig, station: str) -> bool:
    sensor = config.stations[station].sensor
    return sensor is not None and sensor.io is not None


def _sensors(config: LineConfig, name: str, driver: RobotDriver, default: PartSensor) -> PartSensor:
    """The cell's take and give stations (and its machines'): one whose sensor is wired to the
    robot's inputs is read through the robot's driver, the others by ``default`` (the twin's world,
    or ROS topics)."""
    cfg = config.cells[name]
    wired = {s: config.stations[s].sensor.io[cfg.robot] for s in (cfg.take, cfg.give) if _wired(config, s)}
    if not wired:
        return default
    io = IoPartSensor(driver, wired)
    tended = [config.machines[m].station for m in cfg.machines]
    return StationSensors({s: io if s in wired else default for s in (cfg.take, cfg.give, *tended)})


def _serve_for(control: ControlServer, seconds: float) -> None:
    """Keep answering the control socket for a while (a lost link is retried after it)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        control.serve_pending()
        time.sleep(0.05)


def _control_server(cell: Cell, cfg, keys: Keys | None, before: ControlFile | None) -> ControlServer:
    """The cell's control and status sockets: on the configured ports, or — where the config
    leaves them to the system (0) — on the ports this cell announced before it was restarted, so an
    operator's or a page's address of it stays right across restarts (new ones if they are taken)."""
    control_port = cfg.control_port or (_port(before.endpoint) if before else 0)
    status_port = cfg.status_port or (_port(before.status) if before else 0)
    try:
        return ControlServer(cell, control_port, cfg.host, keys, status_port)
    except zmq.ZMQError:
        return ControlServer(cell, cfg.control_port, cfg.host, keys, cfg.status_port)


def _port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def _open_mailbox(name: str, config: LineConfig, run_dir: Path, keys: Keys | None,
                  on_reject: Callable[[str], None]) -> Mailbox:
    """The cell's handoff inbox on its host, connected to its neighbours' inboxes: at their
    configured host and port, or (``handoff_port: 0``, one machine) where they announced them in
    the run directory."""
    cfg = config.cells[name]
    check_bind(cfg.host, keys, f"cell {name}'s handoff inbox")
    own = rendezvous.announced(run_dir, name) if not cfg.handoff_port else None
    try:
        mailbox = Mailbox(name, own or f"tcp://{cfg.host}:{cfg.handoff_port or '*'}", on_reject, keys)
    except zmq.ZMQError:  # the port announced last time is taken now: take another
        mailbox = Mailbox(name, f"tcp://{cfg.host}:*", on_reject, keys)
    rendezvous.announce(run_dir, name, mailbox.endpoint)
    for peer in (cfg.upstream, cfg.downstream):
        if peer is not None:
            other = config.cells[peer]
            mailbox.connect(peer, f"tcp://{other.host}:{other.handoff_port}" if other.handoff_port
                            else rendezvous.wait_for(run_dir, peer))
    return mailbox


def _wait_for_twin(twin: TwinDriver, control: ControlServer, console: Console, name: str) -> None:
    """Until the twin answers again: the control socket keeps answering (the launcher and operators
    see Held and why), and a line every TWIN_WAIT_REPORT_S says that we still wait."""
    console.print(f"cell {name}: the twin at {twin.endpoint} is gone; Held, waiting for it to come back")
    started = said = time.monotonic()
    while not twin.alive(TWIN_PING_S):
        control.serve_pending()
        if time.monotonic() - said > TWIN_WAIT_REPORT_S:
            said = time.monotonic()
            console.print(f"cell {name}: still waiting for the twin at {twin.endpoint} "
                          f"({said - started:.0f}s)")
    console.print(f"cell {name}: the twin is back after {time.monotonic() - started:.1f}s")


def _settled(cell: Cell) -> bool:
    """Nothing of ours still in transit: a neighbour may still need our StopTransport or resync."""
    return not cell.ledger.with_state("IN_TRANSIT")


def _stop(cell: Cell, clock) -> bool:
    # a second Ctrl-C or SIGTERM (a supervisor's, a process group's) must not cut the stop short: it is
    # bounded by STOP_TIMEOUT, and SIGKILL still ends it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if Command.STOP in cell.packml.allowed():
        cell.command(Command.STOP)
    deadline = time.monotonic() + STOP_TIMEOUT
    while cell.state != State.STOPPED and time.monotonic() < deadline:
        cell.tick()
        if cell.state == State.STOPPED:
            break  # no grant needed (it may never come: a lone cell behind the twin's start barrier)
        try:
            clock.advance()
        except ConnectionLost:
            break  # no twin to stop in: the ledger records an unclean stop, and a restart reconciles
    return cell.state == State.STOPPED
