"""``cellctl cell run``: one cell in its own process (how a pilot site runs one cell per PC).

Connects to the twin, opens the control socket, and runs the control loop: serve control
requests, tick the cell, let one period pass (or, in lockstep, up to the next event). Starts in
Stopped; with ``--start`` it sends Reset and Start itself (``cellctl run``/``demo`` use that).
Ctrl-C (or SIGTERM) stops cleanly: Stop, the robot halted, the state Stopped.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path

import zmq
from rich.console import Console

from cellctl import rendezvous
from cellctl.cell import Cell, CellSetup
from cellctl.config import load_config
from cellctl.console import Tee
from cellctl.control import ControlServer
from cellctl.handoff import HandoffLink
from cellctl.ledger import Ledger
from cellctl.line_config import LineConfig
from cellctl.mailbox import Mailbox
from cellctl.robot_backend import connect_ros
from cellctl.sensing import TwinPartSensor
from drivers.clock import WallClock
from drivers.twin import TwinDriver
from drivers.twin_lockstep import LockstepClock
from skills.context import SkillContext
from skills.events import JsonlSink, make_event

STOP_TIMEOUT = 10.0  # wall s to reach Stopped after Ctrl-C


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run_cell(config_path: str, name: str, twin: str, run_dir: Path, parts: int | None = None,
             start: bool = False, exit_when_complete: bool = False, quiet: bool = False,
             rosbridge: str | None = None) -> int:
    """Run one cell. With ``rosbridge`` the robot moves through the ROS driver; the twin's own API
    still serves as the part sensor (sources, sinks and stations)."""
    config = load_config(config_path)
    cfg = config.cells[name]
    run_dir.mkdir(parents=True, exist_ok=True)
    console = Console(quiet=quiet, highlight=False)
    sink = JsonlSink(run_dir / "events.jsonl")
    ledger = Ledger(run_dir / f"ledger-{name}.sqlite")
    boot = ledger.next_boot()
    signal.signal(signal.SIGTERM, _raise_interrupt)
    mailbox = _open_mailbox(name, config, run_dir,
                            lambda reason: sink.emit(make_event("handoff_rejected", None, cell=name, reason=reason)))
    with TwinDriver(twin, cfg.robot, client=name, timeout=10.0) as sensor:
        driver = connect_ros(rosbridge, cfg.robot, config) if rosbridge else sensor
        events = Tee(sink, console)
        ctx = SkillContext.create(driver, stations={n: s.position for n, s in config.stations.items()},
                                  part_height=max(t.size[2] for t in config.part_types.values()),
                                  locate=sensor.locate, events=events, robot=cfg.robot,
                                  sinks=frozenset(n for n, s in config.stations.items() if s.sink))
        if sensor.server_info["mode"] == "lockstep":
            clock = LockstepClock(sensor, name, [cfg.robot], mailbox, stations=[cfg.take])
            sensor.use_clock(clock)
        else:
            clock = WallClock(driver.now, mailbox)

        def emit(kind: str, **fields: object) -> None:
            events.emit(make_event(kind, driver.now(), cell=name, **fields))

        links = {role: HandoffLink(role, name, peer, mailbox.send, boot, emit, cfg.handoff_timeout)
                 for role, peer in (("receiver", cfg.upstream), ("sender", cfg.downstream)) if peer is not None}
        by_peer = {link.peer: link for link in links.values()}
        feed_types = {n: s.feed.part_type for n, s in config.stations.items() if s.feed}
        cell = Cell(CellSetup(name, cfg, ctx, TwinPartSensor(sensor, config.stations), ledger, feed_types,
                              links.get("receiver"), links.get("sender"), parts))
        if not ledger.was_clean():
            cell.reconcile()
        ledger.clean_shutdown(False)
        control = ControlServer(cell, cfg.control_port)
        (run_dir / f"control-{name}.json").write_text(json.dumps({"cell": name, "endpoint": control.endpoint}))
        console.print(f"cell {name}: robot {cfg.robot}, control at {control.endpoint}, boot {boot}, state {cell.state}")
        clean = False
        try:
            if start:
                cell.command("Reset")
            grant, rejoined = None, clock.rejoined
            while not (exit_when_complete and cell.state == "Complete" and _settled(cell)):
                for sender, msg in (grant.messages if grant else []):
                    if sender in by_peer:
                        by_peer[sender].handle(msg)
                control.serve_pending()
                cell.tick()
                if start and cell.state == "Idle":  # once: later Resets are an operator's
                    cell.command("Start")
                    start = False
                grant = clock.advance(cell.wake_hint())
                if clock.rejoined != rejoined:  # the twin went on without us: what we were doing is stale
                    rejoined = clock.rejoined
                    cell.replan("the twin had dropped this cell after a pause; it joined again")
            clean = True
        except KeyboardInterrupt:
            clean = _stop(cell, clock)
        finally:
            console.print(f"cell {name}: {cell.state}, {cell.parts_done} parts done")
            ledger.clean_shutdown(clean)
            ledger.close()
            control.close()
            clock.close()
            mailbox.close()
            sink.close()
            if driver is not sensor:
                driver.close()
    return 0 if cell.state in ("Complete", "Stopped") else 1


def _open_mailbox(name: str, config: LineConfig, run_dir: Path, on_reject: Callable[[str], None]) -> Mailbox:
    """The cell's handoff inbox, connected to its neighbours' inboxes: at their configured ports, or
    (``handoff_port: 0``) where they announced them in the run directory."""
    cfg = config.cells[name]
    own = rendezvous.announced(run_dir, name) if not cfg.handoff_port else None
    try:
        mailbox = Mailbox(name, own or f"tcp://127.0.0.1:{cfg.handoff_port or '*'}", on_reject)
    except zmq.ZMQError:  # the port announced last time is taken now: take another
        mailbox = Mailbox(name, "tcp://127.0.0.1:*", on_reject)
    rendezvous.announce(run_dir, name, mailbox.endpoint)
    for peer in (cfg.upstream, cfg.downstream):
        if peer is not None:
            port = config.cells[peer].handoff_port
            mailbox.connect(peer, f"tcp://127.0.0.1:{port}" if port else rendezvous.wait_for(run_dir, peer))
    return mailbox


def _settled(cell: Cell) -> bool:
    """Nothing of ours still in transit: a neighbour may still need our StopTransport or resync."""
    return not cell.ledger.with_state("IN_TRANSIT")


def _stop(cell: Cell, clock) -> bool:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop short
    if "Stop" in cell.packml.allowed():
        cell.command("Stop")
    deadline = time.monotonic() + STOP_TIMEOUT
    while cell.state != "Stopped" and time.monotonic() < deadline:
        cell.tick()
        clock.advance()
    return cell.state == "Stopped"
