"""The OPC UA address space of a line: the official OPC 30050 PackML NodeSet loaded into an
``asyncua`` server, one ``PackMLBaseObjectType`` per cell under Objects, kept equal to the cell's
tags (``cellctl.line.tags``) and with the PackML commands as methods.

asyncua instantiates a type's mandatory children only; the optional ones a SCADA client looks for
are added here by hand: each state machine's ``LastTransition`` and the ``Id`` of its
``CurrentState``, the Admin counts and alarms, and the state machines' command methods (Abort and
Clear on ``BaseStateMachine``; Reset and Stop on ``MachineState``; Start, Hold, Unhold and Reset on
``ExecuteState``). Suspend and Unsuspend are left out: a cell suspends itself when starved or
blocked. ``RemoteCommand`` and ``SetInterlock`` (machine to machine) are removed.

A method never calls into a cell: it hands the command to the ``Commander`` (the cell's control
socket, as ``cellctl cmd``), which queues it for the cell's next tick or refuses it with the PackML
reason. Who may call comes from the session (``cellctl.opcua.access``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asyncua import Node, Server, ua

from cellctl.cell.packml import Command
from cellctl.line.feeds import Commander, Sent
from cellctl.opcua.access import caller
from cellctl.line.tags import NEVER, PRODUCE, Alarm, CellTags, LineTags, nested

log = logging.getLogger("cellctl.opcua")

NODESET = Path(__file__).parent / "nodeset" / "Opc.Ua.PackML.NodeSet2.xml"
PACKML_URI = "http://opcfoundation.org/UA/PackML/"
LINE_URI = "urn:cellctl:line"
PACKML_VERSION = "OPC 30050 1.01 (cellctl)"
TRANSITION_VARIABLE = ua.NodeId(ua.ObjectIds.FiniteTransitionVariableType)
MACHINES = ("BaseStateMachine", "MachineState", "ExecuteState")
# the command methods on each state machine: (browse name, the cell's PackML command)
METHODS: dict[str, tuple[Command, ...]] = {
    "BaseStateMachine": (Command.ABORT, Command.CLEAR),
    "MachineState": (Command.RESET, Command.STOP),
    "ExecuteState": (Command.START, Command.HOLD, Command.UNHOLD, Command.RESET),
}
TYPES = {"BaseStateMachine": 3, "MachineState": 2, "ExecuteState": 1}  # their ObjectTypes' ids in the NodeSet
NOT_HERE = ("RemoteCommand", "SetInterlock")
STATUS_OF = {Sent.QUEUED: ua.StatusCodes.Good, Sent.REFUSED: ua.StatusCodes.BadInvalidState,
             Sent.NO_ANSWER: ua.StatusCodes.BadCommunicationError}
PUBLISH_EVERY_S = 0.05


def refused(code: int, why: str) -> ua.CallMethodResult:
    """A Bad answer to a call, the reason for a person in its diagnostics."""
    log.info(f"opcua: {ua.StatusCode(code).name}: {why}")
    return ua.CallMethodResult(StatusCode=ua.StatusCode(code),
                               InputArgumentDiagnosticInfos=[ua.DiagnosticInfo(AdditionalInfo=why[:500])])


def _values(inputs: tuple) -> tuple:
    """A method's input arguments as values (asyncua hands them over as Variants)."""
    return tuple(v.Value if isinstance(v, ua.Variant) else v for v in inputs)


@dataclass
class CellNodes:
    """One cell's PackML object and the variables this server writes."""

    obj: Node
    values: dict[str, Node] = field(default_factory=dict)  # a path ("Status/MachSpeed") → its variable


class Space(LineTags):
    """The line's cells in one address space; a ``cellctl.line.feeds.Listener``."""

    def __init__(self, server: Server, cells: list[str], commander: Commander, from_events: bool) -> None:
        super().__init__(cells, from_events)
        self.server = server
        self.commander = commander
        self.nodes: dict[str, CellNodes] = {}
        self._written: dict[str, dict[str, object]] = {name: {} for name in cells}  # what each variable holds
        self._seen = {name: -1 for name in cells}

    # -- building --------------------------------------------------------------------------------
    async def build(self) -> None:
        await self.server.import_xml(str(NODESET))
        await self.server.load_data_type_definitions()
        self.packml = await self.server.get_namespace_index(PACKML_URI)
        self.ns = await self.server.register_namespace(LINE_URI)
        self.state_ids = {machine: await self._children_ids(ua.NodeId(type_id, self.packml))
                          for machine, type_id in TYPES.items()}
        for name in self.tags:
            self.nodes[name] = await self._cell(name)

    async def _children_ids(self, type_node: ua.NodeId) -> dict[str, ua.NodeId]:
        """A state machine type's states and transitions by name (what CurrentState/Id points at)."""
        found = {}
        for child in await self.server.get_node(type_node).get_children():
            found[(await child.read_browse_name()).Name] = child.nodeid
        return found

    def _q(self, name: str) -> str:
        return f"{self.packml}:{name}"

    async def _cell(self, name: str) -> CellNodes:
        obj = await self.server.nodes.objects.add_object(ua.NodeId(f"{name}", self.ns),
                                                         ua.QualifiedName(name, self.ns),
                                                         objecttype=ua.NodeId(6, self.packml))
        nodes = CellNodes(obj)
        for gone in NOT_HERE:
            await (await obj.get_child(self._q(gone))).delete()
        await (await obj.get_child(self._q("TagID"))).write_value(name)
        await (await obj.get_child(self._q("PackMLVersion"))).write_value(PACKML_VERSION)
        machine = await obj.get_child(self._q("BaseStateMachine"))
        for level, sm in enumerate(MACHINES):
            if level:
                machine = await machine.get_child(self._q(sm))
            nodes.values[f"{sm}/CurrentState"] = await machine.get_child("0:CurrentState")
            nodes.values[f"{sm}/CurrentState/Id"] = await self._child_or_property(
                nodes.values[f"{sm}/CurrentState"], "Id", ua.NodeId(), ua.VariantType.NodeId, f"{name}.{sm}.CurrentState.Id")
            nodes.values[f"{sm}/LastTransition"] = last = await self._last_transition(machine, f"{name}.{sm}")
            nodes.values[f"{sm}/LastTransition/Id"] = await self._child_or_property(
                last, "Id", ua.NodeId(), ua.VariantType.NodeId, f"{name}.{sm}.LastTransition.Id")
            for command in METHODS[sm]:
                await self._method(machine, name, sm, command)
        status = await obj.get_child(self._q("Status"))
        for var in ("UnitModeCurrent", "MachSpeed", "CurMachSpeed", "EquipmentStarved", "EquipmentBlocked"):
            nodes.values[f"Status/{var}"] = await status.get_child(self._q(var))
        await nodes.values["Status/UnitModeCurrent"].write_value(ua.Variant(PRODUCE, ua.VariantType.Int32))
        admin = await obj.get_child(self._q("Admin"))
        for var, type_name, array in (("ProdProcessedCount", "PackMLCountDataType", False),
                                      ("ProdDefectiveCount", "PackMLCountDataType", False),
                                      ("StopReason", "PackMLAlarmDataType", False),
                                      ("Alarm", "PackMLAlarmDataType", True),
                                      ("Warning", "PackMLAlarmDataType", True),
                                      ("AlarmHistory", "PackMLAlarmDataType", True)):
            nodes.values[f"Admin/{var}"] = await self._admin(admin, name, var, type_name, array)
        for var in ("AlarmExtent", "WarningExtent", "AlarmHistoryExtent", "StopReasonExtent"):
            nodes.values[f"Admin/{var}"] = await admin.add_variable(
                ua.NodeId(f"{name}.Admin.{var}", self.ns), ua.QualifiedName(var, self.packml), 0,
                varianttype=ua.VariantType.Int32)
        await self._mandatory_methods(obj, name)
        return nodes

    async def _last_transition(self, machine: Node, nid: str) -> Node:
        """A FiniteTransitionVariable (the transition's name, its ``Id`` added after)."""
        last = await machine.add_variable(ua.NodeId(f"{nid}.LastTransition", self.ns),
                                          ua.QualifiedName("LastTransition", 0), ua.LocalizedText(""),
                                          varianttype=ua.VariantType.LocalizedText,
                                          datatype=ua.NodeId(ua.ObjectIds.LocalizedText))
        await last.delete_reference(ua.NodeId(ua.ObjectIds.BaseDataVariableType), ua.ObjectIds.HasTypeDefinition)
        await last.add_reference(TRANSITION_VARIABLE, ua.ObjectIds.HasTypeDefinition)
        return last

    async def _child_or_property(self, parent: Node, prop: str, value: object, vt: ua.VariantType, nid: str) -> Node:
        try:
            return await parent.get_child(f"0:{prop}")
        except ua.UaError:
            return await parent.add_property(ua.NodeId(nid, self.ns), ua.QualifiedName(prop, 0), value, varianttype=vt)

    async def _admin(self, admin: Node, cell: str, var: str, type_name: str, array: bool) -> Node:
        cls = getattr(ua, type_name)
        node = await admin.add_variable(ua.NodeId(f"{cell}.Admin.{var}", self.ns), ua.QualifiedName(var, self.packml),
                                        ua.Variant([] if array else cls(), ua.VariantType.ExtensionObject),
                                        datatype=ua.NodeId(cls.data_type.Identifier, self.packml))
        if array:
            await node.write_value_rank(ua.ValueRank.OneDimension)
        return node

    async def _method(self, machine: Node, cell: str, sm: str, command: Command) -> None:
        args = [ua.Argument(Name="Parameter", DataType=ua.NodeId(16, self.packml), ValueRank=ua.ValueRank.OneDimension,
                            ArrayDimensions=[0], Description=ua.LocalizedText("not used: a cellctl cell takes no "
                                                                              "start parameters (send an empty array)"))
                ] if command == Command.START else []

        async def call(parent: ua.NodeId, *inputs: ua.Variant) -> Any:
            if parent != machine.nodeid:
                return refused(ua.StatusCodes.BadMethodInvalid, f"{command} is a method of {cell}'s {sm}: call it there")
            return await self._command(cell, command, inputs, len(args))

        await machine.add_method(ua.NodeId(f"{cell}.{sm}.{command}", self.ns), ua.QualifiedName(str(command), self.packml),
                                 call, args, [])

    async def _command(self, cell: str, command: Command, inputs: tuple, expected: int) -> Any:
        inputs = _values(inputs)
        who = caller()
        if not who.may_command:
            return refused(ua.StatusCodes.BadUserAccessDenied,
                           f"{who.describe()} may not command {cell}: log in as an operator (`cellctl users add`)")
        if len(inputs) != expected:
            return refused(ua.StatusCodes.BadArgumentsMissing if len(inputs) < expected
                           else ua.StatusCodes.BadTooManyArguments, f"{command} takes {expected} arguments")
        if inputs and inputs[0] not in (None, []):
            return refused(ua.StatusCodes.BadInvalidArgument,
                           f"{command}: a cellctl cell takes no start parameters (send an empty array)")
        sent, why = await self.commander.command(cell, str(command), who.name)
        if sent is Sent.QUEUED:
            log.info(f"opcua: {who.describe()}: {why}")
            return []
        return refused(STATUS_OF[sent], why)

    async def _mandatory_methods(self, obj: Node, cell: str) -> None:
        """SetUnitMode (Produce only), SetMachSpeed, SetParameter, SetProduct: a cellctl cell has no
        speed setpoint, parameters or products to switch, so those answer BadNotSupported."""
        async def unit_mode(parent: ua.NodeId, *inputs: ua.Variant) -> Any:
            if parent != obj.nodeid:
                return refused(ua.StatusCodes.BadMethodInvalid, f"SetUnitMode is a method of {cell}'s object")
            inputs = _values(inputs)
            who = caller()
            if not who.may_command:
                return refused(ua.StatusCodes.BadUserAccessDenied, f"{who.describe()} may not set {cell}'s unit mode")
            if len(inputs) != 1 or not isinstance(inputs[0], int) or isinstance(inputs[0], bool):
                return refused(ua.StatusCodes.BadInvalidArgument, "SetUnitMode takes one Int32 (1: Produce)")
            if inputs[0] != PRODUCE:
                return refused(ua.StatusCodes.BadNotSupported, f"{cell} runs in Produce mode (1) only")
            return []

        def not_supported(what: str):
            async def call(parent: ua.NodeId, *inputs: ua.Variant) -> Any:
                return refused(ua.StatusCodes.BadNotSupported, f"{cell}: {what}")
            return call

        calls = {"SetUnitMode": unit_mode,
                 "SetMachSpeed": not_supported("no speed setpoint: the robot's motions set the pace"),
                 "SetParameter": not_supported("no PackML parameters: the line config sets them"),
                 "SetProduct": not_supported("no products to switch: the recipe is in the line config")}
        for method, call in calls.items():
            node = await obj.get_child(self._q(method))
            self.server.link_method(node, call)

    # -- publishing ------------------------------------------------------------------------------
    async def publish(self) -> None:
        """Write what changed, for ever: a state change's transitions one by one, in order."""
        while True:
            await self.wake.wait()
            self.wake.clear()
            for name, tags in self.tags.items():
                if tags.changed != self._seen[name]:
                    self._seen[name] = tags.changed
                    await self._write_cell(name, tags)
            await asyncio.sleep(PUBLISH_EVERY_S)

    async def _write_cell(self, name: str, tags: CellTags) -> None:
        moves = list(tags.transitions)
        tags.transitions.clear()
        for before, after in moves:
            await self._write_state(name, before, after)
        values: dict[str, ua.Variant] = {
            "Status/MachSpeed": ua.Variant(tags.mach_speed, ua.VariantType.Float),
            "Status/CurMachSpeed": ua.Variant(tags.cur_mach_speed, ua.VariantType.Float),
            "Status/EquipmentStarved": ua.Variant(tags.starved, ua.VariantType.Boolean),
            "Status/EquipmentBlocked": ua.Variant(tags.blocked, ua.VariantType.Boolean),
            "Admin/ProdProcessedCount": self._count(1, "processed", tags.processed, tags.processed_acc),
            "Admin/ProdDefectiveCount": self._count(2, "defective", tags.defective, tags.defective),
            "Admin/StopReason": self._alarm(tags.stop_reason()),
        }
        for var, found in (("Alarm", tags.alarms()), ("Warning", tags.warnings()), ("AlarmHistory", tags.history())):
            values[f"Admin/{var}"] = ua.Variant([self._alarm(a).Value for a in found], ua.VariantType.ExtensionObject)
            values[f"Admin/{var}Extent"] = ua.Variant(len(found), ua.VariantType.Int32)
        values["Admin/StopReasonExtent"] = ua.Variant(1, ua.VariantType.Int32)
        for path, value in values.items():
            await self._write(name, path, value)

    async def _write_state(self, name: str, before: str | None, after: str) -> None:
        old, new = nested(before), nested(after)
        for sm, was, now in zip(MACHINES, old, new):
            if was == now and before is not None:
                continue
            ids = self.state_ids[sm]
            await self._write(name, f"{sm}/CurrentState", ua.Variant(ua.LocalizedText(now or ""), ua.VariantType.LocalizedText))
            await self._write(name, f"{sm}/CurrentState/Id", ua.Variant(ids.get(now or "", ua.NodeId()), ua.VariantType.NodeId))
            if before is not None and was and now and was != now:
                transition = f"{was}To{now}"
                await self._write(name, f"{sm}/LastTransition",
                                  ua.Variant(ua.LocalizedText(transition), ua.VariantType.LocalizedText))
                await self._write(name, f"{sm}/LastTransition/Id",
                                  ua.Variant(ids.get(transition, ua.NodeId()), ua.VariantType.NodeId))

    async def _write(self, cell: str, path: str, value: ua.Variant) -> None:
        if self._written[cell].get(path) == value.Value:
            return
        self._written[cell][path] = value.Value
        await self.server.write_attribute_value(self.nodes[cell].values[path].nodeid, ua.DataValue(value))

    def _count(self, number: int, name: str, count: int, acc: int) -> ua.Variant:
        unit = ua.EUInformation(NamespaceUri="http://www.opcfoundation.org/UA/units/un/cefact", UnitId=4404786,
                                DisplayName=ua.LocalizedText("parts"), Description=ua.LocalizedText("parts"))
        return ua.Variant(ua.PackMLCountDataType(ID=number, Name=name, Unit=unit, Count=count, AccCount=acc),
                          ua.VariantType.ExtensionObject)

    def _alarm(self, a: Alarm | None) -> ua.Variant:
        value = ua.PackMLAlarmDataType(DateTime=NEVER, AckDateTime=NEVER) if a is None else ua.PackMLAlarmDataType(
            ID=a.id, Value=a.value, Message=a.message, Category=a.category, DateTime=a.at, AckDateTime=a.acked,
            Trigger=a.trigger)
        return ua.Variant(value, ua.VariantType.ExtensionObject)
