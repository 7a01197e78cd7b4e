"""Checks for the command line's values: every number a user types is finite and in range, or
argparse refuses it with what was expected (``--timeout nan`` or ``-5`` never reaches a launcher)."""

from __future__ import annotations

import argparse
import math

EXIT_USAGE = 2
DEFAULT_TWIN_PORT = 5555


def _number(text: str, kind: type) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, found {text!r}") from None
    return value


def positive(text: str) -> int:
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, found {text}")
    return value


def _above_zero(text: str, expected: str) -> float:
    value = _number(text, float)
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected {expected} above 0, found {text}")
    return value


def seconds(text: str) -> float:
    return _above_zero(text, "a number of seconds")


def count(text: str) -> int:
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 0, found {text}")
    return value


def watchdog_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--watchdog", type=seconds, default=60.0, metavar="S",
                   help="end the run with a diagnosis after S wall seconds with no custody change and no motion")


def port(text: str) -> int:
    """A TCP port; 0 asks the system for a free one."""
    value = _number(text, int)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535 (0: any free port), found {text}")
    return value


def sim_time(text: str) -> float:
    """A sim time: finite and not negative."""
    value = _number(text, float)
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a number of seconds of at least 0, found {text}")
    return value


def rate(text: str) -> float:
    """A rate factor (sim seconds per wall second): finite and above 0."""
    return _above_zero(text, "a factor")


def integration_args(p: argparse.ArgumentParser) -> None:
    """--opcua and --mqtt: the factory's systems see the cells (docs/integration.md)."""
    p.add_argument("--opcua", type=port, nargs="?", const=4840, default=None, metavar="PORT",
                   help="serve the cells as OPC 30050 PackML objects on OPC UA at the config's opcua.host:PORT "
                        "(default 4840; 0 = ephemeral) while they run (its URL goes to the console and opcua.json)")
    p.add_argument("--mqtt", default=None, metavar="URL",
                   help="publish the cells as Sparkplug B devices to the broker at URL (mqtt://HOST[:PORT] or "
                        "mqtts://...) while they run; group, credentials, TLS and commands from the config's mqtt:")


def side_server_args(p: argparse.ArgumentParser) -> None:
    """What ``cellctl opcua`` and ``cellctl mqtt`` share: CURVE keys for the cells, and the hidden
    flags of a server started beside a line or a cell."""
    p.add_argument("--keys", default=None, metavar="DIR", help="the line's keys directory, for cells behind CURVE")
    p.add_argument("--as", default="operator", metavar="NAME", help="whose key pair to use (default operator)")
    p.add_argument("--parent", type=int, default=None, help=argparse.SUPPRESS)  # stop when this pid is gone
    p.add_argument("--announce", action="store_true", help=argparse.SUPPRESS)  # write NAME.json in the run directory
