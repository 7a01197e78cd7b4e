"""The ``cellctl`` command line. Each subcommand is a thin layer over a module that does the work;
user mistakes end in one clear line per problem and exit status 2, never a traceback."""

from __future__ import annotations

import argparse
import sys

from cellctl.config import ConfigError, load_config
from cellctl.paths import DEMO_CONFIG

EXIT_USAGE = 2


def cmd_check(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return EXIT_USAGE
    print(f"{args.config}: ok ({len(config.robots)} robots, {len(config.stations)} stations, "
          f"{len(config.parts)} parts)")
    return 0


def cmd_twin_serve(args: argparse.Namespace) -> int:
    from twin.endpoints import check_loopback

    try:
        check_loopback(args.host)
        config = load_config(args.config)
    except (ValueError, ConfigError) as exc:
        print(f"cellctl twin serve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from twin.server import TwinServer  # imports pybullet: only once the input is known good

    server = TwinServer(config, args.host, args.port, args.pub_port)
    server.announce()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from cellctl.demo import run_demo

    return run_demo(args.config, parts=args.parts, as_json=args.json)


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
    p.set_defaults(func=cmd_twin_serve)

    skills = sub.add_parser("skills", help="the skill registry").add_subparsers(dest="skills_command", required=True)
    p = skills.add_parser("list", help="registered skills")
    p.set_defaults(func=cmd_skills_list)
    p = skills.add_parser("show", help="a skill's state machine (mermaid) and parameters")
    p.add_argument("name")
    p.set_defaults(func=cmd_skills_show)

    p = sub.add_parser("demo", help="run the demo headless and print what happened")
    p.add_argument("--config", default=str(DEMO_CONFIG), help=argparse.SUPPRESS)
    p.add_argument("--parts", type=int, default=3, help="how many parts to move (default 3)")
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
