"""What a cell shows on Sparkplug B: its PackML tags (``cellctl.line.tags``, the same mapping as
OPC UA's) as metrics named like OPC 30050's browse paths, plus the part in its custody and its links.

A DBIRTH carries every metric; a DDATA only those whose value changed since the last message.
"""

from __future__ import annotations

from cellctl.line.tags import CellTags, nested
from cellctl.mqtt.sparkplug import DataType, Metric

LINK_ROLES = ("robot", "upstream", "downstream")


def cell_metrics(tags: CellTags) -> dict[str, Metric]:
    """Every metric of one cell, by name."""
    s = tags.status or {}
    base, machine, execute = nested(tags.state)
    stop = tags.stop_reason()
    alarms = [*tags.alarms(), *tags.warnings()]
    found = [
        Metric("PackML/State", DataType.STRING, tags.state),
        Metric("PackML/StateCurrent", DataType.INT32, s.get("state_number")),
        Metric("PackML/BaseStateMachine/CurrentState", DataType.STRING, base),
        Metric("PackML/MachineState/CurrentState", DataType.STRING, machine),
        Metric("PackML/ExecuteState/CurrentState", DataType.STRING, execute),
        Metric("PackML/Status/UnitModeCurrent", DataType.INT32, 1),
        Metric("PackML/Status/CurMachSpeed", DataType.FLOAT, tags.cur_mach_speed),
        Metric("PackML/Status/EquipmentStarved", DataType.BOOLEAN, tags.starved),
        Metric("PackML/Status/EquipmentBlocked", DataType.BOOLEAN, tags.blocked),
        Metric("PackML/Admin/ProdProcessedCount/Count", DataType.INT32, tags.processed),
        Metric("PackML/Admin/ProdProcessedCount/AccCount", DataType.INT32, tags.processed_acc),
        Metric("PackML/Admin/ProdDefectiveCount/Count", DataType.INT32, tags.defective),
        Metric("PackML/Admin/StopReason/ID", DataType.INT32, stop.id if stop else 0),
        Metric("PackML/Admin/StopReason/Message", DataType.STRING, stop.message if stop else ""),
        Metric("PackML/Admin/StopReason/Active", DataType.BOOLEAN, bool(stop and stop.trigger)),
        Metric("Alarms/Active/Count", DataType.INT32, len(alarms)),
        Metric("Alarms/Active/IDs", DataType.STRING, ",".join(str(a.id) for a in alarms)),
        Metric("Alarms/Active/Messages", DataType.STRING, " | ".join(a.message for a in alarms)),
        Metric("Custody/Part", DataType.STRING, tags.part),
        Metric("WorkOrder/Parts", DataType.INT32, s.get("work_order")),
    ]
    links = s.get("links") or {}
    for role in LINK_ROLES:
        link = links.get(role)
        if not isinstance(link, dict):
            continue
        found += [Metric(f"Links/{role}/Peer", DataType.STRING, link.get("peer") or role),
                  Metric(f"Links/{role}/State", DataType.STRING, link.get("state")),
                  Metric(f"Links/{role}/Connected", DataType.BOOLEAN, link.get("connected"))]
    return {m.name: m for m in found}


def changed(before: dict[str, Metric], now: dict[str, Metric]) -> list[Metric]:
    """The metrics of ``now`` whose value is new (or that ``before`` did not have)."""
    return [m for name, m in now.items() if before.get(name) != m]
