"""Sparkplug B in-process: payloads through the protobuf wire (and back), the sequence numbers, the
edge node's births, data and deaths from a cell's status and events, the bounded outbox (oldest
dropped, counted, a rebirth after), commands (rebirth honoured, PackML only where configured,
garbage ignored), and the publisher's rules for a broker, its credentials and commands."""

from __future__ import annotations

import asyncio

import pytest
import yaml

from cellctl.config.line import MqttConfig
from cellctl.config.loader import ConfigError, load_config
from cellctl.line.feeds import Sent
from cellctl.mqtt.edge import EdgeNode
from cellctl.mqtt.serve import Broker, MqttRefused, MqttServing, _next_bd_seq, check, serving
from cellctl.mqtt.sparkplug import DataType, Metric, Payload, PayloadError, Sequence, Topics, decode, encode
from cellctl.rundir import RunDir
from cellctl.users import Role, Users, UsersFileError
from tests.test_opcua_logic import ROOT, _status


def test_payloads_round_trip_through_the_wire():
    metrics = [Metric("bdSeq", DataType.UINT64, 7), Metric("PackML/StateCurrent", DataType.INT32, -2),
               Metric("Speed", DataType.FLOAT, 1.5), Metric("Starved", DataType.BOOLEAN, True),
               Metric("Custody/Part", DataType.STRING, None), Metric("Name", DataType.STRING, "pack")]
    p = Payload()
    p.ParseFromString(encode(metrics, 255, timestamp=1000))
    assert (p.seq, p.timestamp, [m.datatype for m in p.metrics]) == (255, 1000, [8, 3, 9, 11, 12, 12])
    assert p.metrics[1].int_value == 0xFFFFFFFE and p.metrics[4].is_null  # a signed Int32 in the unsigned field
    assert decode(encode(metrics, 3)) == [("bdSeq", 7), ("PackML/StateCurrent", 0xFFFFFFFE), ("Speed", 1.5),
                                          ("Starved", True), ("Custody/Part", None), ("Name", "pack")]
    assert not Payload.FromString(encode(metrics[:1], None)).HasField("seq")  # an NDEATH carries no seq
    with pytest.raises(PayloadError):
        decode(b"\xff\xff\xff garbage")


def test_seq_restarts_at_each_nbirth_and_wraps_at_255():
    seq = Sequence()
    assert seq.restart() == 0
    taken = [seq.take() for _ in range(300)]
    assert taken[:2] == [1, 2] and taken[254:257] == [255, 0, 1]
    assert seq.restart() == 0 and seq.take() == 1


def _node(queue: int = 1000, commander=None) -> EdgeNode:
    return EdgeNode(Topics("plant", "line1"), ["press", "pack"], from_events=True, queue=queue, commander=commander,
                    command_user="scada")


def _drain(node: EdgeNode) -> list[tuple[str, int | None, dict]]:
    out = []
    while (sent := node.next_payload()) is not None:
        p = Payload.FromString(sent[1])
        out.append((sent[0].topic, p.seq, dict(decode(sent[1]))))
    return out


def test_births_then_data_with_what_changed_then_a_death_for_a_silent_cell():
    node = _node()
    node.bd_seq = 4
    node.on_status("press", _status("Execute", 1, 5.0))
    node.rebirth()
    born = _drain(node)
    assert [(t, s) for t, s, _ in born] == [("spBv1.0/plant/NBIRTH/line1", 0), ("spBv1.0/plant/DBIRTH/line1/press", 1)]
    assert born[0][2]["bdSeq"] == 4 and born[0][2]["Node Control/Rebirth"] is False
    assert born[1][2]["PackML/State"] == "Execute" and born[1][2]["PackML/MachineState/CurrentState"] == "Running"
    node.on_events([{"kind": "packml", "cell": "press", "dest": "Holding"}, {"kind": "part_done", "cell": "press"}])
    node.on_status("pack", _status("Idle"))
    node.changes()
    data = _drain(node)
    assert [(t, s) for t, s, _ in data] == [("spBv1.0/plant/DDATA/line1/press", 2), ("spBv1.0/plant/DBIRTH/line1/pack", 3)]
    assert data[0][2] == {"PackML/State": "Holding", "PackML/ExecuteState/CurrentState": "Holding",
                          "PackML/Admin/ProdProcessedCount/AccCount": 1}
    node.on_events([{"kind": "custody", "cell": "press", "part": "part-1", "state": "OWNED"}])
    node.changes()
    assert _drain(node)[0][2] == {"Custody/Part": "part-1"}
    node.on_events([{"kind": "custody", "cell": "press", "part": "part-1", "state": "GIVEN"}])
    node.changes()
    assert _drain(node)[0][2] == {"Custody/Part": None}
    node.on_status("press", None, "cell press: exited (signal 9)")
    node.changes()
    node.changes()  # nothing new: nothing sent
    assert [(t, s, m) for t, s, m in _drain(node)] == [("spBv1.0/plant/DDEATH/line1/press", 6, {})]
    node.on_status("press", _status("Execute", 1, 9.0))
    node.changes()
    assert [t for t, _, _ in _drain(node)] == ["spBv1.0/plant/DBIRTH/line1/press"]  # back: born again


def test_a_full_outbox_drops_its_oldest_counts_them_and_sends_a_rebirth_next():
    node = _node(queue=10)
    node.on_status("press", _status("Execute", 0, 0.0))
    node.rebirth()
    _drain(node)
    for i in range(1, 31):  # thirty changes while the broker takes nothing
        node.on_status("press", _status("Execute", i, float(i)))
        node.changes()
    assert node.outbox.dropped == 20 and len(node.outbox.messages) == 10
    sent = _drain(node)
    assert [t.split("/")[2] for t, _, _ in sent] == ["NBIRTH", "DBIRTH"]  # the gap is closed by a rebirth
    assert sent[0][1] == 0 and sent[0][2]["Node Info/Dropped"] == 20
    assert sent[1][2]["PackML/Admin/ProdProcessedCount/Count"] == 30
    for i in range(500):  # state changes nobody takes (Sparkplug shows the state only): kept bounded
        node.on_events([{"kind": "packml", "cell": "press", "dest": "Held" if i % 2 else "Execute"}])
    assert len(node.tags["press"].transitions) == 100


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str | None]] = []

    async def command(self, cell: str, command: str, user: str | None) -> tuple[Sent, str]:
        self.sent.append((cell, command, user))
        return Sent.QUEUED, f"{cell}: {command} queued"


def test_commands_rebirth_honoured_packml_only_where_configured(caplog):
    off = _node()
    off.on_status("pack", _status("Execute"))
    off.rebirth()
    _drain(off)

    async def scenario(node: EdgeNode) -> None:
        for _ in range(2):  # the second, right after the first, is one too many
            await node.on_command("spBv1.0/plant/NCMD/line1", encode([Metric("Node Control/Rebirth", DataType.BOOLEAN,
                                                                             True)], 0))
        await node.on_command("spBv1.0/plant/DCMD/line1/pack", encode([Metric("PackML/Command", DataType.STRING,
                                                                              "Hold")], 1))
        await node.on_command("spBv1.0/plant/DCMD/line1/pack", b"\x0a\xff garbage")
        await node.on_command("spBv1.0/plant/NCMD/line1", encode([Metric("Node Control/Reboot", DataType.BOOLEAN,
                                                                         True)], 2))

    asyncio.run(scenario(off))
    assert [t.split("/")[2] for t, _, _ in _drain(off)] == ["NBIRTH", "DBIRTH"]
    assert off.ignored == 4
    assert "commands over MQTT are off" in caplog.text and "a rebirth was asked for less than 1s ago" in caplog.text and "not a command this edge node takes" in caplog.text
    recorder = Recorder()
    on = _node(commander=recorder)
    asyncio.run(on.on_command("spBv1.0/plant/DCMD/line1/pack", encode([Metric("PackML/Command", DataType.STRING,
                                                                             "Hold")], 1)))
    asyncio.run(on.on_command("spBv1.0/plant/DCMD/line1/pack", encode([Metric("PackML/Command", DataType.STRING,
                                                                             "Explode")], 2)))
    assert recorder.sent == [("pack", "Hold", "scada")] and on.ignored == 1


def test_broker_urls_credentials_and_command_rules(tmp_path):
    assert Broker.parse("mqtt://127.0.0.1") == Broker("127.0.0.1", 1883, False)
    assert Broker.parse("mqtts://broker.plant:9883") == Broker("broker.plant", 9883, True)
    for bad in ("http://x", "mqtt://", "mqtt://h:99999", "mqtt://h/path", "nonsense"):
        with pytest.raises(MqttRefused, match="expected mqtt://HOST"):
            Broker.parse(bad)
    users = Users.load(tmp_path / "users.txt", missing_ok=True).with_user("scada", Role.OPERATOR, "scada-secret")
    users.with_user("viewer", Role.OBSERVER, "viewer-secret").save()
    config = MqttConfig(commands=True, users=str(tmp_path / "users.txt"), command_user="scada")
    check(MqttServing("x", "mqtt://127.0.0.1:1883", config, "e"))  # loopback: fine
    with pytest.raises(MqttRefused, match="not on loopback: commands need TLS"):
        check(MqttServing("x", "mqtt://10.0.0.5", config, "e"))
    with pytest.raises(UsersFileError, match="'viewer' is not an operator"):
        check(MqttServing("x", "mqtt://127.0.0.1", config.model_copy(update={"command_user": "viewer"}), "e"))
    with pytest.raises(MqttRefused, match="password_file"):
        check(MqttServing("x", "mqtt://127.0.0.1", MqttConfig(password_file=str(tmp_path / "none")), "e"))


def test_the_config_section_and_edge_node_names(tmp_path):
    data = yaml.safe_load((ROOT / "configs/demo_line.yaml").read_text())
    data["mqtt"] = {"group": "plant/1", "commands": True}
    path = tmp_path / "line.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as found:
        load_config(path)
    assert all(k in str(found.value) for k in ("mqtt.group", "mqtt.users", "mqtt.command_user"))
    data["mqtt"] = {"group": "plant1", "password_file": "secret.txt"}
    path.write_text(yaml.safe_dump(data))
    s = serving(str(path), "mqtt://127.0.0.1")
    assert (s.edge, s.config.group, s.config.password_file) == ("line", "plant1", str(tmp_path / "secret.txt"))
    assert serving(str(path), "mqtt://127.0.0.1", cell="pack").edge == "pack"


def test_bd_seq_goes_on_from_the_runs_last(tmp_path):
    run = RunDir(tmp_path)
    assert [_next_bd_seq(run, None), _next_bd_seq(run, 0)] == [0, 1]
    assert _next_bd_seq(run, None) == 2  # a restarted publisher: after the last one the run used
    run.write_json(run.mqtt_bd_seq, {"bdSeq": 255})
    assert _next_bd_seq(run, None) == 0 and _next_bd_seq(None, None) == 0
