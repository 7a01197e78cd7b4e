"""The OPC UA server end to end, checked by an independent implementation: node-opcua-client
(tests/js/opcua.mjs) against a running demo line (``cellctl run --opcua 0``) and a cell run alone
(``cellctl cell run --opcua 0``). It browses to each cell's PackML object, reads the nested
CurrentStates and the Admin counts (decoding OPC 30050's structures), subscribes and sees a Hold and
an Unhold in order (and ``cellctl status`` says Held meanwhile), is refused a command the state
forbids; with security on, anonymous, observer, wrong-password and untrusted clients are refused;
fuzzed calls, writes and frames get Bad answers and the server goes on, its memory bounded. No test
asserts a latency: they check the values and the order they came in."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cellctl.processes.children import SideProcess
from tests.helpers.announced import announced, gone_with, running
from tests.helpers.ci_log import to_ci_log

ROOT = Path(__file__).parents[1]
JS = ROOT / "tests" / "js"
pytestmark = [pytest.mark.process, pytest.mark.timeout(300)]


def node(mode: str, url: str, timeout: float = 90, **options: object) -> dict:
    assert (JS / "node_modules" / "node-opcua-client").exists(), "run `make test` (it installs node-opcua-client)"
    result = subprocess.run(["node", str(JS / "opcua.mjs"), mode, url, json.dumps(options)], capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def cellctl(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cellctl", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    """The demo line, long enough to outlast the module's tests, with its OPC UA server."""
    run_dir = tmp_path_factory.mktemp("opcua") / "run"
    proc = subprocess.Popen([sys.executable, "-m", "cellctl", "run", str(ROOT / "configs/demo_line.yaml"), "--parts",
                             "100000", "--run-dir", str(run_dir), "--opcua", "0", "--timeout", "600"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    try:
        info = announced(run_dir / "opcua.json", proc)
        yield run_dir, info, tmp_path_factory.mktemp("pki")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_node_opcua_browses_the_cells_packml_objects(line, pytestconfig):
    run_dir, info, pki = line
    assert info["cells"] == ["press", "pack"] and not info["secured"]
    def done() -> dict[str, int]:
        lines = {c: cellctl("status", str(run_dir), "--cell", c).stdout for c in ("press", "pack")}
        return {c: int(line.split("parts done ")[1].split("/")[0]) for c, line in lines.items()}

    before = done()
    out = node("browse", info["url"], pki=str(pki))
    after = done()
    assert sorted(out["cells"]) == ["pack", "press"]
    for name, cell in out["cells"].items():
        assert cell["nodeId"] == f"ns={out['namespaces']['line']};s={name}"
        assert cell["states"]["base"] == "Cleared" and cell["states"]["machine"] == "Running"
        assert cell["states"]["execute"] in ("Execute", "Suspended", "Starting", "Idle")
        processed = cell["admin"]["ProdProcessedCount"]
        # the count it read lies between the cell's own before and after (status polls lag by up to 0.5 s)
        assert before[name] - 2 <= processed["count"] <= after[name], (processed, before, after)
        assert processed["accCount"] >= processed["count"] and processed["unit"]["displayName"]["text"] == "parts"
        assert cell["admin"]["ProdDefectiveCount"]["count"] == 0
        assert cell["status"]["UnitModeCurrent"] == 1 and cell["status"]["EquipmentBlocked"] in (True, False)
    to_ci_log(pytestconfig, "opcua browse (node-opcua-client): " + json.dumps(
        {n: {"states": c["states"], "processed": c["admin"]["ProdProcessedCount"]["count"]}
         for n, c in out["cells"].items()}))


def _in_order(seen: list[str], wanted: list[str]) -> bool:
    rest = iter(seen)
    return all(any(s == w for s in rest) for w in wanted)


def test_a_hold_and_unhold_are_seen_in_order_and_a_forbidden_command_is_refused(line, pytestconfig):
    run_dir, info, pki = line
    client = subprocess.Popen(["node", str(JS / "opcua.mjs"), "holdcycle", info["url"],
                               json.dumps({"cell": "pack", "held_s": 4, "pki": str(pki)})],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    held_in_status = False
    deadline = time.monotonic() + 60
    while client.poll() is None and time.monotonic() < deadline:
        held_in_status |= "pack: Held" in cellctl("status", str(run_dir), "--cell", "pack").stdout
        time.sleep(0.2)
    stdout, stderr = client.communicate(timeout=60)
    assert client.returncode == 0, stdout + stderr[-2000:]
    out = json.loads(stdout.strip().splitlines()[-1])
    assert out["hold"]["status"] == "Good" and out["held"] and out["unhold"]["status"] == "Good" and out["back"]
    assert held_in_status, "cellctl status never said pack: Held while the client held it"
    execute = out["seen"]["execute"]
    assert _in_order(execute, ["Holding", "Held", "Unholding", "Execute"]), execute
    assert execute[execute.index("Holding"):execute.index("Holding") + 4] == ["Holding", "Held", "Unholding", "Execute"]
    assert out["seen"]["machine"][-1] == "Running" and out["seen"]["base"] == ["Cleared"]
    assert out["forbidden"]["status"] == "BadInvalidState"
    assert "Unhold is not allowed in state" in out["forbidden"]["diagnostics"][0]
    assert out["forbidden_clear"]["status"] == "BadInvalidState"
    events = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]
    assert any(e["kind"] == "command" and e.get("by") == "opcua" and e["command"] == "Hold" for e in events)
    to_ci_log(pytestconfig, f"opcua hold cycle (node-opcua subscription): ExecuteState {execute}; forbidden Unhold → "
              f"{out['forbidden']['status']}: {out['forbidden']['diagnostics'][0]}")


def test_fuzzed_calls_writes_and_frames_get_bad_answers_and_the_server_goes_on(line, pytestconfig):
    run_dir, info, pki = line
    before = rss_kb(info["pid"])
    out = node("fuzz", info["url"], timeout=180, cell="press", n=400, seed=7, pki=str(pki))
    assert sum(out["statuses"].values()) == 400
    assert all(name.startswith("Bad") for name in out["statuses"]), out["statuses"]
    assert out["after"] in ("Execute", "Suspended")
    host, port = info["url"].removeprefix("opc.tcp://").split("/")[0].rsplit(":", 1)
    rng = random.Random(3)
    frames = [b"HELF" + (2**31).to_bytes(4, "little") + b"\0" * 24, b"MSGF\xff\xff\xff\x7f", b"\0" * 9000,
              *[bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000))) for _ in range(30)]]
    for frame in frames:
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(frame)
            s.settimeout(0.3)
            try:
                s.recv(4096)  # an error message and a close, or nothing
            except (TimeoutError, ConnectionResetError):
                pass
    assert node("browse", info["url"], pki=str(pki))["cells"]["press"]["states"]["machine"] == "Running"
    grown = rss_kb(info["pid"]) - before
    assert grown < 60_000, f"the OPC UA server grew by {grown} kB under the fuzz"
    assert json.loads((run_dir / "opcua.json").read_text())["pid"] == info["pid"]  # never restarted
    to_ci_log(pytestconfig, f"opcua fuzz (node-opcua calls and writes, {len(frames)} raw frames): {out['statuses']}; "
              f"RSS grew {grown} kB")


def test_secured_server_refuses_anonymous_observers_and_untrusted_clients(line, tmp_path, pytestconfig):
    run_dir, _, pki = line
    users = tmp_path / "users.txt"
    for name, role, password in (("alice", "operator", "alice-secret-1"), ("bob", "observer", "bob-secret-12")):
        added = subprocess.run([sys.executable, "-m", "cellctl", "users", "add", name, "--role", role, "--file",
                                str(users), "--password-stdin"], input=password + "\n", capture_output=True, text=True)
        assert added.returncode == 0, added.stderr
    for d, host in (("server", "localhost"), ("client", "client-pc"), ("stranger", "stranger-pc")):
        assert cellctl("certs", "generate", "--opcua", "--host", host, "--dir", str(tmp_path / d)).returncode == 0
    (tmp_path / "trust").mkdir()
    shutil.copy(tmp_path / "client" / "opcua.der", tmp_path / "trust" / "client.der")

    refused = cellctl("opcua", str(run_dir), "--host", "0.0.0.0", "--port", "0")
    assert refused.returncode == 2 and "is not loopback: give --users" in refused.stderr
    server = SideProcess("opcua", run_dir, ["--port", "0", "--users", str(users), "--cert",
                                            str(tmp_path / "server/opcua.der"), "--key", str(tmp_path / "server/opcua.pem"),
                                            "--trust", str(tmp_path / "trust"), "--anonymous"])
    server.cmd.remove("--announce")  # a second server of the same run: the line's own opcua.json stays
    server.start()
    try:
        url = server.url
        assert server.info["secured"] and server.info["login"]
        client = {"secure": True, "cert": str(tmp_path / "client/opcua.der"), "key": str(tmp_path / "client/opcua.pem"),
                  "application_uri": "urn:client-pc:cellctl:opcua", "cell": "press", "method": "executeSm.Hold",
                  "pki": str(tmp_path / "pki")}
        results = {
            "anonymous": node("call", url, **client),
            "observer": node("call", url, **client, user="bob", password="bob-secret-12"),
            "wrong_password": node("call", url, **client, user="alice", password="not-her-password"),
            "untrusted": node("call", url, **{**client, "cert": str(tmp_path / "stranger/opcua.der"),
                                              "key": str(tmp_path / "stranger/opcua.pem"),
                                              "application_uri": "urn:stranger-pc:cellctl:opcua"},
                              user="alice", password="alice-secret-1"),
            "no_security": node("call", url, cell="press", method="executeSm.Hold", pki=str(pki)),
            "operator": node("call", url, **client, user="alice", password="alice-secret-1"),
        }
        unhold = node("call", url, **{**client, "method": "executeSm.Unhold"}, user="alice", password="alice-secret-1")
    finally:
        server.stop()
    assert results["anonymous"]["result"]["status"] == "BadUserAccessDenied"
    assert results["observer"]["result"]["status"] == "BadUserAccessDenied"
    assert "result" not in results["wrong_password"] and results["wrong_password"].get("session_error")
    for name in ("untrusted", "no_security"):
        assert "result" not in results[name] and (results[name].get("error") or results[name].get("session_error"))
    assert results["operator"]["result"]["status"] == "Good" and unhold["result"]["status"] == "Good"
    events = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]
    assert any(e["kind"] == "command" and e.get("user") == "alice" and e.get("by") == "opcua" for e in events)
    to_ci_log(pytestconfig, "opcua security (Basic256Sha256, users): " + json.dumps(
        {k: v.get("result", {}).get("status") or v.get("session_error") or v.get("error") for k, v in results.items()}))


def test_a_killed_server_is_restarted_by_the_launcher_on_the_same_port(line, pytestconfig):
    run_dir, info, pki = line
    os.kill(info["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 60
    while (now := json.loads((run_dir / "opcua.json").read_text()))["pid"] == info["pid"]:
        assert time.monotonic() < deadline, "the launcher did not restart its OPC UA server"
        time.sleep(0.2)
    assert now["url"] == info["url"]  # where the SCADA client reconnects
    assert node("browse", now["url"], pki=str(pki))["cells"]["pack"]["states"]["machine"] == "Running"
    events = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]
    opcua = [(e["event"], e.get("code")) for e in events if e.get("component") == "opcua"]
    assert opcua[-3:] == [("started", None), ("exited", -9), ("started", None)], opcua


def test_a_cell_run_alone_serves_itself_and_its_server_ends_with_it(tmp_path, twin_factory):
    config = ROOT / "tests/configs/one_cell.yaml"
    twin = twin_factory(config)
    run_dir = tmp_path / "cell"
    cell = subprocess.Popen([sys.executable, "-m", "cellctl", "cell", "run", str(config), "--cell", "press", "--twin",
                             twin.endpoint, "--run-dir", str(run_dir), "--opcua", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    info: dict = {}
    try:
        info = announced(run_dir / "opcua.json", cell)
        assert info["cells"] == ["press"]
        deadline = time.monotonic() + 30
        while (states := node("browse", info["url"])["cells"]["press"]["states"])["machine"] != "Stopped":
            assert time.monotonic() < deadline, states
        assert states == {"base": "Cleared", "machine": "Stopped", "execute": ""}
        assert node("call", info["url"], cell="press", method="machineSm.Reset")["result"]["status"] == "Good"
        deadline = time.monotonic() + 30
        while "press: Idle" not in cellctl("status", str(run_dir), "--cell", "press").stdout:
            assert time.monotonic() < deadline, "Reset through OPC UA never brought press to Idle"
            time.sleep(0.2)
        cell.kill()  # as a crash would: the server must not outlive it and hold its port
        cell.wait()
        gone_with(info["pid"], "opcua", "the cell's OPC UA server")
    finally:
        if cell.poll() is None:
            cell.kill()
            cell.wait()
        if info and running(info["pid"], "opcua"):
            os.kill(info["pid"], signal.SIGKILL)
