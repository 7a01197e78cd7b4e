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
from pathlib import Path

from rich.console import Console

from cellctl.cell import Cell
from cellctl.config import load_config
from cellctl.control import ControlServer
from cellctl.handoff import HandoffLink
from cellctl.ledger import Ledger
from drivers.cosim import LockstepClock, Mailbox, WallClock
from drivers.description import describe_from_config
from drivers.errors import ConnectionLost
from drivers.ros import RosDriver, RosNames
from drivers.twin import TwinDriver
from skills.context import SkillContext
from skills.events import JsonlSink, make_event
from twin.config import StationConfig

STOP_TIMEOUT = 10.0  # wall s to reach Stopped after Ctrl-C


class Tee:
    """Events to events.jsonl, and the ones a person watches to the console."""

    def __init__(self, sink: JsonlSink, console: Console) -> None:
        self.sink, self.console = sink, console

    def emit(self, event: dict) -> None:
        self.sink.emit(event)
        kind, t = event["kind"], event["sim_time"]
        if kind == "packml":
            self.console.print(f"t={t:7.2f}s  {event['cell']}: {event['source']} -> {event['dest']}")
        elif kind in ("part_start", "part_done", "fault"):
            detail = event.get("part") or event.get("reason")
            self.console.print(f"t={t:7.2f}s  {event.get('cell', '')}: {kind.replace('_', ' ')} {detail}")


def station_occupant(driver: TwinDriver, stations: dict[str, StationConfig]):
    """The twin as the cell's part sensor: which part rests on a station (a light barrier or a
    vision system on a real line)."""

    def occupant(name: str) -> str | None:
        s = stations[name]
        x, y, z = s.position
        for part in driver.request("list_parts"):
            bx, by, bz = part["bottom"]
            if part["held_by"] is None and abs(bx - x) <= s.size[0] / 2 and abs(by - y) <= s.size[1] / 2 \
                    and z - 0.01 <= bz <= z + 0.05:
                return part["id"]
        return None

    return occupant


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _ros_driver(url: str, robot: str, config) -> RosDriver:
    """The robot through rosbridge (the twin's endpoint or a real robot's), retrying while the
    bridge comes up."""
    from urllib.parse import urlparse

    desc = describe_from_config(robot, config.robots[robot])
    where = urlparse(url)
    driver = RosDriver(where.hostname, where.port, desc, RosNames.for_twin(robot, desc.io_names))
    deadline = time.monotonic() + 30
    while True:
        try:
            driver.connect()
            return driver
        except ConnectionLost:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


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
    mailbox = Mailbox(name, f"tcp://127.0.0.1:{cfg.handoff_port or '*'}")
    for peer in (cfg.upstream, cfg.downstream):
        if peer is not None:
            mailbox.connect(peer, f"tcp://127.0.0.1:{config.cells[peer].handoff_port}")
    with TwinDriver(twin, cfg.robot, client=name, timeout=10.0) as sensor:
        driver = _ros_driver(rosbridge, cfg.robot, config) if rosbridge else sensor
        events = Tee(sink, console)
        ctx = SkillContext.create(driver, stations={n: s.position for n, s in config.stations.items()},
                                  part_height=max(t.size[2] for t in config.part_types.values()),
                                  locate=sensor.locate, events=events, robot=cfg.robot,
                                  sinks=frozenset(n for n, s in config.stations.items() if s.sink))
        if sensor.server_info["mode"] == "lockstep":
            clock = LockstepClock(sensor, name, [cfg.robot], mailbox, stations=[cfg.take])
            sensor.use_clock(clock)
        else:
            clock = WallClock(driver, mailbox)

        def emit(kind: str, **fields: object) -> None:
            events.emit(make_event(kind, driver.now(), cell=name, **fields))

        links = {role: HandoffLink(role, name, peer, mailbox.send, boot, emit, cfg.handoff_timeout)
                 for role, peer in (("receiver", cfg.upstream), ("sender", cfg.downstream)) if peer is not None}
        by_peer = {link.peer: link for link in links.values()}
        cell = Cell(name, cfg, ctx, station_occupant(sensor, config.stations), events, ledger,
                    lambda station: (config.stations[station].feed.part_type if config.stations[station].feed
                                     else "?"),
                    links.get("receiver"), links.get("sender"), parts)
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
            grant = None
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
