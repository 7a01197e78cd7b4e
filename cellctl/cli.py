"""The ``cellctl`` command line. Each subcommand is a thin layer over a module that does the work;
user mistakes end in one clear line per problem and exit status 2, never a traceback."""

from __future__ import annotations

import argparse
import signal
import sys

from cellctl.config import ConfigError, load_config
from cellctl.paths import DEMO_CONFIG

EXIT_USAGE = 2
DEFAULT_TWIN_PORT = 5555


def _load(path: str):
    """The config, or None after printing one line per problem to stderr."""
    try:
        return load_config(path)
    except ConfigError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return None


def _cell_config(args: argparse.Namespace, command: str):
    """The config holding ``args.cell``, or None after saying why (the file, or no such cell)."""
    config = _load(args.config)
    if config is not None and args.cell not in config.cells:
        print(f"cellctl {command}: {args.config}: no cell {args.cell!r}; cells: {sorted(config.cells)}", file=sys.stderr)
        return None
    return config


def _checked(path: str):
    """The config after every check ``cellctl check`` makes (the file, then reach), or None after
    printing one line per problem: a line is never started on a config ``check`` refuses."""
    config = _load(path)
    if config is None:
        return None
    from cellctl.reach import reach_problems  # loads URDFs: only once the file itself is valid

    problems = reach_problems(config)
    for p in problems:
        print(f"{path}: {p.path()}: expected {p.expected}, found {p.found}", file=sys.stderr)
    return None if problems else config


def cmd_check(args: argparse.Namespace) -> int:
    config = _checked(args.config)
    if config is None:
        return EXIT_USAGE
    print(f"{args.config}: ok ({len(config.robots)} robots, {len(config.stations)} stations, "
          f"{len(config.parts)} parts, {len(config.cells)} cells)")
    for name, cell in config.cells.items():  # what a run cell by cell (one per PC) needs beyond `cellctl run`
        if (cell.upstream or cell.downstream) and not cell.handoff_port:
            print(f"{args.config}: note: cells.{name}.handoff_port is 0: `cellctl run` assigns one on this machine; "
                  f"run cell by cell (`cellctl cell run`), each cell with neighbours needs a port and its host")
    if config.cells and not config.twin.port:
        print(f"{args.config}: note: twin.port is 0: cells run on their own need --twin, or twin.host and twin.port")
    return 0


def _server_config(args: argparse.Namespace, command: str):
    """The config of a server command, or None after saying why: a valid file; the twin on
    loopback or with its CURVE keys (address and port from the config unless given); the rosbridge
    endpoint on loopback only (rosbridge has no authentication: real bridges live on the cell's
    own network)."""
    from drivers.curve import KeyFileError, check_bind
    from twin.endpoints import check_loopback

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
        print(f"cellctl {command}: {args.config}: {exc}", file=sys.stderr)
        return None
    return config


def cmd_twin_serve(args: argparse.Namespace) -> int:
    config = _server_config(args, "twin serve")
    if config is None:
        return EXIT_USAGE
    from twin.server import TwinServer  # imports pybullet: only once the input is known good

    if args.rosbridge is not None and config.twin.mode != "realtime":
        print(f"cellctl twin serve: {args.config}: twin.mode: expected realtime with --rosbridge (ROS clients do "
              f"not take part in lockstep), found {config.twin.mode}", file=sys.stderr)
        return EXIT_USAGE
    from pathlib import Path

    server = TwinServer(config, args.host, args.port, args.pub_port,
                        Path(args.checkpoint) if args.checkpoint else None, args.restore, args.resume_at, args.parent)
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM ends it as Ctrl-C does: the rosbridge child with it
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


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def cmd_twin_rosbridge(args: argparse.Namespace) -> int:
    import asyncio

    config = _server_config(args, "twin rosbridge")
    if config is None:
        return EXIT_USAGE
    from twin.rosbridge import serve

    try:
        asyncio.run(serve(config, args.twin, args.host, args.port))
    except KeyboardInterrupt:
        pass
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from cellctl.launcher import run_line

    if getattr(args, "resume", None):
        if args.config is not None:
            print("cellctl run: give a CONFIG or --resume RUN_DIR, not both", file=sys.stderr)
            return EXIT_USAGE
        from pathlib import Path

        from cellctl.launcher import live_launcher

        missing = [f for f in ("line.yaml", "launch.json") if not (Path(args.resume) / f).exists()]
        if missing:
            print(f"cellctl run: --resume {args.resume}: not a run directory (no {', '.join(missing)})", file=sys.stderr)
            return EXIT_USAGE
        if (pid := live_launcher(Path(args.resume))) is not None:
            print(f"cellctl run: --resume {args.resume}: launcher pid {pid} still supervises this run", file=sys.stderr)
            return EXIT_USAGE
        return run_line(None, run_dir=args.resume, as_json=args.json, timeout=args.timeout,
                        watchdog_s=args.watchdog, resume=True)
    if args.config is None:
        print("cellctl run: give a CONFIG (or --resume RUN_DIR)", file=sys.stderr)
        return EXIT_USAGE
    if _checked(args.config) is None:
        return EXIT_USAGE
    crash = dict(c.split(":", 1) for c in args.crash)
    return run_line(args.config, args.parts, args.run_dir, args.json, args.timeout, crash, args.driver, args.rate,
                    args.watchdog)


def cmd_probe(args: argparse.Namespace) -> int:
    config = _cell_config(args, "probe")
    if config is None:
        return EXIT_USAGE
    from cellctl.probe import ProbeError, probe
    from cellctl.robot_backend import ros_backend

    robot = config.cells[args.cell].robot
    backend = ros_backend(config, robot, args.rosbridge)
    if backend is None:
        print(f"cellctl probe: {args.config}: robots.{robot}: expected a driver.ros entry (the robot is the twin's; "
              f"nothing to probe)", file=sys.stderr)
        return EXIT_USAGE
    print(f"probing {backend.url} for cell {args.cell} (robot {robot})")
    try:
        checks = probe(config, args.cell, backend)
    except ProbeError as exc:
        print(f"cellctl probe: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for check in checks:
        print(check.line())
    bad = [c for c in checks if not c.ok]
    print(f"{len(checks) - len(bad)}/{len(checks)} found" + (f"; {len(bad)} missing or wrong" if bad else ""))
    return 1 if bad else 0


def cmd_test(args: argparse.Namespace) -> int:
    from cellctl.campaign import run_campaign

    return run_campaign(args.scenarios, args.workers, args.ray, args.junit, args.run_dir, args.json)


def cmd_chaos(args: argparse.Namespace) -> int:
    from cellctl.chaos import ChaosPlan, run_chaos

    if _checked(args.config) is None:
        return EXIT_USAGE
    plan = ChaosPlan(args.seed, args.kills, args.pauses, args.twin_kills)
    return run_chaos(args.config, args.parts, plan, args.run_dir, args.json, args.timeout, args.watchdog)


def cmd_skills_list(args: argparse.Namespace) -> int:
    from skills.registry import get, names

    for name in names():
        doc = _doc(get(name)).splitlines()
        print(f"{name:14} {doc[0] if doc else ''}")
    return 0


def cmd_skills_show(args: argparse.Namespace) -> int:
    from skills.registry import UnknownSkill, get

    try:
        skill = get(args.name)
    except UnknownSkill as exc:
        print(f"cellctl skills show: {exc}", file=sys.stderr)
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

    from cellctl.cell_process import run_cell

    config = _cell_config(args, "cell run")
    if config is None:
        return EXIT_USAGE
    from drivers.curve import KeyFileError
    from drivers.errors import DriverError

    twin = args.twin or f"tcp://{config.twin.host}:{config.twin.port or DEFAULT_TWIN_PORT}"
    try:
        return run_cell(args.config, args.cell, twin, Path(args.run_dir), args.parts, args.start,
                        args.exit_when_complete, rosbridge=args.rosbridge, simulated=args.simulated,
                        supervised=args.supervised)
    except (DriverError, KeyFileError, ValueError) as exc:
        # the robot or the twin cannot be reached at start-up, a key file, an address: one line
        print(f"cellctl cell run: cell {args.cell}: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _status_endpoints(target: str, cell: str) -> list[tuple[str, str]]:
    """(endpoint, cell): TARGET is a cell's status (or control) endpoint (of ``cell``), or a run
    directory whose control-*.json name them (the read-only status socket, which admits observers)."""
    import json
    from pathlib import Path

    if Path(target).is_dir():
        return [(d.get("status", d["endpoint"]), d["cell"]) for d in
                (json.loads(p.read_text()) for p in sorted(Path(target).glob("control-*.json")))]
    return [(target, cell)]


def _operator_keys(args: argparse.Namespace):
    """CURVE keys for talking to a cell's control socket (``--keys DIR --as NAME``), or None."""
    from drivers.curve import Keys

    return Keys.load(args.keys, getattr(args, "as")) if args.keys else None


def _curve_client_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keys", default=None, metavar="DIR", help="the line's keys directory, for a cell behind CURVE")
    p.add_argument("--as", default="operator", metavar="NAME", help="whose key pair to use (default operator)")
    p.add_argument("--cell", default="", help="with --keys and an ENDPOINT: the cell's name (its public key)")


def cmd_keys_generate(args: argparse.Namespace) -> int:
    import re

    from drivers.curve import generate

    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", args.name):
        print(f"cellctl keys generate: {args.name!r}: expected a name of letters, digits, _ and -", file=sys.stderr)
        return EXIT_USAGE
    public, secret = generate(args.dir, args.name)
    print(f"{public}: the public key (copy it to every process that talks to {args.name} or that it talks to)")
    print(f"{secret}: the secret key (stays on {args.name}'s PC, mode 600)")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from cellctl.control import request

    endpoints = _status_endpoints(args.target, args.cell)
    if not endpoints:
        print(f"cellctl status: no cells found in {args.target}", file=sys.stderr)
        return EXIT_USAGE
    keys = _operator_keys(args)
    code = 0
    for endpoint, cell in endpoints:
        try:
            reply = request(endpoint, "status", keys=keys, cell=cell)
        except TimeoutError as exc:
            print(f"{endpoint}: {exc}", file=sys.stderr)
            code = 1
            continue
        r = reply["result"]
        print(f"{r['cell']}: {r['state']} ({r['state_number']}), skill {r['skill'] or '-'}, "
              f"parts done {r['parts_done']}/{r['work_order'] or '-'}, part {r['part'] or '-'}"
              + (f", fault: {r['fault']}" if r["fault"] else ""))
    return code


def cmd_cmd(args: argparse.Namespace) -> int:
    from cellctl.control import request

    try:
        reply = request(args.target, "command", keys=_operator_keys(args), cell=args.cell, command=args.command)
    except TimeoutError as exc:
        print(f"cellctl cmd: {exc}", file=sys.stderr)
        return 1
    if not reply["ok"]:
        print(f"cellctl cmd: {reply['error']['message']}", file=sys.stderr)
        return EXIT_USAGE
    print(f"{reply['result']['cell']}: {reply['result']['state']}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cellctl.report import write_report

    if not (Path(args.run_dir) / "events.jsonl").exists():
        print(f"cellctl report: {args.run_dir}: no events.jsonl here (expected a run directory of cellctl run)",
              file=sys.stderr)
        return EXIT_USAGE
    print(write_report(args.run_dir))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cellctl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check", help="validate a config file")
    p.add_argument("config")
    p.set_defaults(func=cmd_check)

    twin = sub.add_parser("twin", help="the PyBullet twin server").add_subparsers(dest="twin_command", required=True)
    p = twin.add_parser("serve", help="serve a scene over ZeroMQ (loopback, or any address with CURVE keys)")
    p.add_argument("config")
    p.add_argument("--host", default=None, help="address to bind (default: twin.host, 127.0.0.1)")
    p.add_argument("--port", type=int, default=None,
                   help=f"request port (ROUTER); 0 = ephemeral (default: twin.port, else {DEFAULT_TWIN_PORT})")
    p.add_argument("--pub-port", type=int, default=0, help="stream port (PUB); 0 = ephemeral")
    p.add_argument("--rosbridge", type=int, default=None, metavar="PORT",
                   help="also serve the robots over rosbridge v2 (websocket) on PORT (realtime mode only)")
    p.add_argument("--checkpoint", default=None, metavar="FILE",
                   help="save the world to FILE (SQLite) every 0.5 s and after every part event")
    p.add_argument("--restore", action="store_true", help="start from the world saved in --checkpoint, if any")
    p.add_argument("--parent", type=int, default=None, metavar="PID",
                   help="the supervising process: once it is gone and no client speaks for twin.orphan_grace s, exit")
    p.add_argument("--resume-at", type=float, default=0.0, metavar="T",
                   help="with --restore: sim time to go on from at the earliest (time never goes back)")
    p.set_defaults(func=cmd_twin_serve)
    p = twin.add_parser("rosbridge", help="the twin's robots over rosbridge v2, for a running twin")
    p.add_argument("config")
    p.add_argument("--twin", default="tcp://127.0.0.1:5555", help="the twin's request endpoint")
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    p.add_argument("--port", type=int, default=9090, help="websocket port; 0 = ephemeral")
    p.set_defaults(func=cmd_twin_rosbridge)

    skills = sub.add_parser("skills", help="the skill registry").add_subparsers(dest="skills_command", required=True)
    p = skills.add_parser("list", help="registered skills")
    p.set_defaults(func=cmd_skills_list)
    p = skills.add_parser("show", help="a skill's state machine (mermaid) and parameters")
    p.add_argument("name")
    p.set_defaults(func=cmd_skills_show)

    cell = sub.add_parser("cell", help="one cell").add_subparsers(dest="cell_command", required=True)
    p = cell.add_parser("run", help="run one cell against a twin (one cell per PC)")
    p.add_argument("config")
    p.add_argument("--cell", required=True)
    p.add_argument("--twin", default=None,
                   help=f"the twin's request endpoint (default: tcp://twin.host:twin.port, port {DEFAULT_TWIN_PORT} if 0)")
    p.add_argument("--parts", type=_positive, default=None, help="work order (default: the config's)")
    p.add_argument("--run-dir", default="runs/cell", help="where events and the control endpoint go")
    p.add_argument("--start", action="store_true", help="send Reset and Start (else wait for commands)")
    p.add_argument("--exit-when-complete", action="store_true", help="exit once the work order is Complete")
    p.add_argument("--rosbridge", default=None, metavar="URL",
                   help="drive the robot through rosbridge at URL (ws://host:port) instead of the twin's API")
    p.add_argument("--simulated", action="store_true",
                   help="the robot behind --rosbridge is a twin's: after a crash --start still starts the cell "
                        "(a real robot's cell comes back Stopped and moves only on an operator's command)")
    p.add_argument("--supervised", action="store_true",
                   help="started by `cellctl run`: its launcher Unholds the cell once a lost twin is back "
                        "(alone, a simulated cell resumes by itself when the same twin answers again)")
    p.set_defaults(func=cmd_cell_run)

    p = sub.add_parser("report", help="KPIs and a timeline plot of a run directory (report.md, timeline.png)")
    p.add_argument("run_dir")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("status", help="state of a cell (control endpoint) or of every cell of a run directory")
    p.add_argument("target")
    _curve_client_arguments(p)
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("cmd", help="send a PackML command to a cell")
    p.add_argument("target", help="the cell's control endpoint")
    p.add_argument("command", help="Reset, Start, Stop, Hold, Unhold, Suspend, Unsuspend, Abort, Clear")
    _curve_client_arguments(p)
    p.set_defaults(func=cmd_cmd)

    keys = sub.add_parser("keys", help="CURVE key pairs").add_subparsers(dest="keys_command", required=True)
    p = keys.add_parser("generate", help="write NAME.key (public) and NAME.key_secret (pyzmq's format)")
    p.add_argument("name", help="twin, launcher, a cell's name, or an operator's")
    p.add_argument("--dir", default="keys", help="the keys directory (default keys/)")
    p.set_defaults(func=cmd_keys_generate)

    for command, help_text in (("run", "run a whole line: the twin and one process per cell"),
                               ("demo", "run the demo line (configs/demo_line.yaml), headless")):
        p = sub.add_parser(command, help=help_text)
        if command == "run":
            p.add_argument("config", nargs="?", default=None)
            p.add_argument("--resume", default=None, metavar="RUN_DIR",
                           help="continue the line of RUN_DIR whose launcher died (its orphans are stopped first)")
        else:
            p.set_defaults(config=str(DEMO_CONFIG))
        p.add_argument("--parts", type=_positive, default=3 if command == "demo" else None,
                       help="parts to put through the line" + (" (default 3)" if command == "demo" else ""))
        p.add_argument("--json", action="store_true", help="print a JSON summary as the last line of stdout")
        p.add_argument("--run-dir", default=None, help="default: runs/TIMESTAMP")
        p.add_argument("--timeout", type=float, default=900.0, help="wall seconds before giving up")
        p.add_argument("--crash", action="append", default=[], help=argparse.SUPPRESS)  # CELL:POINT, for tests
        p.add_argument("--driver", choices=("twin", "ros"), default="twin",
                       help="ros: every cell drives its robot through the twin's rosbridge endpoint (realtime)")
        p.add_argument("--rate", type=float, default=4.0, help="with --driver ros: sim seconds per wall second")
        _watchdog_arg(p)
        p.set_defaults(func=cmd_run)

    p = sub.add_parser("probe", help="check a ROS cell's bridge serves every name it needs, without moving anything")
    p.add_argument("config")
    p.add_argument("--cell", required=True)
    p.add_argument("--rosbridge", default=None, metavar="URL", help="probe this bridge with the twin's names instead")
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser("chaos", help="run a line under seeded faults from outside: SIGKILLs and SIGSTOP pauses "
                                     "of cells, twin kills; exit 0 only if it finished with nothing lost")
    p.add_argument("config")
    p.add_argument("--parts", type=_positive, default=30, help="parts to put through the line (default 30)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--kills", type=_count, default=4, help="SIGKILLs of cells (a third or more mid-transport)")
    p.add_argument("--pauses", type=_count, default=4, help="SIGSTOP pauses of cells, 1-10 s each")
    p.add_argument("--twin-kills", type=_count, default=1, help="SIGKILLs of the twin")
    p.add_argument("--json", action="store_true", help="print the summary with fault counts as the last stdout line")
    p.add_argument("--run-dir", default=None, help="default: runs/chaos-TIMESTAMP")
    p.add_argument("--timeout", type=float, default=900.0, help="wall seconds before giving up")
    _watchdog_arg(p)
    p.set_defaults(func=cmd_chaos)

    p = sub.add_parser("test", help="run scenario files (a line, faults at sim times, expectations) headless in "
                                    "lockstep; exit 0 all passed, 1 any failed, 2 any malformed")
    p.add_argument("scenarios", nargs="+", metavar="SCENARIO")
    p.add_argument("--junit", default=None, metavar="FILE", help="write JUnit XML here")
    p.add_argument("--workers", type=_positive, default=1, help="scenarios run in parallel on this machine")
    p.add_argument("--ray", default=None, metavar="ADDRESS", help="run on an existing Ray cluster (host:port)")
    p.add_argument("--run-dir", default=None, help="one run directory per scenario under it; default runs/test-TIMESTAMP")
    p.add_argument("--json", action="store_true", help="print every result as one JSON line at the end of stdout")
    p.set_defaults(func=cmd_test)
    return parser


def _number(text: str, kind: type) -> float:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, found {text!r}") from None


def _positive(text: str) -> int:
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, found {text}")
    return value


def _seconds(text: str) -> float:
    value = _number(text, float)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, found {text}")
    return value


def _count(text: str) -> int:
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 0, found {text}")
    return value


def _watchdog_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--watchdog", type=_seconds, default=60.0, metavar="S",
                   help="end the run with a diagnosis after S wall seconds with no custody change and no motion")


def main(argv: list[str] | None = None) -> int:
    from drivers.curve import KeyFileError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyFileError as exc:  # a CURVE key file missing or malformed: one line naming it
        print(f"cellctl {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
