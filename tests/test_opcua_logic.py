"""The OPC UA server's logic in-process: a cell's PackML tags from its status and events (OPC 30050's
nested state machines, counts, alarms), who may command, the serving rules and config, and the
address space built on a real asyncua server (never started: no socket) with its methods called as
asyncua calls them — the commands handed to a recording commander, as the real one hands them to a
cell's control socket."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml
from asyncua import Server, ua
from asyncua.crypto.permission_rules import UserRole

from cellctl.certs import CertError, generate, generate_opcua
from cellctl.config.loader import ConfigError, load_config
from cellctl.line.feeds import Sent
from cellctl.opcua import access
from cellctl.opcua.access import Caller, Sessions
from cellctl.opcua.serve import OpcuaRefused, OpcuaServing, _application_uri, check, serving
from cellctl.opcua.space import Space
from cellctl.line.tags import ALARM, ALARM_IDS, SILENT, WARNING, CellTags, nested
from cellctl.users import Role, Users

ROOT = Path(__file__).parents[1]


def _status(state: str, done: int = 0, t: float = 0.0, fault: tuple[str, str] | None = None,
            history: list[dict] | None = None) -> dict:
    return {"cell": "pack", "state": state, "parts_done": done, "sim_time": t, "part": None,
            "fault": fault[1] if fault else None, "fault_kind": fault[0] if fault else None,
            "fault_since": "2026-12-05T10:00:00+00:00" if fault else None, "alarm_history": history or []}


def test_nested_states_follow_opc_30050():
    assert nested("Aborted") == ("Aborted", None, None)
    assert nested("Clearing") == ("Cleared", "Clearing", None)
    assert nested("Stopped") == ("Cleared", "Stopped", None)
    assert nested("Held") == ("Cleared", "Running", "Held")
    assert nested("Execute") == ("Cleared", "Running", "Execute")


def test_state_follows_events_in_order_when_they_are_at_hand():
    tags = CellTags("pack", from_events=True)
    tags.on_status(_status("Execute"))
    tags.on_status(_status("Held"))  # a later poll: the events are the state's source now
    for dest in ("Holding", "Held", "Unholding", "Execute"):
        tags.on_event({"kind": "packml", "cell": "pack", "dest": dest})
    assert [t for _, t in tags.transitions] == ["Execute", "Holding", "Held", "Unholding", "Execute"]


def test_without_events_the_status_replies_give_the_state():
    tags = CellTags("pack", from_events=False)
    for state in ("Idle", "Execute", "Execute", "Held"):
        tags.on_status(_status(state))
    assert list(tags.transitions) == [(None, "Idle"), ("Idle", "Execute"), ("Execute", "Held")]
    tags.on_status(_status("Bogus"))
    assert tags.state == "Held"  # not a PackML state: ignored


def test_counts_speed_starved_and_blocked():
    tags = CellTags("pack", from_events=False)
    tags.on_status(_status("Execute"))
    for done, t in ((1, 10.0), (2, 20.0), (3, 30.0)):
        tags.on_status(_status("Execute", done, t))
    assert (tags.processed, tags.processed_acc) == (3, 3)
    assert tags.mach_speed == pytest.approx(6.0) and tags.cur_mach_speed == pytest.approx(6.0)
    tags.on_status(_status("Execute", 0, 35.0))  # a new work order: the count starts again, the total goes on
    tags.on_status(_status("Execute", 1, 40.0))
    assert (tags.processed, tags.processed_acc) == (1, 4)
    with_events = CellTags("pack", from_events=True)
    for _ in range(5):
        with_events.on_event({"kind": "part_done", "cell": "pack", "part": "p"})
    with_events.on_status(_status("Execute", 2, 1.0))
    assert (with_events.processed, with_events.processed_acc) == (2, 5)  # the run's total from its events
    tags.on_event({"kind": "machine_job", "state": "failed"})
    tags.on_event({"kind": "machine_job", "state": "done"})
    assert tags.defective == 1
    tags.on_status(_status("Suspended", 1, 50.0, ("starved", "starved: no part from press")))
    assert tags.starved and not tags.blocked
    tags.on_status(_status("Suspended", 1, 50.0, ("blocked", "blocked: pack not ready")))
    assert tags.blocked and not tags.starved


def test_alarms_warnings_stop_reason_and_history():
    tags = CellTags("pack", from_events=False)
    history = [{"fault": "Hold by the operator (opcua)", "fault_kind": "operator", "raised": "2026-12-05T09:00:00+00:00",
                "cleared": "2026-12-05T09:01:00+00:00"}]
    tags.on_status(_status("Held", fault=("skill_failed", "part part-3: step 0 failed"), history=history))
    (alarm,) = tags.alarms()
    assert (alarm.id, alarm.category, alarm.trigger) == (ALARM_IDS["skill_failed"], ALARM, True)
    assert tags.stop_reason() == alarm and tags.warnings() == []
    (cleared,) = tags.history()
    assert cleared.message == "Hold by the operator (opcua)" and not cleared.trigger and cleared.acked.year == 2026
    tags.on_status(_status("Suspended", fault=("starved", "starved: infeed empty"), history=history))
    assert tags.alarms() == [] and [w.category for w in tags.warnings()] == [WARNING]
    tags.on_status(_status("Execute", history=history))
    assert tags.stop_reason().message == "Hold by the operator (opcua)" and not tags.stop_reason().trigger
    tags.on_status(None, "cell pack: not answering (pid 7 is alive: paused, or busy starting); try again")
    assert [w.id for w in tags.warnings()] == [SILENT]


def _users(tmp_path: Path) -> Users:
    users = Users.load(tmp_path / "users.txt", missing_ok=True).with_user("alice", Role.OPERATOR, "alice-secret-1")
    users = users.with_user("bob", Role.OBSERVER, "bob-secret-12")
    users.save()
    return Users.load(tmp_path / "users.txt")


def test_sessions_operators_observers_and_anonymous(tmp_path):
    users = _users(tmp_path)
    closed = Sessions(users, anonymous=False, anonymous_commands=False)
    assert closed.get_user(None) is None
    assert closed.get_user(None, "alice", "wrong") is None and closed.get_user(None, "carol", "x" * 9) is None
    assert closed.get_user(None, "alice", "alice-secret-1").may_command
    bob = closed.get_user(None, "bob", "bob-secret-12")
    assert bob.name == "bob" and not bob.may_command
    reading = Sessions(users, anonymous=True, anonymous_commands=False)
    assert not reading.get_user(None).may_command
    local = Sessions(None, anonymous=True, anonymous_commands=True)
    assert local.get_user(None).may_command
    call, add = (ua.NodeId(ua.ObjectIds.CallRequest_Encoding_DefaultBinary),
                 ua.NodeId(ua.ObjectIds.AddNodesRequest_Encoding_DefaultBinary))
    assert local.check_validity(bob, call, None) and access.caller() is bob
    assert not local.check_validity(Caller(role=UserRole.Admin, may_command=True), add, None)  # nobody adds nodes


def test_serving_rules_and_config(tmp_path):
    with pytest.raises(OpcuaRefused, match="not loopback: give --users"):
        check(OpcuaServing("x", host="0.0.0.0"))
    with pytest.raises(OpcuaRefused, match="--cert and --key together"):
        check(OpcuaServing("x", cert="a.der"))
    with pytest.raises(OpcuaRefused, match="needs --trust"):
        check(OpcuaServing("x", cert="a.der", key="a.pem"))
    with pytest.raises(CertError, match="no such file"):
        check(OpcuaServing("x", cert="a.der", key="a.pem", trust=str(tmp_path)))
    config = yaml.safe_load((ROOT / "configs/demo_line.yaml").read_text())
    config["opcua"] = {"host": "10.1.2.3", "users": "users.txt"}
    path = tmp_path / "line.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as found:
        load_config(path)
    assert "opcua.cert" in str(found.value) and "opcua.trust" in str(found.value) and str(path) in str(found.value)
    config["opcua"] = {"users": "users.txt", "anonymous": True}
    path.write_text(yaml.safe_dump(config))
    s = serving(str(path), None, port=0, host=None)
    assert (s.users, s.anonymous, s.host, s.port) == (str(tmp_path / "users.txt"), True, "127.0.0.1", 0)


def test_opcua_certificates_carry_the_application_uri(tmp_path):
    der, pem = generate_opcua(tmp_path, ["cell-pc.local"])
    assert _application_uri(str(der)) == "urn:cell-pc.local:cellctl:opcua" and oct(pem.stat().st_mode)[-3:] == "600"
    crt, _ = generate(tmp_path, ["cell-pc.local"])
    with pytest.raises(CertError, match="no application URI"):
        _application_uri(str(crt))


class Recorder:
    """A commander that answers as a cell's control socket does and keeps what it was sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str | None]] = []

    async def command(self, cell: str, command: str, user: str | None) -> tuple[Sent, str]:
        self.sent.append((cell, command, user))
        if command == "Unhold":
            return Sent.REFUSED, f"{cell}: Unhold is not allowed in state Execute; allowed: Hold, Suspend, Stop, Abort"
        return Sent.QUEUED, f"{cell}: {command} queued (state Execute): applied at its next tick"


def _built(recorder: Recorder) -> tuple[Server, Space]:
    async def build():
        server = Server()
        await server.init()
        space = Space(server, ["press", "pack"], recorder, from_events=True)
        await space.build()
        return server, space
    return asyncio.run(build())


def test_space_methods_queue_refuse_and_check_who_calls():
    recorder = Recorder()
    server, space = _built(recorder)

    async def call(path: list[str], method: str, *args, who: Caller, on: str | None = None):
        obj = await space.nodes["pack"].obj.get_child(path) if path else space.nodes["pack"].obj
        node = await obj.get_child(f"{space.packml}:{method}")
        access._caller.set(who)
        parent = ua.NodeId.from_string(on) if on else obj.nodeid
        return await server.iserver.method_service._call(ua.CallMethodRequest(ObjectId=parent, MethodId=node.nodeid,
                                                                              InputArguments=list(args)))

    async def scenario():
        operator = Caller(role=UserRole.User, name="alice", may_command=True)
        observer = Caller(role=UserRole.User, name="bob")
        execute = [f"{space.packml}:BaseStateMachine", f"{space.packml}:MachineState", f"{space.packml}:ExecuteState"]
        results = {
            "hold": await call(execute, "Hold", who=operator),
            "start": await call(execute, "Start", ua.Variant([], ua.VariantType.ExtensionObject), who=operator),
            "unhold": await call(execute, "Unhold", who=operator),
            "observer": await call(execute, "Hold", who=observer),
            "anonymous": await call(execute, "Hold", who=access.NOBODY),
            "extra": await call(execute, "Hold", ua.Variant(1), who=operator),
            "start_bare": await call(execute, "Start", who=operator),
            "elsewhere": await call(execute, "Hold", who=operator, on="i=85"),
            "speed": await call([], "SetMachSpeed", ua.Variant(2.0, ua.VariantType.Float), who=operator),
            "produce": await call([], "SetUnitMode", ua.Variant(1, ua.VariantType.Int32), who=operator),
            "manual": await call([], "SetUnitMode", ua.Variant(3, ua.VariantType.Int32), who=operator),
            "stop": await call(execute[:2], "Stop", who=operator),
            "abort": await call(execute[:1], "Abort", who=operator),
        }
        return {k: r.StatusCode.name for k, r in results.items()}, results["unhold"]

    names, unhold = asyncio.run(scenario())
    assert names == {"hold": "Good", "start": "Good", "unhold": "BadInvalidState", "observer": "BadUserAccessDenied",
                     "anonymous": "BadUserAccessDenied", "extra": "BadTooManyArguments",
                     "start_bare": "BadArgumentsMissing", "elsewhere": "BadMethodInvalid", "speed": "BadNotSupported",
                     "produce": "Good", "manual": "BadNotSupported", "stop": "Good", "abort": "Good"}
    assert "not allowed in state Execute" in unhold.InputArgumentDiagnosticInfos[0].AdditionalInfo
    assert recorder.sent == [("pack", "Hold", "alice"), ("pack", "Start", "alice"), ("pack", "Unhold", "alice"),
                             ("pack", "Stop", "alice"), ("pack", "Abort", "alice")]


def test_space_writes_the_nested_states_and_admin_tags():
    server, space = _built(Recorder())

    async def scenario():
        space.on_status("pack", _status("Execute", 2, 20.0))
        space.on_events([{"kind": "part_done", "cell": "pack", "part": f"part-{i}"} for i in (1, 2)])
        for dest in ("Execute", "Holding", "Held"):
            space.on_events([{"kind": "packml", "cell": "pack", "dest": dest}])
        space.on_status("pack", _status("Held", 2, 21.0, ("operator", "Hold by the operator (opcua)")))
        await space._write_cell("pack", space.tags["pack"])
        values = space.nodes["pack"].values
        read = {k: (await values[k].read_value()) for k in ("BaseStateMachine/CurrentState", "MachineState/CurrentState",
                                                            "ExecuteState/CurrentState", "ExecuteState/LastTransition",
                                                            "Admin/ProdProcessedCount", "Admin/StopReason",
                                                            "Admin/Alarm", "ExecuteState/CurrentState/Id")}
        return read

    read = asyncio.run(scenario())
    assert [read[f"{m}/CurrentState"].Text for m in ("BaseStateMachine", "MachineState", "ExecuteState")] == [
        "Cleared", "Running", "Held"]
    assert read["ExecuteState/LastTransition"].Text == "HoldingToHeld"
    assert read["ExecuteState/CurrentState/Id"] == ua.NodeId(34, space.packml)  # the NodeSet's Held
    assert (read["Admin/ProdProcessedCount"].Count, read["Admin/ProdProcessedCount"].AccCount) == (2, 2)
    assert read["Admin/StopReason"].Message == "Hold by the operator (opcua)" and read["Admin/StopReason"].Trigger
    assert [a.ID for a in read["Admin/Alarm"]] == [ALARM_IDS["operator"]]
