"""The ``cellctl`` command line: the parser and ``main``. Each subcommand is a function of
``cellctl.cli.commands``; this module imports nothing heavy, so ``cellctl --help`` starts at once.
Messages for people go through ``logging`` (``-v`` for more, ``-q`` for errors only); what a
command answers (a status, a summary) goes to stdout."""

from __future__ import annotations

import argparse
import logging
import sys

from cellctl.cli import commands as C
from cellctl.cli.options import (integration_args, side_server_args, DEFAULT_TWIN_PORT, EXIT_USAGE, count, port, positive, rate, seconds, sim_time,
                                 watchdog_arg)
from cellctl.config.paths import DEMO_CONFIG


def curve_client_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keys", default=None, metavar="DIR", help="the line's keys directory, for a cell behind CURVE")
    p.add_argument("--as", default="operator", metavar="NAME", help="whose key pair to use (default operator)")
    p.add_argument("--cell", default="", help="the cell, by name (with an ENDPOINT and --keys: its public key)")
    p.add_argument("--timeout", type=seconds, default=3.0, help="seconds to wait for a cell's answer (default 3)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cellctl", description="Robot cells that steer themselves: run a line, "
                                     "a cell, the twin; check configs; watch and command cells.")
    volume = parser.add_mutually_exclusive_group()
    volume.add_argument("-v", "--verbose", action="count", default=0, help="say more (repeatable)")
    volume.add_argument("-q", "--quiet", action="count", default=0, help="errors only")
    sub = parser.add_subparsers(dest="subcommand", required=True)

    p = sub.add_parser("check", help="validate a config file")
    p.add_argument("config")
    p.add_argument("--no-reach", action="store_true",
                   help="check the file alone, not whether every robot reaches its stations (no URDF loaded)")
    p.set_defaults(func=C.cmd_check)

    p = sub.add_parser("schema", help="print the line config's JSON Schema (for editors; docs/config.md is its "
                                      "reference)")
    p.set_defaults(func=C.cmd_schema)

    twin = sub.add_parser("twin", help="the PyBullet twin server").add_subparsers(dest="twin_command", required=True)
    p = twin.add_parser("serve", help="serve a scene over ZeroMQ (loopback, or any address with CURVE keys)")
    p.add_argument("config")
    p.add_argument("--host", default=None, help="address to bind (default: twin.host, 127.0.0.1)")
    p.add_argument("--port", type=port, default=None,
                   help=f"request port (ROUTER); 0 = ephemeral (default: twin.port, else {DEFAULT_TWIN_PORT})")
    p.add_argument("--pub-port", type=port, default=0, help="stream port (PUB); 0 = ephemeral")
    p.add_argument("--rosbridge", type=port, default=None, metavar="PORT",
                   help="also serve the robots over rosbridge v2 (websocket) on PORT (realtime mode only)")
    p.add_argument("--checkpoint", default=None, metavar="FILE",
                   help="save the world to FILE (SQLite) every 0.5 s and after every part event")
    p.add_argument("--restore", action="store_true", help="start from the world saved in --checkpoint, if any")
    p.add_argument("--parent", type=positive, default=None, metavar="PID",
                   help="the supervising process: once it is gone and no client speaks for twin.orphan_grace s, exit")
    p.add_argument("--resume-at", type=sim_time, default=0.0, metavar="T",
                   help="with --restore: sim time to go on from at the earliest (time never goes back)")
    p.add_argument("--listen-fd", type=int, default=None, help=argparse.SUPPRESS)  # the launcher's socket on --port
    p.set_defaults(func=C.cmd_twin_serve)
    p = twin.add_parser("rosbridge", help="the twin's robots over rosbridge v2, for a running twin")
    p.add_argument("config")
    p.add_argument("--twin", default="tcp://127.0.0.1:5555", help="the twin's request endpoint")
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    p.add_argument("--port", type=port, default=9090, help="websocket port; 0 = ephemeral")
    p.set_defaults(func=C.cmd_twin_rosbridge)

    skills = sub.add_parser("skills", help="the skill registry").add_subparsers(dest="skills_command", required=True)
    p = skills.add_parser("list", help="registered skills")
    p.set_defaults(func=C.cmd_skills_list)
    p = skills.add_parser("show", help="a skill's state machine (mermaid) and parameters")
    p.add_argument("name")
    p.set_defaults(func=C.cmd_skills_show)

    cell = sub.add_parser("cell", help="one cell").add_subparsers(dest="cell_command", required=True)
    p = cell.add_parser("run", help="run one cell against a twin (one cell per PC)")
    p.add_argument("config")
    p.add_argument("--cell", required=True)
    p.add_argument("--twin", default=None,
                   help=f"the twin's request endpoint (default: tcp://twin.host:twin.port, port {DEFAULT_TWIN_PORT} if 0)")
    p.add_argument("--parts", type=positive, default=None, help="work order (default: the config's)")
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
    integration_args(p)
    p.set_defaults(func=C.cmd_cell_run)

    p = sub.add_parser("report", help="KPIs and a timeline plot of a run directory (report.md, timeline.png)")
    p.add_argument("run_dir")
    p.set_defaults(func=C.cmd_report)

    p = sub.add_parser("status", help="state of every cell (or --cell NAME) of a run directory, a line config with "
                                      "fixed ports, or one endpoint; a finished run answers from its files")
    p.add_argument("target", help="RUN_DIR, CONFIG or tcp://HOST:PORT")
    curve_client_arguments(p)
    p.set_defaults(func=C.cmd_status)
    p = sub.add_parser("cmd", help="send a PackML command to a cell (queued for its next tick, or refused with "
                                   "the reason)")
    p.add_argument("target", help="RUN_DIR or CONFIG (with --cell NAME), or the cell's control endpoint")
    p.add_argument("packml_command", metavar="command",
                   help="Reset, Start, Stop, Hold, Unhold, Suspend, Unsuspend, Abort, Clear")
    curve_client_arguments(p)
    p.set_defaults(func=C.cmd_cmd)
    p = sub.add_parser("dashboard", help="the operator's page: the line live in a browser, with PackML buttons, "
                                         "for a run directory or a line config of cells started one per PC")
    p.add_argument("target", help="RUN_DIR, or a CONFIG whose cells have fixed control_port and status_port")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to serve on (default 127.0.0.1; any other needs --users and --cert/--key)")
    p.add_argument("--port", type=port, default=8080, help="0 = ephemeral (default 8080)")
    p.add_argument("--users", default=None, metavar="FILE", help="users who log in (`cellctl users add`); "
                                                                 "without it the page is open (loopback only)")
    p.add_argument("--cert", default=None, help="TLS certificate (PEM; `cellctl certs generate`)")
    p.add_argument("--key", default=None, help="its private key (PEM)")
    p.add_argument("--keys", default=None, metavar="DIR", help="the line's keys directory, for cells behind CURVE")
    p.add_argument("--as", default="operator", metavar="NAME",
                   help="whose key pair to use (default operator; an observer's key sees but cannot command)")
    p.set_defaults(func=C.cmd_dashboard)

    p = sub.add_parser("opcua", help="the line's cells as OPC 30050 PackML objects on an OPC UA server (SCADA, MES, "
                                     "HMIs): state, counts, alarms, PackML methods")
    p.add_argument("target", help="RUN_DIR, or a CONFIG whose cells have fixed control_port and status_port")
    p.add_argument("--cell", default=None, help="serve this cell only (default: every cell of TARGET)")
    p.add_argument("--host", default=None, help="address to serve on (default: the config's opcua.host, 127.0.0.1; "
                                                "any other needs --users, --cert/--key and --trust)")
    p.add_argument("--port", type=port, default=4840, help="0 = ephemeral (default 4840)")
    p.add_argument("--users", default=None, metavar="FILE", help="users who log in (`cellctl users add`); default: "
                                                                 "the config's opcua.users")
    p.add_argument("--cert", default=None, help="the server's certificate (`cellctl certs generate --opcua`)")
    p.add_argument("--key", default=None, help="its private key (PEM)")
    p.add_argument("--trust", default=None, metavar="DIR", help="the client application certificates accepted")
    p.add_argument("--anonymous", action="store_true", default=None,
                   help="with users: let anonymous sessions in to read (never to call a method)")
    side_server_args(p)
    p.set_defaults(func=C.cmd_opcua)

    p = sub.add_parser("mqtt", help="publish the line's cells as Sparkplug B devices on an MQTT broker (a unified "
                                    "namespace): state, counts, alarms, custody, links")
    p.add_argument("target", help="RUN_DIR, or a CONFIG whose cells have fixed control_port and status_port")
    p.add_argument("--url", required=True, help="the broker: mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (credentials, "
                                                "TLS and commands from the config's mqtt:)")
    p.add_argument("--cell", default=None, help="publish this cell only (default: every cell of TARGET)")
    p.add_argument("--edge", default=None, help="the Sparkplug edge node id (default: the config's mqtt.edge, or "
                                                "the config file's name)")
    side_server_args(p)
    p.set_defaults(func=C.cmd_mqtt)

    users = sub.add_parser("users", help="who may log in to the page (and OPC UA): a file of names, roles and "
                                         "hashed passwords").add_subparsers(dest="users_command", required=True)
    p = users.add_parser("add", help="add a user, or set a user's role and password (asked twice, or from stdin)")
    p.add_argument("name")
    p.add_argument("--role", choices=("operator", "observer"), required=True,
                   help="operator: sees and commands; observer: sees only")
    p.add_argument("--file", default="users.txt", help="the users file (default users.txt)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    p.set_defaults(func=C.cmd_users_add)
    p = users.add_parser("remove", help="remove a user")
    p.add_argument("name")
    p.add_argument("--file", default="users.txt", help="the users file (default users.txt)")
    p.set_defaults(func=C.cmd_users_remove)
    p = users.add_parser("list", help="the users and their roles")
    p.add_argument("--file", default="users.txt", help="the users file (default users.txt)")
    p.set_defaults(func=C.cmd_users_list)

    certs = sub.add_parser("certs", help="TLS certificates for the page off loopback").add_subparsers(
        dest="certs_command", required=True)
    p = certs.add_parser("generate", help="a self-signed certificate and key for the names the server is reached by")
    p.add_argument("--host", action="append", default=[], metavar="NAME|IP",
                   help="a host name or address the page is reached by (repeatable; localhost always)")
    p.add_argument("--dir", default="certs", help="where to write cellctl.crt and cellctl.key, or opcua.der and "
                                                  "opcua.pem (default certs/)")
    p.add_argument("--opcua", action="store_true", help="an OPC UA application certificate (RSA, with its application "
                                                        "URI) for `cellctl opcua`, instead of the page's TLS one")
    p.set_defaults(func=C.cmd_certs_generate)

    p = sub.add_parser("where", help="where a part is: its ledgers, its last custody change, its place in the world")
    p.add_argument("part")
    p.add_argument("run_dir")
    p.set_defaults(func=C.cmd_where)

    keys = sub.add_parser("keys", help="CURVE key pairs").add_subparsers(dest="keys_command", required=True)
    p = keys.add_parser("generate", help="write NAME.key (public) and NAME.key_secret (pyzmq's format)")
    p.add_argument("name", help="twin, launcher, a cell's name, or an operator's")
    p.add_argument("--dir", default="keys", help="the keys directory (default keys/)")
    p.set_defaults(func=C.cmd_keys_generate)

    for command, help_text in (("run", "run a whole line: the twin and one process per cell"),
                               ("demo", "run the demo line (configs/demo_line.yaml), headless")):
        p = sub.add_parser(command, help=help_text)
        if command == "run":
            p.add_argument("config", nargs="?", default=None)
            p.add_argument("--resume", default=None, metavar="RUN_DIR",
                           help="continue the line of RUN_DIR whose launcher died (its orphans are stopped first)")
        else:
            p.set_defaults(config=str(DEMO_CONFIG))
        p.add_argument("--parts", type=positive, default=3 if command == "demo" else None,
                       help="parts to put through the line" + (" (default 3)" if command == "demo" else ""))
        p.add_argument("--json", action="store_true", help="print a JSON summary as the last line of stdout")
        p.add_argument("--run-dir", default=None, help="default: runs/TIMESTAMP")
        p.add_argument("--timeout", type=seconds, default=900.0, help="wall seconds before giving up")
        p.add_argument("--crash", action="append", default=[], help=argparse.SUPPRESS)  # CELL:POINT, for tests
        p.add_argument("--driver", choices=("twin", "ros"), default="twin",
                       help="ros: every cell drives its robot through the twin's rosbridge endpoint (realtime)")
        p.add_argument("--rate", type=rate, default=4.0, help="with --driver ros: sim seconds per wall second")
        p.add_argument("--dashboard", type=port, nargs="?", const=8080, default=None, metavar="PORT",
                       help="serve the operator's page on 127.0.0.1:PORT (default 8080; 0 = ephemeral) while the "
                            "line runs (its URL goes to the console and dashboard.json)")
        integration_args(p)
        watchdog_arg(p)
        p.set_defaults(func=C.cmd_run)

    p = sub.add_parser("probe", help="check a ROS cell's bridge serves every name it needs, without moving anything")
    p.add_argument("config")
    p.add_argument("--cell", required=True)
    p.add_argument("--rosbridge", default=None, metavar="URL", help="probe this bridge with the twin's names instead")
    found = p.add_mutually_exclusive_group()
    found.add_argument("--pose", action="store_true",
                       help="print the TCP's position now (the config's URDF and tcp.offset on the bridge's joint "
                            "states) beside every station's configured part top")
    found.add_argument("--teach", default=None, metavar="STATION",
                       help="print STATION's position under the TCP, jogged to touch the top of a part resting there")
    p.set_defaults(func=C.cmd_probe)

    p = sub.add_parser("chaos", help="run a line under seeded faults from outside: SIGKILLs and SIGSTOP pauses "
                                     "of cells, twin kills; exit 0 only if it finished with nothing lost")
    p.add_argument("config")
    p.add_argument("--parts", type=positive, default=30, help="parts to put through the line (default 30)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--kills", type=count, default=4, help="SIGKILLs of cells (a third or more mid-transport)")
    p.add_argument("--pauses", type=count, default=4, help="SIGSTOP pauses of cells, 1-10 s each")
    p.add_argument("--twin-kills", type=count, default=1, help="SIGKILLs of the twin")
    p.add_argument("--json", action="store_true", help="print the summary with fault counts as the last stdout line")
    p.add_argument("--run-dir", default=None, help="default: runs/chaos-TIMESTAMP")
    p.add_argument("--timeout", type=seconds, default=900.0, help="wall seconds before giving up")
    watchdog_arg(p)
    p.set_defaults(func=C.cmd_chaos)

    p = sub.add_parser("test", help="run scenario files (a line, faults at sim times, expectations) headless in "
                                    "lockstep; exit 0 all passed, 1 any failed, 2 any malformed")
    p.add_argument("scenarios", nargs="+", metavar="SCENARIO")
    p.add_argument("--junit", default=None, metavar="FILE", help="write JUnit XML here")
    p.add_argument("--workers", type=positive, default=1, help="scenarios run in parallel on this machine")
    p.add_argument("--ray", default=None, metavar="ADDRESS", help="run on an existing Ray cluster (host:port)")
    p.add_argument("--run-dir", default=None, help="one run directory per scenario under it; default runs/test-TIMESTAMP")
    p.add_argument("--json", action="store_true", help="print every result as one JSON line at the end of stdout")
    p.set_defaults(func=C.cmd_test)
    return parser


def _logging(verbosity: int) -> None:
    """One handler on stderr, plain lines: what a technician reads is the message itself."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("cellctl")
    root.handlers[:] = [handler]
    root.propagate = False
    root.setLevel({-1: logging.ERROR, 0: logging.INFO}.get(verbosity, logging.DEBUG))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _logging(args.verbose - args.quiet)
    from cellctl.drivers.curve import KeyFileError

    try:
        return args.func(args)
    except KeyFileError as exc:  # a CURVE key file missing or malformed: one line naming it
        logging.getLogger("cellctl").error(f"cellctl {args.subcommand}: {exc}")
        return EXIT_USAGE
