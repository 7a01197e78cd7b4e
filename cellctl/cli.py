"""The ``cellctl`` command line. Each subcommand is a thin layer over a module that does the work;
user mistakes end in one clear line per problem and exit status 2, never a traceback."""

from __future__ import annotations

import argparse
import signal
import sys

from cellctl.config import ConfigError, load_config
from cellctl.paths import DEMO_CONFIG

EXIT_USAGE = 2


def _load(path: str):
    """The config, or None after printing one line per problem to stderr."""
    try:
        return load_config(path)
    except ConfigError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return None


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
    return 0


def _server_config(args: argparse.Namespace, command: str):
    """The config of a server command, or None after saying why: loopback address, valid file."""
    from twin.endpoints import check_loopback

    try:
        check_loopback(args.host)
    except ValueError as exc:
        print(f"cellctl {command}: {exc}", file=sys.stderr)
        return None
    return _load(args.config)


def cmd_twin_serve(args: argparse.Namespace) -> int:
    config = _server_config(args, "twin serve")
    if config is None:
        return EXIT_USAGE
    from twin.server import TwinServer  # imports pybullet: only once the input is known good

    if args.rosbridge is not None and config.twin.mode != "realtime":
        print(f"cellctl twin serve: {args.config}: twin.mode: expected realtime with --rosbridge (ROS clients do "
              f"not take part in lockstep), found {config.twin.mode}", file=sys.stderr)
        return EXIT_USAGE
    server = TwinServer(config, args.host, args.port, args.pub_port)
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM ends it as Ctrl-C does: the rosbridge child with it
    server.announce()
    bridge = None
    if args.rosbridge is not None:
        import subprocess

        bridge = subprocess.Popen([sys.executable, "-m", "cellctl", "twin", "rosbridge", args.config,
                                   "--twin", server.endpoint, "--host", args.host, "--port", str(args.rosbridge)])
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

    if _checked(args.config) is None:
        return EXIT_USAGE
    crash = dict(c.split(":", 1) for c in args.crash)
    return run_line(args.config, args.parts, args.run_dir, args.json, args.timeout, crash, args.driver, args.rate)


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

    config = _load(args.config)
    if config is None:
        return EXIT_USAGE
    if args.cell not in config.cells:
        print(f"cellctl cell run: {args.config}: no cell {args.cell!r}; cells: {sorted(config.cells)}", file=sys.stderr)
        return EXIT_USAGE
    return run_cell(args.config, args.cell, args.twin, Path(args.run_dir), args.parts, args.start,
                    args.exit_when_complete, rosbridge=args.rosbridge)


def _control_endpoints(target: str) -> list[str]:
    """TARGET is a control endpoint, or a run directory whose control-*.json name them."""
    import json
    from pathlib import Path

    if Path(target).is_dir():
        return [json.loads(p.read_text())["endpoint"] for p in sorted(Path(target).glob("control-*.json"))]
    return [target]


def cmd_status(args: argparse.Namespace) -> int:
    from cellctl.control import request

    endpoints = _control_endpoints(args.target)
    if not endpoints:
        print(f"cellctl status: no cells found in {args.target}", file=sys.stderr)
        return EXIT_USAGE
    code = 0
    for endpoint in endpoints:
        try:
            reply = request(endpoint, "status")
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
        reply = request(args.target, "command", command=args.command)
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
    p = twin.add_parser("serve", help="serve a scene over ZeroMQ (loopback only)")
    p.add_argument("config")
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=5555, help="request port (ROUTER); 0 = ephemeral")
    p.add_argument("--pub-port", type=int, default=0, help="stream port (PUB); 0 = ephemeral")
    p.add_argument("--rosbridge", type=int, default=None, metavar="PORT",
                   help="also serve the robots over rosbridge v2 (websocket) on PORT (realtime mode only)")
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
    p.add_argument("--twin", default="tcp://127.0.0.1:5555", help="the twin's request endpoint")
    p.add_argument("--parts", type=int, default=None, help="work order (default: the config's)")
    p.add_argument("--run-dir", default="runs/cell", help="where events and the control endpoint go")
    p.add_argument("--start", action="store_true", help="send Reset and Start (else wait for commands)")
    p.add_argument("--exit-when-complete", action="store_true", help="exit once the work order is Complete")
    p.add_argument("--rosbridge", default=None, metavar="URL",
                   help="drive the robot through rosbridge at URL (ws://host:port) instead of the twin's API")
    p.set_defaults(func=cmd_cell_run)

    p = sub.add_parser("report", help="KPIs and a timeline plot of a run directory (report.md, timeline.png)")
    p.add_argument("run_dir")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("status", help="state of a cell (control endpoint) or of every cell of a run directory")
    p.add_argument("target")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("cmd", help="send a PackML command to a cell")
    p.add_argument("target", help="the cell's control endpoint")
    p.add_argument("command", help="Reset, Start, Stop, Hold, Unhold, Suspend, Unsuspend, Abort, Clear")
    p.set_defaults(func=cmd_cmd)

    for command, help_text in (("run", "run a whole line: the twin and one process per cell"),
                               ("demo", "run the demo line (configs/demo_line.yaml), headless")):
        p = sub.add_parser(command, help=help_text)
        if command == "run":
            p.add_argument("config")
        else:
            p.set_defaults(config=str(DEMO_CONFIG))
        p.add_argument("--parts", type=int, default=3 if command == "demo" else None,
                       help="parts to put through the line" + (" (default 3)" if command == "demo" else ""))
        p.add_argument("--json", action="store_true", help="print a JSON summary as the last line of stdout")
        p.add_argument("--run-dir", default=None, help="default: runs/TIMESTAMP")
        p.add_argument("--timeout", type=float, default=900.0, help="wall seconds before giving up")
        p.add_argument("--crash", action="append", default=[], help=argparse.SUPPRESS)  # CELL:POINT, for tests
        p.add_argument("--driver", choices=("twin", "ros"), default="twin",
                       help="ros: every cell drives its robot through the twin's rosbridge endpoint (realtime)")
        p.add_argument("--rate", type=float, default=4.0, help="with --driver ros: sim seconds per wall second")
        p.set_defaults(func=cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
