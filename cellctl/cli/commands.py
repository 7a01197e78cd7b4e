"""The ``cellctl`` subcommands, one function each: a thin layer over the room that does the work.
Each imports what it needs when it runs, so a command that does not simulate loads no physics, and
every user mistake ends in one logged line per problem and exit status 2, never a traceback."""

from __future__ import annotations

import argparse
import logging
import sys

from cellctl.cli.options import DEFAULT_TWIN_PORT, EXIT_USAGE

log = logging.getLogger("cellctl")


def _load(path: str):
    """The config, or None after logging one line per problem."""
    from cellctl.config.loader import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        for line in exc.lines:
            log.error(line)
        return None


def _cell_config(args: argparse.Namespace, command: str):
    """The config holding ``args.cell``, or None after saying why (the file, or no such cell)."""
    config = _load(args.config)
    if config is not None and args.cell not in config.cells:
        log.error(f"cellctl {command}: {args.config}: no cell {args.cell!r}; cells: {sorted(config.cells)}")
        return None
    return config


def _checked(path: str, reach: bool = True, report: bool = False):
    """The config after every check ``cellctl check`` makes (the file, then reach), or None after
    logging one line per problem: a line is never started on a config ``check`` refuses. With
    ``report``, each station's reach verdict is printed too."""
    config = _load(path)
    if config is None or not reach:
        return config
    from cellctl.config.reach import check_reach  # loads URDFs: only once the file itself is valid

    found = check_reach(config)
    for line in found.lines if report else []:
        print(f"{path}: reach: {line}")
    for p in found.problems:
        log.error(f"{path}: {p.path()}: expected {p.expected}, found {p.found}")
    return None if found.problems else config


def cmd_schema(args: argparse.Namespace) -> int:
    import json

    from cellctl.config.reference import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    config = _checked(args.config, reach=not args.no_reach, report=True)
    if config is None:
        return EXIT_USAGE
    print(f"{args.config}: ok ({len(config.robots)} robots, {len(config.stations)} stations, "
          f"{len(config.parts)} parts, {len(config.cells)} cells)")
    for name, cell in config.cells.items():  # what a run cell by cell (one per PC) needs beyond `cellctl run`
        if (cell.upstream or cell.downstream) and not cell.handoff_port:
            print(f"{args.config}: note: cells.{name}.handoff_port is 0: `cellctl run` assigns one on this machine; "
                  f"run cell by cell (`cellctl cell run`), each cell with neighbours needs a port and its host")
    on_twin = [n for n, c in config.cells.items() if c.robot in config.robots and config.robots[c.robot].driver.ros is None]
    if on_twin and not config.twin.port:  # a cell whose robot is behind rosbridge never talks to the twin
        print(f"{args.config}: note: twin.port is 0: cells run on their own ({', '.join(on_twin)}) need --twin, or "
              f"twin.host and twin.port")
    return 0


def _server_config(args: argparse.Namespace, command: str):
    """The config of a server command, or None after saying why: a valid file; the twin on
    loopback or with its CURVE keys (address and port from the config unless given); the rosbridge
    endpoint on loopback only (rosbridge has no authentication: real bridges live on the cell's
    own network)."""
    from cellctl.drivers.curve import KeyFileError, check_bind
    from cellctl.twin.endpoints import check_loopback

    config = _load(args.config)
    if config is None:
        return None
    try:
        if command == "twin serve":
            args.host = args.host or config.twin.host
            args.port = args.port if args.port is not None else config.twin.port or DEFAULT_TWIN_PORT
            check_bind(args.host, config.keys("twin"), "the twin")
        else:
            check_loopback(args.host)
    except (ValueError, KeyFileError) as exc:
        log.error(f"cellctl {command}: {args.config}: {exc}")
        return None
    return config


def _listens(fd: int, port: int) -> bool:
    """Whether ``fd`` is a TCP socket listening on ``port`` (a supervisor's, handed down)."""
    import socket

    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        return False
    try:
        return (sock.type == socket.SOCK_STREAM and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
                and sock.getsockname()[1] == port)
    finally:
        sock.detach()  # the fd stays open: the server accepts on it


def cmd_twin_serve(args: argparse.Namespace) -> int:
    config = _server_config(args, "twin serve")
    if config is None:
        return EXIT_USAGE
    from cellctl.twin.server import TwinServer  # imports pybullet: only once the input is known good

    if args.rosbridge is not None and config.twin.mode != "realtime":
        log.error(f"cellctl twin serve: {args.config}: twin.mode: expected realtime with --rosbridge (ROS clients do "
              f"not take part in lockstep), found {config.twin.mode}")
        return EXIT_USAGE
    from pathlib import Path

    if args.listen_fd is not None and not _listens(args.listen_fd, args.port):
        log.error(f"cellctl twin serve: --listen-fd {args.listen_fd}: not a TCP socket listening on port {args.port}")
        return EXIT_USAGE
    server = TwinServer(config, args.host, args.port, args.pub_port,
                        Path(args.checkpoint) if args.checkpoint else None, args.restore, args.resume_at, args.parent,
                        args.listen_fd)
    from cellctl.processes.signals import stop_on_sigterm

    stop_on_sigterm()  # SIGTERM ends it as Ctrl-C does: the rosbridge child with it
    server.announce()
    bridge = None
    if args.rosbridge is not None:
        import subprocess

        bridge = subprocess.Popen([sys.executable, "-m", "cellctl", "twin", "rosbridge", args.config,
                                   "--twin", server.endpoint, "--port", str(args.rosbridge)])  # on loopback
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if bridge is not None:
            bridge.terminate()
            bridge.wait(10)
        server.close()
    return 0


def cmd_twin_rosbridge(args: argparse.Namespace) -> int:
    import asyncio

    config = _server_config(args, "twin rosbridge")
    if config is None:
        return EXIT_USAGE
    from cellctl.twin.rosbridge import serve

    try:
        asyncio.run(serve(config, args.twin, args.host, args.port))
    except KeyboardInterrupt:
        pass
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from cellctl.line.launcher import run_line

    if getattr(args, "resume", None):
        if args.config is not None:
            log.error("cellctl run: give a CONFIG or --resume RUN_DIR, not both")
            return EXIT_USAGE
        from cellctl.line.orphans import live_launcher
        from cellctl.rundir import RunDir

        run = RunDir(args.resume)
        if missing := run.missing():
            log.error(f"cellctl run: --resume {args.resume}: not a run directory (no {', '.join(missing)})")
            return EXIT_USAGE
        if (pid := live_launcher(run)) is not None:
            log.error(f"cellctl run: --resume {args.resume}: launcher pid {pid} still supervises this run")
            return EXIT_USAGE
        return run_line(None, run_dir=args.resume, as_json=args.json, timeout=args.timeout,
                        watchdog_s=args.watchdog, resume=True, dashboard=args.dashboard, opcua=args.opcua,
                        mqtt=args.mqtt)
    if args.config is None:
        log.error("cellctl run: give a CONFIG (or --resume RUN_DIR)")
        return EXIT_USAGE
    if _checked(args.config) is None:
        return EXIT_USAGE
    crash = dict(c.split(":", 1) for c in args.crash)
    from cellctl.rundir import RunDirUnusable

    try:
        return run_line(args.config, args.parts, args.run_dir, args.json, args.timeout, crash, args.driver,
                        args.rate, args.watchdog, dashboard=args.dashboard, opcua=args.opcua, mqtt=args.mqtt)
    except RunDirUnusable as exc:
        log.error(f"cellctl {args.subcommand}: {exc}")
        return EXIT_USAGE


def cmd_probe(args: argparse.Namespace) -> int:
    config = _cell_config(args, "probe")
    if config is None:
        return EXIT_USAGE
    from cellctl.devices.probe import ProbeError, probe
    from cellctl.devices.robot_backend import ros_backend

    robot = config.cells[args.cell].robot
    backend = ros_backend(config, robot, args.rosbridge)
    if backend is None:
        log.error(f"cellctl probe: {args.config}: robots.{robot}: expected a driver.ros entry (the robot is the twin's; "
              f"nothing to probe)")
        return EXIT_USAGE
    if args.pose or args.teach:
        return _probe_tcp(args, config, backend)
    print(f"probing {backend.url} for cell {args.cell} (robot {robot})")
    try:
        checks = probe(config, args.cell, backend)
    except ProbeError as exc:
        log.error(f"cellctl probe: {exc}")
        return EXIT_USAGE
    for check in checks:
        print(check.line())
    bad = [c for c in checks if not c.ok]
    print(f"{len(checks) - len(bad)}/{len(checks)} found" + (f"; {len(bad)} missing or wrong" if bad else ""))
    return 1 if bad else 0


def _probe_tcp(args: argparse.Namespace, config, backend) -> int:
    """``probe --pose`` and ``probe --teach STATION``: reads the joint states, moves nothing."""
    from cellctl.devices.probe import ProbeError, read_tcp

    if args.teach and args.teach not in config.stations:
        log.error(f"cellctl probe: --teach {args.teach}: expected one of the stations {sorted(config.stations)}")
        return EXIT_USAGE
    try:
        reading = read_tcp(config, args.cell, backend)
    except ProbeError as exc:
        log.error(f"cellctl probe: {exc}")
        return EXIT_USAGE
    if args.teach:
        print(reading.teach(args.teach))
        return 0
    robot = config.cells[args.cell].robot
    print(f"robot {robot}: joints [{', '.join(f'{q:.3f}' for q in reading.joints)}] rad; TCP at "
          f"[{', '.join(f'{c:.4f}' for c in reading.tcp)}] m (world; tcp.offset "
          f"{list(config.robots[robot].tcp_offset)})")
    for line in reading.against(config):
        print(line)
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    from cellctl.testkit.scenarios.campaign import run_campaign

    return run_campaign(args.scenarios, args.workers, args.ray, args.junit, args.run_dir, args.json)


def cmd_chaos(args: argparse.Namespace) -> int:
    from cellctl.testkit.chaos import ChaosPlan, run_chaos

    if _checked(args.config) is None:
        return EXIT_USAGE
    plan = ChaosPlan(args.seed, args.kills, args.pauses, args.twin_kills)
    from cellctl.rundir import RunDirUnusable

    try:
        return run_chaos(args.config, args.parts, plan, args.run_dir, args.json, args.timeout, args.watchdog)
    except RunDirUnusable as exc:
        log.error(f"cellctl chaos: {exc}")
        return EXIT_USAGE


def cmd_skills_list(args: argparse.Namespace) -> int:
    from cellctl.skills.registry import get, names

    for name in names():
        doc = _doc(get(name)).splitlines()
        print(f"{name:14} {doc[0] if doc else ''}")
    return 0


def cmd_skills_show(args: argparse.Namespace) -> int:
    from cellctl.skills.registry import UnknownSkill, get

    try:
        skill = get(args.name)
    except UnknownSkill as exc:
        log.error(f"cellctl skills show: {exc}")
        return EXIT_USAGE
    print(f"# {skill.name}\n\n{_doc(skill)}\n\n```mermaid\n{skill.mermaid()}\n```\n")
    print("| parameter | type | default | description |\n|---|---|---|---|")
    for field_name, field in skill.Params.model_fields.items():
        default = "required" if field.is_required() else repr(field.get_default(call_default_factory=True))
        print(f"| {field_name} | {_type_name(field.annotation)} | {default} | {field.description or ''} |")
    return 0


def _doc(skill: type) -> str:
    """A skill's class docstring, else its module's (standard skills document the module)."""
    return (skill.__doc__ or sys.modules[skill.__module__].__doc__ or "").strip()


def _type_name(annotation: object) -> str:
    name = getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
    return name.replace(" | ", " or ")  # a bare | would split the markdown table cell


def cmd_cell_run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cellctl.cell.process import run_cell

    config = _cell_config(args, "cell run")
    if config is None:
        return EXIT_USAGE
    from cellctl.drivers.curve import KeyFileError
    from cellctl.drivers.errors import DriverError

    twin = args.twin or f"tcp://{config.twin.host}:{config.twin.port or DEFAULT_TWIN_PORT}"
    servers = []
    try:
        servers = _cell_servers(config, args.cell, Path(args.run_dir), args.opcua, args.mqtt)
        return run_cell(args.config, args.cell, twin, Path(args.run_dir), args.parts, args.start,
                        args.exit_when_complete, rosbridge=args.rosbridge, simulated=args.simulated,
                        supervised=args.supervised)
    except (DriverError, KeyFileError, ValueError) as exc:
        # the robot or the twin cannot be reached at start-up, a key file, an address: one line
        log.error(f"cellctl cell run: cell {args.cell}: {exc}")
        return EXIT_USAGE
    finally:
        for server in servers:
            server.stop()


def _cell_servers(config, cell: str, run_dir, opcua: int | None, mqtt: str | None) -> list:
    """``cellctl cell run --opcua PORT`` / ``--mqtt URL``: the cell's OPC UA server and Sparkplug B
    publisher, processes of their own that stop when the cell does (even SIGKILLed: they watch their
    parent), with the config's ``opcua:`` and ``mqtt:``."""
    import os

    from cellctl.processes.children import ProcessFailed, SideProcess

    common = ["--cell", cell, "--parent", str(os.getpid())]
    common += ["--keys", config.security.keys, "--as", cell] if config.security else []
    wanted = []
    if opcua is not None:
        o = config.opcua
        args = ["--port", str(opcua), "--host", o.host, *["--anonymous"] * o.anonymous]
        for flag in ("users", "cert", "key", "trust"):
            args += [f"--{flag}", getattr(config.opcua, flag)] if getattr(o, flag) else []
        wanted.append(("opcua", args))
    if mqtt is not None:
        wanted.append(("mqtt", ["--url", mqtt]))
    run_dir.mkdir(parents=True, exist_ok=True)
    started = []
    for command, args in wanted:
        server = SideProcess(command, run_dir, [*args, *common], log=run_dir / f"{command}.log")
        try:
            server.start()
        except ProcessFailed as exc:
            for other in started:
                other.stop()
            raise ValueError(f"its {command} server did not start: {exc}") from None
        log.info(f"cell {cell}: {command} at {server.url}")
        started.append(server)
    return started


def _operator_keys(args: argparse.Namespace):
    """CURVE keys for talking to a cell's control socket (``--keys DIR --as NAME``), or None."""
    from cellctl.drivers.curve import Keys

    return Keys.load(args.keys, getattr(args, "as")) if args.keys else None


def cmd_keys_generate(args: argparse.Namespace) -> int:
    import re

    from cellctl.drivers.curve import generate

    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", args.name):
        log.error(f"cellctl keys generate: {args.name!r}: expected a name of letters, digits, _ and -")
        return EXIT_USAGE
    public, secret = generate(args.dir, args.name)
    print(f"{public}: the public key (copy it to every process that talks to {args.name} or that it talks to)")
    print(f"{secret}: the secret key (stays on {args.name}'s PC, mode 600)")
    return 0


def _cells(args: argparse.Namespace, command: str):
    """(addresses, run directory) of TARGET and --cell, or None after saying why."""
    from cellctl.cli.cells import TargetError, resolve

    try:
        return resolve(args.target, args.cell or None)
    except TargetError as exc:
        log.error(f"cellctl {command}: {exc}")
        return None


def cmd_status(args: argparse.Namespace) -> int:
    from cellctl.cell.control import request
    from cellctl.cli.cells import finished, finished_cells, status_line, why_silent

    found = _cells(args, "status")
    if found is None:
        return EXIT_USAGE
    addresses, run = found
    if run is not None and (done := finished(run)):
        print(done)
        for name, cell in finished_cells(run).items():
            if not args.cell or name == args.cell:
                print(f"{name}: {cell['state']} ({cell['parts_done']} parts)")
        return 0
    keys = _operator_keys(args)
    code = 0
    for address in addresses:
        try:
            if address.status is None:
                raise TimeoutError("not started")
            reply = request(address.status, "status", timeout=args.timeout, keys=keys, cell=address.cell)
        except TimeoutError:
            print(why_silent(run, address, keys is not None))
            code = 1
            continue
        print(status_line(reply["result"]))
    return code


def cmd_cmd(args: argparse.Namespace) -> int:
    from cellctl.cell.control import request
    from cellctl.cli.cells import finished, why_silent

    found = _cells(args, "cmd")
    if found is None:
        return EXIT_USAGE
    addresses, run = found
    if run is not None and (done := finished(run)):
        log.error(f"cellctl cmd: {done}: no cell of it runs")
        return 1
    if len(addresses) != 1:
        log.error(f"cellctl cmd: {args.target} has cells {', '.join(a.cell for a in addresses)}: "
                  f"say which with --cell NAME")
        return EXIT_USAGE
    address = addresses[0]
    keys = _operator_keys(args)
    try:
        if address.control is None:
            raise TimeoutError("not started")
        reply = request(address.control, "command", timeout=args.timeout, keys=keys, cell=address.cell,
                        command=args.packml_command, by="cli")
    except TimeoutError:
        log.error(f"cellctl cmd: {why_silent(run, address, keys is not None)}")
        return 1
    if not reply["ok"]:
        log.error(f"cellctl cmd: {reply['error']['message']}")
        return EXIT_USAGE
    r = reply["result"]
    print(f"{r['cell']}: {r['queued']} queued (state {r['state']}): applied at its next tick")
    return 0


def cmd_where(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cellctl.cli.cells import where
    from cellctl.rundir import RunDir

    if not Path(args.run_dir).is_dir():
        log.error(f"cellctl where: {args.run_dir}: expected a run directory")
        return EXIT_USAGE
    lines = where(RunDir(args.run_dir), args.part)
    if not lines:
        log.error(f"cellctl where: {args.part}: in no ledger, no event and not in the twin's world of {args.run_dir}")
        return 1
    print("\n".join(lines))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from cellctl.line.report import write_report
    from cellctl.rundir import RunDir

    if not RunDir(args.run_dir).events.exists():
        log.error(f"cellctl report: {args.run_dir}: no events.jsonl here (expected a run directory of cellctl run)")
        return EXIT_USAGE
    print(write_report(args.run_dir))
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from cellctl.certs import CertError
    from cellctl.dashboard.serve import DashboardRefused, Serving, serve
    from cellctl.line.addresses import TargetError
    from cellctl.processes.signals import stop_on_sigterm
    from cellctl.users import UsersFileError

    stop_on_sigterm()
    try:
        return serve(Serving(args.target, args.host, args.port, args.users, args.cert, args.key,
                             _operator_keys(args)))
    except (DashboardRefused, TargetError, UsersFileError, CertError) as exc:
        log.error(f"cellctl dashboard: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 0


def _password(args: argparse.Namespace) -> str | None:
    import getpass

    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != first:
        log.error("cellctl users add: the two passwords differ: nothing changed")
        return None
    return first


def cmd_users_add(args: argparse.Namespace) -> int:
    from cellctl.users import Role, Users, UsersFileError

    try:
        users = Users.load(args.file, missing_ok=True)
        password = _password(args)
        if password is None:
            return EXIT_USAGE
        known = args.name in users.entries
        users.with_user(args.name, Role(args.role), password).save()
    except UsersFileError as exc:
        log.error(f"cellctl users add: {exc}")
        return EXIT_USAGE
    print(f"{args.file}: {'updated' if known else 'added'} {args.name} ({args.role})")
    return 0


def _users(args: argparse.Namespace, command: str):
    """The users file of ``--file``, or None after saying what is wrong with it."""
    from cellctl.users import Users, UsersFileError

    try:
        return Users.load(args.file)
    except UsersFileError as exc:
        log.error(f"cellctl users {command}: {exc}")
        return None


def cmd_users_remove(args: argparse.Namespace) -> int:
    from cellctl.users import UsersFileError

    users = _users(args, "remove")
    if users is None:
        return EXIT_USAGE
    try:
        users.without(args.name).save()
    except UsersFileError as exc:  # no such user
        log.error(f"cellctl users remove: {exc}")
        return EXIT_USAGE
    print(f"{args.file}: removed {args.name}")
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    users = _users(args, "list")
    if users is None:
        return EXIT_USAGE
    for user in users.users():
        print(f"{user.name}: {user.role}")
    return 0


def cmd_certs_generate(args: argparse.Namespace) -> int:
    from cellctl.certs import CertError, generate, generate_opcua

    try:
        crt, key = (generate_opcua if args.opcua else generate)(args.dir, args.host)
    except CertError as exc:
        log.error(f"cellctl certs generate: {exc}")
        return EXIT_USAGE
    hosts = ', '.join([*args.host, 'localhost', '127.0.0.1'])
    if args.opcua:
        print(f"{crt}: the OPC UA server's application certificate (for {hosts}; copy it into each client's trusted "
              f"folder)")
    else:
        print(f"{crt}: the certificate (for {hosts}; browsers ask once to trust it)")
    print(f"{key}: its private key (stays on the server's PC, mode 600)")
    return 0


def cmd_mqtt(args: argparse.Namespace) -> int:
    from cellctl.config.loader import ConfigError
    from cellctl.line.addresses import TargetError
    from cellctl.mqtt.serve import MqttRefused, serve, serving
    from cellctl.users import UsersFileError

    try:
        return serve(serving(args.target, args.url, args.cell, args.edge, keys=_operator_keys(args),
                             parent=args.parent, announce=args.announce))
    except (MqttRefused, TargetError, UsersFileError, ConfigError, OSError) as exc:
        log.error(f"cellctl mqtt: {exc}")
        return EXIT_USAGE


def cmd_opcua(args: argparse.Namespace) -> int:
    from cellctl.certs import CertError
    from cellctl.config.loader import ConfigError
    from cellctl.line.addresses import TargetError
    from cellctl.opcua.serve import OpcuaRefused, serve, serving
    from cellctl.processes.signals import stop_on_sigterm
    from cellctl.users import UsersFileError

    stop_on_sigterm()
    try:
        return serve(serving(args.target, args.cell, host=args.host, port=args.port, users=args.users, cert=args.cert,
                             key=args.key, trust=args.trust, anonymous=args.anonymous, keys=_operator_keys(args),
                             parent=args.parent, announce=args.announce or None))
    except (OpcuaRefused, TargetError, UsersFileError, CertError, ConfigError) as exc:
        log.error(f"cellctl opcua: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 0
