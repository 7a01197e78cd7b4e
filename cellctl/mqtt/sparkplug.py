"""Sparkplug B 3.0 on the wire: the payload (Eclipse Tahu's ``org.eclipse.tahu.protobuf.Payload``),
the topics, and the two sequence numbers.

The payload is protobuf. Its schema is declared here as a descriptor — the fields cellctl writes and
reads, with Tahu's names and numbers, so any Sparkplug decoder reads it — and encoded by the
``protobuf`` library: no generated code to keep in step with a protobuf release, no protoc at build
time. Templates, data sets and property sets are not declared: cellctl sends plain metrics, and a
command carrying them is read for its plain metrics only (protobuf skips unknown fields).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import IntEnum

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

NAMESPACE = "spBv1.0"
PACKAGE = "org.eclipse.tahu.protobuf"
MAX_SEQ = 256  # seq and bdSeq wrap at 255


class DataType(IntEnum):
    """Sparkplug B metric data types (the ones cellctl uses)."""

    INT32 = 3
    INT64 = 4
    UINT64 = 8
    FLOAT = 9
    DOUBLE = 10
    BOOLEAN = 11
    STRING = 12


VALUE_FIELD = {DataType.INT32: "int_value", DataType.INT64: "long_value", DataType.UINT64: "long_value",
               DataType.FLOAT: "float_value", DataType.DOUBLE: "double_value", DataType.BOOLEAN: "boolean_value",
               DataType.STRING: "string_value"}


def _schema() -> tuple[type, type]:
    f = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="cellctl_sparkplug_b.proto", package=PACKAGE, syntax="proto2")
    payload = file.message_type.add(name="Payload")
    metric = payload.nested_type.add(name="Metric")
    metric.oneof_decl.add(name="value")
    optional = f.LABEL_OPTIONAL
    for name, number, kind in (("name", 1, f.TYPE_STRING), ("alias", 2, f.TYPE_UINT64), ("timestamp", 3, f.TYPE_UINT64),
                               ("datatype", 4, f.TYPE_UINT32), ("is_historical", 5, f.TYPE_BOOL),
                               ("is_transient", 6, f.TYPE_BOOL), ("is_null", 7, f.TYPE_BOOL)):
        metric.field.add(name=name, number=number, type=kind, label=optional)
    for name, number, kind in (("int_value", 10, f.TYPE_UINT32), ("long_value", 11, f.TYPE_UINT64),
                               ("float_value", 12, f.TYPE_FLOAT), ("double_value", 13, f.TYPE_DOUBLE),
                               ("boolean_value", 14, f.TYPE_BOOL), ("string_value", 15, f.TYPE_STRING),
                               ("bytes_value", 16, f.TYPE_BYTES)):
        metric.field.add(name=name, number=number, type=kind, label=optional, oneof_index=0)
    payload.field.add(name="timestamp", number=1, type=f.TYPE_UINT64, label=optional)
    payload.field.add(name="metrics", number=2, type=f.TYPE_MESSAGE, label=f.LABEL_REPEATED,
                      type_name=f".{PACKAGE}.Payload.Metric")
    payload.field.add(name="seq", number=3, type=f.TYPE_UINT64, label=optional)
    payload.field.add(name="uuid", number=4, type=f.TYPE_STRING, label=optional)
    payload.field.add(name="body", number=5, type=f.TYPE_BYTES, label=optional)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    found = pool.FindMessageTypeByName(f"{PACKAGE}.Payload")
    return message_factory.GetMessageClass(found), message_factory.GetMessageClass(found.nested_types_by_name["Metric"])


Payload, MetricMessage = _schema()


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Metric:
    """One metric; ``value`` None is sent as ``is_null`` (a part no longer in custody, say)."""

    name: str
    datatype: DataType
    value: object = None


def encode(metrics: list[Metric], seq: int | None, timestamp: int | None = None) -> bytes:
    """A payload; ``seq`` None for an NDEATH (it carries none)."""
    stamp = timestamp if timestamp is not None else now_ms()
    p = Payload(timestamp=stamp)
    if seq is not None:
        p.seq = seq
    for m in metrics:
        out = p.metrics.add(name=m.name, datatype=int(m.datatype), timestamp=stamp)
        if m.value is None:
            out.is_null = True
        elif m.datatype == DataType.INT32:
            out.int_value = int(m.value) & 0xFFFFFFFF  # Sparkplug: a signed Int32 in the unsigned field
        elif m.datatype == DataType.INT64:
            out.long_value = int(m.value) & 0xFFFFFFFFFFFFFFFF
        else:
            setattr(out, VALUE_FIELD[m.datatype], m.value)
    return p.SerializeToString()


class PayloadError(ValueError):
    """Not a Sparkplug B payload."""


def decode(data: bytes) -> list[tuple[str, object]]:
    """The plain metrics of a payload (a command's): (name, value) in order; PayloadError if it is
    not protobuf of this shape."""
    p = Payload()
    try:
        p.ParseFromString(data)
    except Exception as exc:  # protobuf's DecodeError, and worse for some garbage
        raise PayloadError(f"not a Sparkplug B payload ({exc})") from None
    found = []
    for m in p.metrics:
        kind = m.WhichOneof("value")
        found.append((m.name, None if m.is_null or kind is None else getattr(m, kind)))
    return found


@dataclass(frozen=True)
class Topics:
    """``spBv1.0/GROUP/TYPE/EDGE[/DEVICE]`` for one edge node."""

    group: str
    edge: str

    def node(self, kind: str) -> str:
        return f"{NAMESPACE}/{self.group}/{kind}/{self.edge}"

    def device(self, kind: str, device: str) -> str:
        return f"{NAMESPACE}/{self.group}/{kind}/{self.edge}/{device}"


class Sequence:
    """The ``seq`` of every message an edge node publishes after its NBIRTH (0 for the NBIRTH), 0-255."""

    def __init__(self) -> None:
        self._next = 0

    def restart(self) -> int:
        self._next = 1
        return 0

    def take(self) -> int:
        seq, self._next = self._next, (self._next + 1) % MAX_SEQ
        return seq
