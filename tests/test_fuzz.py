"""Property-based fuzzing of every socket a cellctl process serves (hypothesis, fixed seeds): the
twin's request socket, a cell's control socket, a cell's handoff inbox and the twin's rosbridge
endpoint. Each campaign sends at least 10,000 frames and asserts what the protocol promises: a
reply where it has one, the server alive, a fresh client answered within a bound, and the server's
resident memory within the bound the docs state."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import websockets
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cellctl.handoff import rendezvous
from cellctl.cell.control import READ_ONLY, REFUSED, request
from cellctl.processes.children import RosbridgeProcess
from cellctl.drivers import twin_wire as P
from tests.conftest import CONFIGS
from tests.strategies import field_maps, values

FRAMES = 10_000
# Resident memory bounds per server: measured peaks under these campaigns (2026-12, this 2-core
# machine: twin 111 MB, cell control 100 MB, cell with a flooded handoff inbox 162 MB, rosbridge
# endpoint 56 MB) plus ~40 %. A change that makes a server hoard under bad input fails here.
TWIN_MAX_RSS_MB = 160
CELL_MAX_RSS_MB = 230
ROSBRIDGE_MAX_RSS_MB = 80
TWIN_CODES = frozenset(v for k, v in vars(P).items() if k.isupper() and isinstance(v, str) and v.islower()
                       and " " not in v)
CELL_CODES = TWIN_CODES | {REFUSED, READ_ONLY}
BATCH = 50  # frames in flight at once: a cell answers control requests once per tick
ANSWER_WITHIN = 2.0  # s: a fresh client's request is answered within this, whatever came before
ENDS_CAMPAIGN = ("shutdown", "reset")  # legitimate ops that would end or reset the server under test
CAMPAIGN = dict(max_examples=FRAMES + 500, derandomize=True, deadline=None, database=None, print_blob=False,
                suppress_health_check=list(HealthCheck))

pytestmark = [pytest.mark.process, pytest.mark.fuzz, pytest.mark.timeout(900)]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def _dealer(endpoint: str) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    return sock


def _fresh_client_answered(endpoint: str, op: str) -> None:
    sock = _dealer(endpoint)
    try:
        sock.send(P.pack({"id": "probe", "op": op, "args": {}}))
        assert sock.poll(int(ANSWER_WITHIN * 1000)), f"a fresh client got no answer to {op!r} within {ANSWER_WITHIN}s"
        assert P.unpack(sock.recv())["ok"] is True
    finally:
        sock.close(0)


def requests(ops: list[str], fields: dict[str, list[str]]) -> st.SearchStrategy[bytes]:
    """Frames: raw bytes, any msgpack value, and requests over the protocol's own ops and fields."""
    ident = st.integers(-(2**63), 2**64 - 1) | st.text(max_size=200) | values()
    op = st.sampled_from(ops) | st.text(max_size=10) | values()
    structured = st.builds(lambda i, o, a: {"id": i, "op": o, "args": a}, ident, op,
                           st.one_of(*[field_maps(fields.get(name, [])) for name in ops], values()))
    packed = st.one_of(structured, values()).map(lambda v: P.pack(v))
    return st.one_of(st.binary(max_size=300), packed, structured.map(P.pack))


def _op(frame: bytes) -> object:
    """The op a frame asks for, if it is a map that names one."""
    try:
        decoded = P.unpack(frame)
    except Exception:  # noqa: BLE001 - garbage is meant
        return None
    op = decoded.get("op") if isinstance(decoded, dict) else None
    return op if isinstance(op, str) else None


def _generated(strategy: st.SearchStrategy[str]) -> list[str]:
    """The campaign's frames, drawn by hypothesis up front (it is synchronous; the socket is not)."""
    drawn: list[str] = []

    @settings(**CAMPAIGN)
    @given(text=strategy)
    def one(text: str) -> None:
        drawn.append(text)

    one()
    return drawn


def _campaign(endpoint: str, pid: int, ops: list[str], fields: dict[str, list[str]], probe: str, max_rss_mb: float,
              codes: frozenset[str], deferred: tuple[str, ...] = ()) -> dict:
    """Send every frame on one DEALER, pipelined in batches; every frame gets a reply, except
    deferred ops (lockstep grants), whose replies come when the grant does."""
    frames = [f for f in _generated(requests(ops, fields)) if _op(f) not in ENDS_CAMPAIGN][:FRAMES]
    sock = _dealer(endpoint)
    counts = {"frames": len(frames), "replies": 0, "errors": 0, "peak_rss_mb": rss_mb(pid)}
    # frames that cannot be a request of this server: each must be answered with an error and a code
    cannot = sum(1 for f in frames if _op(f) not in ops)
    owed = 0
    try:
        for start in range(0, len(frames), BATCH):
            for frame in frames[start:start + BATCH]:
                sock.send(frame)
                owed += _op(frame) not in deferred
            deadline = time.monotonic() + 5.0
            while counts["replies"] < owed and sock.poll(max(1, int((deadline - time.monotonic()) * 1000))):
                reply = P.unpack(sock.recv())
                assert isinstance(reply, dict) and isinstance(reply.get("ok"), bool), reply
                if not reply["ok"]:
                    error = reply.get("error")
                    assert isinstance(error, dict) and error.get("code") in codes and error.get("message"), reply
                counts["replies"] += 1
                counts["errors"] += not reply["ok"]
            assert counts["replies"] >= owed, f"{owed - counts['replies']} frames of the batch from frame {start} " \
                                              f"got no reply within 5s"
            if start % 1000 == 0:
                _fresh_client_answered(endpoint, probe)
                counts["peak_rss_mb"] = max(counts["peak_rss_mb"], rss_mb(pid))
    finally:
        sock.close(0)
    _fresh_client_answered(endpoint, probe)
    counts["peak_rss_mb"] = round(max(counts["peak_rss_mb"], rss_mb(pid)), 1)
    print(f"\nfuzz {endpoint}: {json.dumps(counts)}")
    assert counts["frames"] >= FRAMES and counts["errors"] >= cannot, counts
    assert counts["peak_rss_mb"] < max_rss_mb, counts
    return counts


TWIN_FIELDS = {op: list(model.model_fields) for op, model in P.OPS.items()}
TWIN_OPS = [op for op in P.OPS if op not in ENDS_CAMPAIGN]


def test_fuzz_twin_realtime(twin_factory):
    twin = twin_factory(CONFIGS / "kuka_machines.yaml")  # a printer and a CNC too: the machine ops
    _campaign(twin.endpoint, twin.proc.pid, TWIN_OPS, TWIN_FIELDS, "time", TWIN_MAX_RSS_MB, TWIN_CODES)
    assert twin.proc.poll() is None


def test_fuzz_twin_lockstep(twin_factory):
    twin = twin_factory(CONFIGS / "kuka_lockstep.yaml")
    _campaign(twin.endpoint, twin.proc.pid, TWIN_OPS, TWIN_FIELDS, "time", TWIN_MAX_RSS_MB, TWIN_CODES,
              deferred=("advance",))
    assert twin.proc.poll() is None


def _cell(config: Path, name: str, twin: str, run_dir: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cellctl", "cell", "run", str(config), "--cell", name,
                             "--twin", twin, "--run-dir", str(run_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _control_endpoint(run_dir: Path, name: str, proc: subprocess.Popen) -> str:
    path = run_dir / f"control-{name}.json"
    deadline = time.monotonic() + 60
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the cell did not open its control socket"
        time.sleep(0.05)
    return json.loads(path.read_text())["endpoint"]


def test_fuzz_cell_control(twin_factory, tmp_path):
    twin = twin_factory(CONFIGS / "kuka.yaml")
    config = tmp_path / "cell.yaml"
    config.write_text((CONFIGS / "one_cell.yaml").read_text().replace(
        "twin: {mode: lockstep, period_steps: 5, silence_timeout: 3.0}", "twin: {mode: realtime, rate: 6.0}"))
    proc = _cell(config, "press", twin.endpoint, tmp_path)
    try:
        endpoint = _control_endpoint(tmp_path, "press", proc)
        _campaign(endpoint, proc.pid, ["status", "command"], {"command": ["command"], "status": []}, "status",
                  CELL_MAX_RSS_MB, CELL_CODES)
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(30)


LINE = """version: 1
twin: {mode: realtime, rate: 4.0}
robots:
  press: {model: kuka_iiwa, base: {position: [0.0, 0.0, 0.0]}}
  pack: {model: franka_panda, base: {position: [0.9, 0.0, 0.0]}}
stations:
  infeed: {position: [0.5, -0.35, 0.3], feed: {every: 5.0, count: 1, prefix: part}}
  handoff: {position: [0.45, 0.35, 0.3]}
  outfeed: {position: [1.2, 0.35, 0.3], sink: true}
cells:
  press: {robot: press, take: infeed, give: handoff, downstream: pack}
  pack: {robot: pack, take: handoff, give: outfeed, upstream: press}
"""

HANDOFF_FIELDS = ["type", "session", "part", "part_type", "transfer_state", "code", "severity", "text", "received",
                  "found", "name", "version"]
HANDOFF_TYPES = ["ServiceDescription", "BoardAvailable", "RevokeBoardAvailable", "MachineReady", "StartTransport",
                 "TransportFinished", "StopTransport", "CheckAlive", "Notification", "Resync", "ResyncTransfer",
                 "ResyncAck", "BoardForecast"]


def _a_neighbours_envelope(frame: bytes) -> bool:
    """What the inbox takes from the upstream neighbour 'press' (docs/handoff-protocol.md): a map
    with its name, a non-negative int stamp and an int sequence number."""
    try:
        msg = P.unpack(frame)
        return (msg["from"] == "press" and type(msg["sent"]) is int and msg["sent"] >= 0 and type(msg["seq"]) is int
                and "payload" in msg)
    except Exception:  # noqa: BLE001 - garbage is meant
        return False


def _reported_drops(run_dir: Path) -> int:
    """Frames the cell says it dropped unread, from its handoff_rejected events."""
    total = 0
    for line in (run_dir / "events.jsonl").read_text().splitlines():
        if '"handoff_rejected"' in line and '"peer"' not in line:
            reason = json.loads(line)["reason"]
            more = re.search(r"\(and (\d+) more dropped in the last second\)", reason)
            total += 1 + (int(more.group(1)) if more else 0)
    return total


def test_fuzz_handoff_inbox(tmp_path):
    """The fuzzer plays the upstream cell: it announces an inbox of its own (to catch the cell's
    Notifications) and pushes frames to the cell's inbox. The cell never stops serving."""
    config = tmp_path / "line.yaml"
    config.write_text(LINE)
    from cellctl.processes.children import TwinProcess

    with TwinProcess(str(config)) as twin:
        ctx = zmq.Context.instance()
        ours = ctx.socket(zmq.PULL)
        ours.setsockopt(zmq.LINGER, 0)
        ours.bind("tcp://127.0.0.1:*")
        rendezvous.announce(tmp_path, "press", ours.getsockopt_string(zmq.LAST_ENDPOINT))
        proc = _cell(config, "pack", twin.endpoint, tmp_path)
        push = ctx.socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 0)
        counts = {"frames": 0, "notifications": 0, "not_a_neighbours": 0}
        try:
            control = _control_endpoint(tmp_path, "pack", proc)
            push.connect(rendezvous.wait_for(tmp_path, "pack"))
            payload = st.builds(lambda t, rest: {"type": t, **rest}, st.sampled_from(HANDOFF_TYPES) | values(),
                                field_maps(HANDOFF_FIELDS)) | values()
            envelope = st.builds(lambda f, s, q, p: {"from": f, "sent": s, "seq": q, "payload": p},
                                 st.sampled_from(["press", "pack", "ghost"]) | values(),
                                 st.integers(-5, 2**63) | values(), st.integers(0, 2**63) | values(), payload)
            frames = st.binary(max_size=200) | values().map(P.pack) | envelope.map(P.pack)

            @settings(**CAMPAIGN)
            @given(frame=frames)
            def one(frame: bytes) -> None:
                counts["frames"] += 1
                counts["not_a_neighbours"] += not _a_neighbours_envelope(frame)
                push.send(frame)
                while ours.poll(0):
                    msg = P.unpack(ours.recv())
                    counts["notifications"] += msg["payload"].get("type") == "Notification"
                if counts["frames"] % 500 == 0:
                    assert proc.poll() is None, proc.communicate()[1]
                    assert request(control, "status", timeout=ANSWER_WITHIN)["ok"]

            one()
            assert proc.poll() is None, proc.communicate()[1]
            assert request(control, "status", timeout=ANSWER_WITHIN)["ok"]
            counts["peak_rss_mb"] = round(rss_mb(proc.pid), 1)
            # every frame that is not a neighbour's envelope is dropped and counted in the reports,
            # once a second with how many more: a last bad frame, a second after the last report,
            # is reported at once with the count of everything dropped since
            time.sleep(1.1)
            push.send(b"\x00flush")
            counts["not_a_neighbours"] += 1
            deadline = time.monotonic() + 15
            while (reported := _reported_drops(tmp_path)) < counts["not_a_neighbours"] and time.monotonic() < deadline:
                time.sleep(0.1)
            counts["reported_drops"] = reported
            print(f"\nfuzz handoff inbox: {json.dumps(counts)}")
            assert counts["frames"] >= FRAMES and counts["peak_rss_mb"] < CELL_MAX_RSS_MB, counts
            assert reported >= counts["not_a_neighbours"], counts
        finally:
            push.close(0)
            ours.close(0)
            proc.terminate()
            proc.wait(30)


ROSBRIDGE_OPS = ["advertise", "unadvertise", "publish", "subscribe", "unsubscribe", "call_service",
                 "send_action_goal", "cancel_action_goal", "set_level", "auth", "fragment", "png"]
ROSBRIDGE_FIELDS = ["op", "id", "topic", "type", "msg", "service", "args", "action", "action_type", "level",
                    "throttle_rate", "queue_length", "compression"]


async def _answered(ws, request_id: str, timeout: float, seen: list[dict] | None = None) -> dict:
    """Ask for the topics; every other message read on the way is kept in ``seen``."""
    await ws.send(json.dumps({"op": "call_service", "service": "/rosapi/topics", "id": request_id}))
    deadline = time.monotonic() + timeout
    while True:
        reply = json.loads(await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic())))
        if reply.get("id") == request_id and reply.get("op") == "service_response":
            return reply
        if seen is not None:
            seen.append(reply)


def _rosbridge_malformed(text: str) -> bool:
    """A frame rosbridge's protocol cannot act on: not a JSON object with a known string 'op'."""
    try:
        msg = json.loads(text)
    except ValueError:
        return True
    return not isinstance(msg, dict) or msg.get("op") not in ROSBRIDGE_OPS


def _sets_level(text: str) -> bool:
    try:
        msg = json.loads(text)
    except ValueError:
        return False
    return isinstance(msg, dict) and msg.get("op") == "set_level"


def test_fuzz_rosbridge(twin_factory):
    """One connection that asked for error statuses (``set_level``) gets a status error for every
    malformed frame, and stays served; a fresh client is served too."""
    twin = twin_factory(CONFIGS / "kuka.yaml")
    bridge = RosbridgeProcess(str(CONFIGS / "kuka.yaml"), twin.endpoint)
    bridge.start()
    message = st.builds(lambda o, rest: {**rest, "op": o}, st.sampled_from(ROSBRIDGE_OPS) | values(json_safe=True),
                        field_maps(ROSBRIDGE_FIELDS, json_safe=True))
    drawn = _generated(st.text(max_size=200) | values(json_safe=True).map(json.dumps) | message.map(json.dumps))
    frames = [f for f in drawn if not _sets_level(f)]  # the campaign keeps the error level it asked for
    counts = {"frames": len(frames), "malformed": sum(map(_rosbridge_malformed, frames))}
    seen: list[dict] = []

    async def campaign() -> None:
        async with websockets.connect(bridge.url, max_size=None) as ws:  # one connection for every frame
            await ws.send(json.dumps({"op": "set_level", "level": "error"}))
            for i, text in enumerate(frames):
                await ws.send(text)
                if i % 500 == 0:
                    while True:
                        try:
                            seen.append(json.loads(await asyncio.wait_for(ws.recv(), 0.001)))
                        except TimeoutError:
                            break
            assert (await _answered(ws, "last", 30, seen))["result"] is True  # the fuzzed connection still works
        async with websockets.connect(bridge.url) as fresh:  # and a fresh client is served
            assert (await _answered(fresh, "fresh", ANSWER_WITHIN))["result"] is True

    try:
        asyncio.run(campaign())
        assert bridge.proc.poll() is None
        errors = [m for m in seen if m.get("op") == "status" and m.get("level") == "error"]
        counts["replies"], counts["status_errors"] = len(seen), len(errors)
        counts["peak_rss_mb"] = round(rss_mb(bridge.proc.pid), 1)
        print(f"\nfuzz rosbridge: {json.dumps(counts)}")
        assert counts["frames"] >= FRAMES and counts["peak_rss_mb"] < ROSBRIDGE_MAX_RSS_MB, counts
        assert all(isinstance(m.get("msg"), str) and m["msg"] for m in errors)
        assert counts["status_errors"] >= counts["malformed"], counts
    finally:
        bridge.stop()
