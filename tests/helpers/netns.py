"""Network namespaces standing for PCs on a cell network (root and iproute2 needed: elsewhere the
tests skip with the reason, and under CI=true such a skip fails the run), the line config the
multi-PC tests run, and cellctl commands started inside a namespace."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
TWIN_PORT = 5555


def need_root_and_netns() -> None:
    why = None
    if not shutil.which("ip"):
        why = "needs iproute2 (ip netns)"
    elif os.geteuid() != 0:
        why = "needs root (ip netns add)"
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why}; under CI=true this test must run")
        pytest.skip(why)


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@contextlib.contextmanager
def pcs(count: int, subnet: str = "10.78.0"):
    """``count`` namespaces at SUBNET.1, .2, ... on one bridge (a switch), which this namespace joins
    at SUBNET.254 (a technician's tablet on the cell network); all removed afterwards."""
    need_root_and_netns()
    tag = uuid.uuid4().hex[:6]
    names, bridge = [f"cc-{i}-{tag}" for i in range(count)], f"ccbr{tag}"
    ip("link", "add", bridge, "type", "bridge")
    try:
        ip("addr", "add", f"{subnet}.254/24", "dev", bridge)
        ip("link", "set", bridge, "up")
        for i, ns in enumerate(names):
            ip("netns", "add", ns)
            inner, outer = f"cci{i}{tag}", f"cco{i}{tag}"
            ip("link", "add", inner, "type", "veth", "peer", "name", outer)
            ip("link", "set", inner, "netns", ns)
            ip("link", "set", outer, "master", bridge)
            ip("link", "set", outer, "up")
            ip("-n", ns, "addr", "add", f"{subnet}.{i + 1}/24", "dev", inner)
            ip("-n", ns, "link", "set", inner, "up")
            ip("-n", ns, "link", "set", "lo", "up")
        yield [(ns, f"{subnet}.{i + 1}") for i, ns in enumerate(names)]
    finally:
        for ns in names:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)


def line_config(tmp_path: Path, keys: Path, hosts: tuple[str, str], security: bool = True, mode: str = "lockstep",
                handoff_timeout: float = 5.0, check_alive: float = 1.0, hold_after: float = 10.0, parts: int = 3) -> Path:
    (keys.parent / "observers").mkdir(parents=True, exist_ok=True)
    config = tmp_path / "line.yaml"
    config.write_text(textwrap.dedent(f"""\
        version: 1
        twin: {{mode: {mode}, physics_hz: 240, period_steps: 5, silence_timeout: 3.0,
               expect: {"[press, pack]" if mode == "lockstep" else "[]"},
               host: {hosts[0]}, port: {TWIN_PORT}}}
        {"security: {keys: " + str(keys) + ", observers: " + str(keys.parent / "observers") + "}" if security else ""}
        robots:
          press: {{model: kuka_iiwa, base: {{position: [0.0, 0.0, 0.0]}}}}
          pack:  {{model: franka_panda, base: {{position: [0.0, 0.9, 0.0]}}}}
        stations:
          infeed:  {{position: [0.55, -0.35, 0.3], feed: {{part_type: box, every: 3.0, count: {parts}, prefix: part}}}}
          handoff: {{position: [0.45, 0.45, 0.3]}}
          outfeed: {{position: [0.45, 1.35, 0.3], sink: true}}
        cells:
          press: {{robot: press, take: infeed, give: handoff, downstream: pack, parts: {parts},
                  host: {hosts[0]}, handoff_port: 6001, control_port: 6101, status_port: 6201,
                  handoff_timeout: {handoff_timeout}, check_alive: {check_alive}, hold_after: {hold_after},
                  recipe: [{{skill: wait, params: {{seconds: 0.5}}}}]}}
          pack:  {{robot: pack, take: handoff, give: outfeed, upstream: press, parts: {parts},
                  host: {hosts[1]}, handoff_port: 6002, control_port: 6102, status_port: 6202,
                  handoff_timeout: {handoff_timeout}, check_alive: {check_alive}, hold_after: {hold_after},
                  recipe: [{{skill: wait, params: {{seconds: 0.3}}}}]}}
        """))
    return config


def generate_keys(directory: Path, *names: str) -> Path:
    for name in names:
        subprocess.run([sys.executable, "-m", "cellctl", "keys", "generate", name, "--dir", str(directory)],
                       check=True, capture_output=True)
    return directory


def in_ns(ns: str, *cmd: str, log: Path | None = None) -> subprocess.Popen:
    out = open(log, "w") if log else subprocess.PIPE
    return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "cellctl", *cmd],
                            stdout=out, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
