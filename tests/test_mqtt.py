"""Sparkplug B end to end, read by independent implementations: Debian's mosquitto as the broker and
Eclipse Tahu's sparkplug-payload (with mqtt.js, tests/js/sparkplug.mjs) decoding every message of a
demo line run with ``--mqtt URL``. The births, data and deaths are checked against the Sparkplug
rules (seq 0 at each NBIRTH and consecutive after it, wrapping at 255; the NDEATH's bdSeq that of its
NBIRTH) and the last values of each cell against the run's ``summary.json``; the broker is killed
and restarted mid-run (a rebirth with a new bdSeq, the counts still right at the end); an NCMD
rebirth is answered with an NBIRTH; an unconfigured command is ignored and logged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers.announced import announced, gone_with
from tests.helpers.ci_log import to_ci_log
from tests.helpers.mosquitto import mosquitto

ROOT = Path(__file__).parents[1]
JS = ROOT / "tests" / "js"
pytestmark = [pytest.mark.process, pytest.mark.timeout(300)]


class Recorder:
    """tests/js/sparkplug.mjs record: every message under spBv1.0/#, decoded by Tahu's library."""

    def __init__(self, url: str, directory: Path, env: dict | None = None) -> None:
        assert (JS / "node_modules" / "sparkplug-payload").exists(), "run `make test` (it installs sparkplug-payload)"
        self.out, self.stop_file = directory / "recorded.jsonl", directory / "stop"
        self.out.touch()
        self.proc = subprocess.Popen(["node", str(JS / "sparkplug.mjs"), "record", url, str(self.out),
                                      str(self.stop_file)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, **(env or {})})
        self.wait_for(lambda lines: any(line.get("recorder") == "connected" for line in lines), "the recorder connected")
        time.sleep(1.5)  # the broker saves its store every second: the subscription survives a kill from now on

    def lines(self) -> list[dict]:
        return [json.loads(x) for x in self.out.read_text().splitlines() if x.strip()]

    def messages(self) -> list[dict]:
        return [line for line in self.lines() if "topic" in line]

    def wait_for(self, found, what: str, timeout: float = 60) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found(lines := self.lines()):
                return lines
            assert self.proc.poll() is None, self.proc.stdout.read()
            time.sleep(0.1)
        raise AssertionError(f"never saw {what}: {self.lines()[-5:]}")

    def stop(self) -> list[dict]:
        self.stop_file.touch()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.messages()


def send(url: str, topic: str, metrics: list[dict], env: dict | None = None) -> None:
    result = subprocess.run(["node", str(JS / "sparkplug.mjs"), "send", url, topic, json.dumps(metrics)],
                            capture_output=True, text=True, timeout=30, env={**os.environ, **(env or {})})
    assert result.returncode == 0, result.stderr


def kind(message: dict) -> str:
    return message["topic"].split("/")[2]


def check_sparkplug(messages: list[dict]) -> dict[str, dict]:
    """The Sparkplug rules over what an edge node published (the host's commands left out); the last
    value of every device metric."""
    assert not [m for m in messages if "error" in m], "messages Tahu could not decode"
    messages = [m for m in messages if kind(m) not in ("NCMD", "DCMD")]
    assert kind(messages[0]) == "NBIRTH", messages[0]
    seq, bd_seq, devices = None, None, {}
    for m in messages:
        k = kind(m)
        if k == "NBIRTH":
            assert m["seq"] == 0 and m["types"]["bdSeq"] == "UInt64" and m["metrics"]["Node Control/Rebirth"] is False
            seq, bd_seq = 0, m["metrics"]["bdSeq"]
            continue
        if k == "NDEATH":
            assert m["seq"] is None and m["metrics"] == {"bdSeq": bd_seq}, (m, bd_seq)
            continue
        assert m["seq"] == (seq + 1) % 256, (m["topic"], m["seq"], seq)
        seq = m["seq"]
        device = m["topic"].split("/")[4]
        if k == "DBIRTH":
            devices[device] = dict(m["metrics"])
        elif k == "DDATA":
            assert device in devices, f"DDATA for {device} before its DBIRTH"
            assert set(m["metrics"]) <= set(devices[device]), "a metric its DBIRTH did not declare"
            devices[device].update(m["metrics"])
    return devices


def run_line(run_dir: Path, url: str, parts: int, config: Path = ROOT / "configs/demo_line.yaml") -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cellctl", "run", str(config), "--parts",
                             str(parts), "--run-dir", str(run_dir), "--mqtt", url, "--json", "--timeout", "240"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)


def test_a_demo_line_on_sparkplug_b_as_tahu_reads_it(tmp_path, pytestconfig):
    with mosquitto(tmp_path / "broker") as broker:
        recorder = Recorder(broker.url, tmp_path)
        line = run_line(tmp_path / "run", broker.url, 3)
        out, _ = line.communicate(timeout=240)
        assert line.returncode == 0, out[-3000:]
        messages = recorder.wait_for(lambda ls: any(m.get("topic", "").split("/")[2:3] == ["NDEATH"] for m in ls),
                                     "the NDEATH of a clean stop")
        messages = recorder.stop()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    devices = check_sparkplug(messages)
    assert sorted(devices) == ["pack", "press"]
    for cell, last in devices.items():
        assert last["PackML/State"] == summary["cells"][cell]["state"] == "Complete"
        assert last["PackML/ExecuteState/CurrentState"] == "Complete" and last["PackML/MachineState/CurrentState"] == "Running"
        assert last["PackML/Admin/ProdProcessedCount/AccCount"] == summary["cells"][cell]["parts_done"] == 3
        assert last["Links/robot/Connected"] is True and last["Custody/Part"] is None
    assert kind(messages[-1]) == "NDEATH"
    topics = sorted({m["topic"] for m in messages})
    births = [m for m in messages if kind(m) == "DBIRTH"]
    assert births[0]["types"]["PackML/StateCurrent"] == "Int32" and births[0]["types"]["PackML/State"] == "String"
    to_ci_log(pytestconfig, f"sparkplug topics (Tahu decoder): {topics}; {len(messages)} messages, seq "
                            f"{[m['seq'] for m in messages]}; last values {json.dumps({c: {k: v for k, v in d.items() if k.startswith('PackML/State') or k.endswith('AccCount')} for c, d in devices.items()})} "
                            f"= summary.json {json.dumps({c: summary['cells'][c] for c in devices})}")


def test_a_broker_killed_mid_run_comes_back_to_a_rebirth_and_commands_are_answered(tmp_path, pytestconfig):
    run_dir = tmp_path / "run"
    with mosquitto(tmp_path / "broker") as broker:
        recorder = Recorder(broker.url, tmp_path)
        line = run_line(run_dir, broker.url, 25)
        nbirths = lambda ls: [m for m in ls if m.get("topic", "").split("/")[2:3] == ["NBIRTH"]]  # noqa: E731
        recorder.wait_for(lambda ls: any((m.get("metrics") or {}).get("PackML/Admin/ProdProcessedCount/AccCount", 0) >= 3
                                         for m in ls), "three parts done", timeout=120)
        broker.kill()
        time.sleep(2)  # the line goes on without its broker
        broker.start()
        lines = recorder.wait_for(lambda ls: len(nbirths(ls)) >= 2, "the NBIRTH after the broker came back")
        first, again = (b["metrics"]["bdSeq"] for b in nbirths(lines)[:2])
        assert first == 0 and again > first  # a new bdSeq for every connection tried while the broker was down
        send(broker.url, "spBv1.0/cellctl/NCMD/demo_line", [{"name": "Node Control/Rebirth", "type": "Boolean",
                                                              "value": True}])
        lines = recorder.wait_for(lambda ls: len(nbirths(ls)) >= 3, "the NBIRTH answering the NCMD rebirth")
        assert nbirths(lines)[2]["metrics"]["bdSeq"] == again  # the same MQTT session
        send(broker.url, "spBv1.0/cellctl/DCMD/demo_line/pack", [{"name": "PackML/Command", "type": "String",
                                                                  "value": "Hold"}])
        out, _ = line.communicate(timeout=240)
        assert line.returncode == 0, out[-3000:]
        recorder.wait_for(lambda ls: any(m.get("topic", "").split("/")[2:3] == ["NDEATH"] for m in ls), "the NDEATH")
        messages = recorder.stop()
    summary = json.loads((run_dir / "summary.json").read_text())
    devices = check_sparkplug(messages)
    for cell in ("press", "pack"):
        assert devices[cell]["PackML/Admin/ProdProcessedCount/AccCount"] == summary["cells"][cell]["parts_done"] == 25
        assert devices[cell]["PackML/State"] == summary["cells"][cell]["state"] == "Complete"
    log = (run_dir / "mqtt.log").read_text()
    assert "NCMD rebirth" in log and "ignored a command on DCMD/pack: PackML/Command 'Hold': commands over MQTT are off" in log
    events = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]
    assert not [e for e in events if e["kind"] == "command" and e.get("by") == "mqtt"]
    assert summary["lost"] == 0 and summary["finished"]
    to_ci_log(pytestconfig, f"sparkplug broker kill/restart: NBIRTH bdSeq {[b['metrics']['bdSeq'] for b in nbirths(messages)]}; "
                            f"{len(messages)} messages, seq checked per session; counts "
                            f"{ {c: devices[c]['PackML/Admin/ProdProcessedCount/AccCount'] for c in devices} } = summary; "
                            f"unconfigured DCMD Hold ignored and logged")


def test_a_cell_run_alone_publishes_itself_and_says_goodbye_when_killed(tmp_path, twin_factory):
    config = ROOT / "tests/configs/one_cell.yaml"
    twin = twin_factory(config)
    run_dir = tmp_path / "cell"
    with mosquitto(tmp_path / "broker") as broker:
        recorder = Recorder(broker.url, tmp_path)
        cell = subprocess.Popen([sys.executable, "-m", "cellctl", "cell", "run", str(config), "--cell", "press",
                                 "--twin", twin.endpoint, "--run-dir", str(run_dir), "--mqtt", broker.url],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
        try:
            info = announced(run_dir / "mqtt.json", cell)
            assert (info["edge"], info["cells"]) == ("press", ["press"])
            born = recorder.wait_for(lambda ls: any(m.get("topic") == "spBv1.0/cellctl/DBIRTH/press/press" for m in ls),
                                     "the cell's DBIRTH")
            dbirth = next(m for m in born if m.get("topic") == "spBv1.0/cellctl/DBIRTH/press/press")
            assert dbirth["metrics"]["PackML/MachineState/CurrentState"] == "Stopped"  # not started: waits for Reset
            cell.kill()  # as a crash would: its publisher says goodbye and goes
            cell.wait()
            recorder.wait_for(lambda ls: any(m.get("topic") == "spBv1.0/cellctl/NDEATH/press" for m in ls), "the NDEATH")
            gone_with(info["pid"], "mqtt", "the cell's Sparkplug B publisher")
        finally:
            if cell.poll() is None:
                cell.kill()
                cell.wait()
        check_sparkplug(recorder.stop())


def test_tls_credentials_and_configured_commands(tmp_path, pytestconfig):
    """A broker with TLS (a CA of its own) and a password, no anonymous clients; the config gives the
    publisher its CA, user and password file, and lets DCMD commands through as the operator scada."""
    users = tmp_path / "users.txt"
    added = subprocess.run([sys.executable, "-m", "cellctl", "users", "add", "scada", "--role", "operator", "--file",
                            str(users), "--password-stdin"], input="scada-secret-1\n", capture_output=True, text=True)
    assert added.returncode == 0, added.stderr
    with mosquitto(tmp_path / "broker", secured=True) as broker:
        config = yaml.safe_load((ROOT / "configs/demo_line.yaml").read_text())
        config["mqtt"] = {"group": "plant1", "edge": "line-a", "username": "cellctl",
                          "password_file": str(broker.password), "tls": {"ca": str(broker.ca)}, "commands": True,
                          "users": str(users), "command_user": "scada"}
        path = tmp_path / "line.yaml"
        path.write_text(yaml.safe_dump(config))
        env = {"MQTT_CA": str(broker.ca), "MQTT_USER": "cellctl", "MQTT_PASSWORD": "broker-secret-1"}
        recorder = Recorder(broker.url, tmp_path, env)
        run_dir = tmp_path / "run"
        line = run_line(run_dir, broker.url, 20, path)
        recorder.wait_for(lambda ls: any(m.get("topic") == "spBv1.0/plant1/DBIRTH/line-a/pack" for m in ls),
                          "pack's DBIRTH over TLS")
        send(broker.url, "spBv1.0/plant1/DCMD/line-a/pack", [{"name": "PackML/Command", "type": "String", "value": "Hold"}],
             env)
        recorder.wait_for(lambda ls: any((m.get("metrics") or {}).get("PackML/State") == "Held"
                                                 and m["topic"].endswith("/pack") for m in ls), "pack Held on MQTT")
        status = subprocess.run([sys.executable, "-m", "cellctl", "status", str(run_dir), "--cell", "pack"],
                                capture_output=True, text=True, timeout=30, cwd=ROOT).stdout
        assert "pack: Held" in status and "scada via mqtt" in status, status
        send(broker.url, "spBv1.0/plant1/DCMD/line-a/pack", [{"name": "PackML/Command", "type": "String",
                                                               "value": "Unhold"}], env)
        out, _ = line.communicate(timeout=240)
        assert line.returncode == 0, out[-3000:]
        messages = recorder.stop()
    devices = check_sparkplug(messages)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert devices["pack"]["PackML/Admin/ProdProcessedCount/AccCount"] == summary["cells"]["pack"]["parts_done"] == 20
    commands = [(e["command"], e.get("user"), e.get("by")) for e in
                (json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()) if e["kind"] == "command"]
    assert commands == [("Hold", "scada", "mqtt"), ("Unhold", "scada", "mqtt")]
    reasons = [m["metrics"]["PackML/Admin/StopReason/Message"] for m in messages if m["topic"].endswith("/pack")
               and "PackML/Admin/StopReason/Message" in m.get("metrics", {})]
    assert "Hold by the operator (scada via mqtt)" in reasons, reasons
    to_ci_log(pytestconfig, f"sparkplug over TLS with a password: DCMD Hold/Unhold as scada → events {commands}; "
                            f"{len(messages)} messages decoded; counts = summary.json")
