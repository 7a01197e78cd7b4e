"""Cells on separate PCs: two Linux network namespaces joined by a veth pair stand for two PCs on a
cell network. The twin and the press in one, the pack in the other, on non-loopback addresses,
every socket under CURVE (keys from ``cellctl keys generate``). Needs root and iproute2: elsewhere
the tests skip with the reason, and under CI=true such a skip fails the run."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.helpers.ci_log import to_ci_log
from tests.helpers.netns import TWIN_PORT, generate_keys as _keys, in_ns as _in, ip as _ip, line_config
from tests.helpers.netns import need_root_and_netns as _need_root_and_netns

ROOT = Path(__file__).parents[1]
HOST_A, HOST_B = "10.77.0.1", "10.77.0.2"


def _line(tmp_path: Path, keys: Path, **options) -> Path:
    return line_config(tmp_path, keys, (HOST_A, HOST_B), **options)

pytestmark = [pytest.mark.process, pytest.mark.netns, pytest.mark.slow, pytest.mark.timeout(400)]


@pytest.fixture
def two_pcs():
    """Namespaces A (10.77.0.1) and B (10.77.0.2) joined by a veth pair; removed afterwards."""
    _need_root_and_netns()
    tag = uuid.uuid4().hex[:6]
    a, b, va, vb = f"cc-a-{tag}", f"cc-b-{tag}", f"cva{tag}", f"cvb{tag}"
    _ip("netns", "add", a)
    _ip("netns", "add", b)
    try:
        _ip("link", "add", va, "type", "veth", "peer", "name", vb)
        _ip("link", "set", va, "netns", a)
        _ip("link", "set", vb, "netns", b)
        for ns, dev, host in ((a, va, HOST_A), (b, vb, HOST_B)):
            _ip("-n", ns, "addr", "add", f"{host}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield {"a": a, "b": b, "link_a": va}
    finally:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def _states(ledger: Path) -> dict[str, str]:
    with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True) as db:
        return dict(db.execute("SELECT part, state FROM custody"))


def _run_line(pcs: dict, tmp_path: Path, config: Path) -> tuple[subprocess.Popen, subprocess.Popen, subprocess.Popen]:
    twin = _in(pcs["a"], "twin", "serve", str(config), log=tmp_path / "twin.log")
    time.sleep(1.0)
    press = _in(pcs["a"], "cell", "run", str(config), "--cell", "press", "--run-dir", str(tmp_path / "a"),
                "--start", "--exit-when-complete", log=tmp_path / "press.log")
    pack = _in(pcs["b"], "cell", "run", str(config), "--cell", "pack", "--run-dir", str(tmp_path / "b"),
               "--start", "--exit-when-complete", log=tmp_path / "pack.log")
    return twin, press, pack


def _finish(procs: tuple, tmp_path: Path, timeout: float = 240) -> None:
    twin, press, pack = procs
    try:
        for proc, name in ((press, "press"), (pack, "pack")):
            proc.wait(timeout)
            assert proc.returncode == 0, (tmp_path / f"{name}.log").read_text()[-3000:]
    finally:
        for proc in (press, pack, twin):  # the cells first: a cell stops its robot in the twin
            if proc.poll() is None:
                proc.terminate()
        for proc in (press, pack, twin):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def test_the_demo_line_runs_across_two_pcs_under_curve(two_pcs, tmp_path, pytestconfig):
    keys = _keys(tmp_path / "keys", "twin", "press", "pack")
    config = _line(tmp_path, keys)
    _finish(_run_line(two_pcs, tmp_path, config), tmp_path)
    press, pack = _states(tmp_path / "a" / "ledger-press.sqlite"), _states(tmp_path / "b" / "ledger-pack.sqlite")
    to_ci_log(pytestconfig, f"two namespaces: press {press}, pack {pack}")
    assert sorted(press.values()) == ["GIVEN"] * 3 and sorted(pack.values()) == ["DELIVERED"] * 3
    assert set(press) == set(pack)


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_link_down_for_a_few_seconds_suspends_resumes_and_loses_nothing(two_pcs, tmp_path, pytestconfig):
    """The switch between the PCs reboots while the press has a part for the pack: the press,
    waiting on its gone neighbour, is Suspended and resumes by itself once the link is back."""
    keys = _keys(tmp_path / "keys", "twin", "press", "pack")
    # per link: CheckAlive every 0.5 s, a neighbour gone after 2 s of silence, Held only after 30 s
    config = _line(tmp_path, keys, handoff_timeout=2.0, check_alive=0.5, hold_after=30.0)
    procs = _run_line(two_pcs, tmp_path, config)
    press_events = tmp_path / "a" / "events.jsonl"
    deadline = time.monotonic() + 180
    # the press starts its second part: it will want the pack as soon as its recipe is done
    while sum(e["kind"] == "part_start" for e in _events(press_events)) < 2:
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), (tmp_path / "press.log").read_text()
        time.sleep(0.1)
    _ip("-n", two_pcs["a"], "link", "set", two_pcs["link_a"], "down")  # a switch reboots
    time.sleep(8.0)
    _ip("-n", two_pcs["a"], "link", "set", two_pcs["link_a"], "up")
    _finish(procs, tmp_path, timeout=300)
    press, pack = _states(tmp_path / "a" / "ledger-press.sqlite"), _states(tmp_path / "b" / "ledger-pack.sqlite")
    assert sorted(press.values()) == ["GIVEN"] * 3 and sorted(pack.values()) == ["DELIVERED"] * 3
    states = [e["dest"] for e in _events(press_events) if e["kind"] == "packml"]
    waits = [e for e in _events(press_events) if e["kind"] == "waiting"]
    to_ci_log(pytestconfig, f"link down 8 s: press went {' -> '.join(states)}; waited for "
                            f"{[w['neighbour'] for w in waits]}; press {press}, pack {pack}")
    suspended = states.index("Suspended")
    assert states[suspended:suspended + 3] == ["Suspended", "Unsuspending", "Execute"], states
    assert "Held" not in states and waits and waits[0]["neighbour"] == "pack"


CLIENTS = """
import sys, time, zmq
from pathlib import Path
from cellctl.drivers.curve import Keys
from cellctl.drivers.twin_client import TwinClient
from cellctl.drivers.errors import ConnectionLost
from cellctl.cell.control import request

keys_dir, stranger_dir, observer_dir, twin_ep, pub_ep, control_ep, status_ep, inbox_ep = sys.argv[1:9]
outcomes = {}


def as_(name, directory):  # a client that knows the servers' public keys, with its own pair
    own = Keys.load(directory, name)
    return Keys(Path(keys_dir), name, own.public, own.secret)


def events(keys):  # the twin's event stream: a clock message within 3 s?
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    if keys is not None:
        keys.connect_to(sub, "twin")
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(pub_ep)
    got = sub.poll(3000)
    sub.close(0)
    return "served" if got else "no answer"


def ask(endpoint, keys, cell, **args):
    try:
        reply = request(endpoint, timeout=2.0, keys=keys, cell=cell, **args)
    except TimeoutError:
        return "no answer"
    return reply["result"]["state"] if reply["ok"] else reply["error"]["code"]


clients = (("no key", None), ("a key not on the list", as_("stranger", stranger_dir)),
           ("an observer's key", as_("dashboard", observer_dir)))
for who, keys in clients:
    try:
        TwinClient(twin_ep, timeout=2.0, client="intruder", keys=keys).connect()
        outcomes[f"twin, {who}"] = "served"
    except ConnectionLost:
        outcomes[f"twin, {who}"] = "no answer"
    outcomes[f"twin events, {who}"] = events(keys)
    outcomes[f"control, {who}"] = ask(control_ep, keys, "pack", op="command", command="Stop")
    outcomes[f"status, {who}"] = ask(status_ep, keys, "pack", op="status")
    ctx = zmq.Context.instance()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 0)
    if keys is not None:
        keys.connect_to(push, "pack")
    push.connect(inbox_ep)
    try:
        push.send(b"x", zmq.NOBLOCK)
        time.sleep(0.5)
    except zmq.Again:
        pass
    push.close(0)
legit = Keys.load(keys_dir, "press")
outcomes["twin, an allow-listed key"] = "served" if TwinClient(twin_ep, timeout=5, client="press-probe", keys=legit).alive(5) else "no answer"
outcomes["status socket, an allow-listed key's command"] = ask(status_ep, legit, "pack", op="command", command="Reset")
outcomes["control, an allow-listed key"] = ask(control_ep, legit, "pack", op="status")
print(outcomes)
"""


def test_clients_without_an_allowed_key_get_nothing_through(two_pcs, tmp_path, pytestconfig):
    """No key, or one not on the list: nothing from any socket. An observer's key (security.observers):
    the read-only sockets only — the cell's status socket and the twin's event stream."""
    keys = _keys(tmp_path / "keys", "twin", "press", "pack")
    _keys(tmp_path / "strangers", "stranger")
    _keys(tmp_path / "observers", "dashboard")
    config = _line(tmp_path, keys, mode="realtime")  # the pack alone, Stopped, serving its control socket
    twin = _in(two_pcs["a"], "twin", "serve", str(config), log=tmp_path / "twin.log")
    pack = _in(two_pcs["b"], "cell", "run", str(config), "--cell", "pack", "--run-dir", str(tmp_path / "b"),
               log=tmp_path / "pack.log")  # waits in Stopped: a Stop that got through would show
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "b" / "control-pack.json").exists():  # its control socket is up
            assert pack.poll() is None and time.monotonic() < deadline, (tmp_path / "pack.log").read_text()
            time.sleep(0.1)
        script = tmp_path / "clients.py"
        script.write_text(CLIENTS)
        ready = next(line for line in (tmp_path / "twin.log").read_text().splitlines() if "CELLCTL-TWIN-READY" in line)
        pub = json.loads(ready.split("CELLCTL-TWIN-READY", 1)[1])["pub"]
        result = subprocess.run(
            ["ip", "netns", "exec", two_pcs["a"], sys.executable, str(script), str(keys), str(tmp_path / "strangers"),
             str(tmp_path / "observers"), f"tcp://{HOST_A}:{TWIN_PORT}", pub, f"tcp://{HOST_B}:6102",
             f"tcp://{HOST_B}:6202", f"tcp://{HOST_B}:6002"],
            capture_output=True, text=True, timeout=120, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert result.returncode == 0, result.stderr[-3000:]
        outcomes = eval(result.stdout.strip().splitlines()[-1])  # noqa: S307 - our own script's dict
        to_ci_log(pytestconfig, f"refused clients: {outcomes}")
        for who in ("no key", "a key not on the list"):
            assert {outcomes[f"{socket}, {who}"] for socket in ("twin", "twin events", "control", "status")} \
                == {"no answer"}, outcomes
        observer = "an observer's key"
        assert outcomes[f"twin, {observer}"] == outcomes[f"control, {observer}"] == "no answer", outcomes
        assert outcomes[f"twin events, {observer}"] == "served" and outcomes[f"status, {observer}"] == "Stopped"
        assert outcomes["twin, an allow-listed key"] == "served"
        assert outcomes["status socket, an allow-listed key's command"] == "read_only"
        assert outcomes["control, an allow-listed key"] == "Stopped"  # still serving; nothing got through
        events = tmp_path / "b" / "events.jsonl"
        assert not events.exists() or "handoff_rejected" not in events.read_text()  # never even read
    finally:
        for proc in (pack, twin):
            proc.terminate()
            proc.wait(10)


def test_binding_a_non_loopback_address_without_keys_is_refused(two_pcs, tmp_path):
    scene = tmp_path / "scene.yaml"
    scene.write_text("version: 1\nrobots: {press: {model: kuka_iiwa, base: {position: [0, 0, 0]}}}\n")
    twin = subprocess.run(["ip", "netns", "exec", two_pcs["a"], sys.executable, "-m", "cellctl", "twin", "serve",
                           str(scene), "--host", HOST_A], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert twin.returncode == 2
    assert (f"cellctl twin serve: {scene}: refusing to bind the twin to '{HOST_A}' without keys: anyone reaching the "
            f"port could command it. Set security: {{keys: DIR}} in the config") in twin.stderr
    config = _line(tmp_path, tmp_path / "keys", security=False)
    twin = subprocess.run(["ip", "netns", "exec", two_pcs["a"], sys.executable, "-m", "cellctl", "twin", "serve",
                           str(config), "--host", HOST_A], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert twin.returncode == 2  # a line config saying so is refused by its check
    assert (f"{config}: twin.host: expected a loopback address, or security: {{keys: DIR}} for CURVE on every "
            f"socket, found '{HOST_A}'") in twin.stderr
    check = subprocess.run([sys.executable, "-m", "cellctl", "check", str(config)], capture_output=True, text=True,
                           timeout=60, cwd=ROOT)
    assert check.returncode == 2
    assert (f"{config}: cells.pack.host: expected a loopback address, or security: {{keys: DIR}} for CURVE on every "
            f"socket, found '{HOST_B}'") in check.stderr
