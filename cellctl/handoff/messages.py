"""The handoff messages as data: what each message type carries, checked before a message reaches
the link's state machine or the event log. A peer inbox is reachable by anyone on its network, so
a message that does not fit is dropped (and answered with a Notification), never acted on and
never a reason for the cell to stop."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_ID = 128  # characters of a part id, part type, session id or cell name
MAX_TEXT = 1024  # characters of a notification text
MAX_RESYNC = 10_000  # part ids in one Resync

Id = Annotated[str, Field(min_length=1, max_length=MAX_ID)]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    session: Id | None = None


class ServiceDescription(_Message):
    type: Literal["ServiceDescription"]
    session: Id
    name: Id
    version: Annotated[str, Field(max_length=MAX_ID)]


class _Bare(_Message):
    type: Literal["MachineReady", "RevokeMachineReady", "RevokeBoardAvailable", "CheckAlive"]


class BoardForecast(_Message):
    type: Literal["BoardForecast"]
    part: Id | None = None
    part_type: Id = "?"


class BoardAvailable(_Message):
    type: Literal["BoardAvailable"]
    part: Id
    part_type: Id = "?"


class _PartOnly(_Message):
    type: Literal["StartTransport", "ResyncTransfer"]
    part: Id
    part_type: Id = "?"


class _Transfer(_Message):
    type: Literal["TransportFinished", "StopTransport"]
    part: Id
    transfer_state: Literal["Complete", "Incomplete", "NotStarted"] = "Complete"
    part_type: Id = "?"


class Notification(_Message):
    type: Literal["Notification"]
    code: Id
    severity: Literal["Fatal", "Error", "Warning", "Info"] = "Info"
    text: Annotated[str, Field(max_length=MAX_TEXT)] = ""


class Resync(_Message):
    type: Literal["Resync"]
    received: list[Id] = Field(max_length=MAX_RESYNC)


class ResyncAck(_Message):
    type: Literal["ResyncAck"]
    part: Id
    found: bool


Message = Annotated[ServiceDescription | _Bare | BoardForecast | BoardAvailable | _PartOnly | _Transfer | Notification | Resync
                    | ResyncAck, Field(discriminator="type")]


class _Envelope(BaseModel):
    message: Message


class MalformedMessage(ValueError):
    pass


def parse(raw: object) -> dict:
    """The message as a plain map with its defaults filled in, or MalformedMessage saying why."""
    if not isinstance(raw, dict):
        raise MalformedMessage(f"a handoff message is a map, not {type(raw).__name__}")
    try:
        return _Envelope.model_validate({"message": raw}).message.model_dump()
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        where = ".".join(str(k) for k in first["loc"][1:]) or "message"
        raise MalformedMessage(f"{where}: {first['msg']}" + (f" (and {len(errors) - 1} more)" if len(errors) > 1
                                                            else "")) from None
