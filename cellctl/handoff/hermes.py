"""The handoff protocol's state machine, modelled on IPC-HERMES-9852's horizontal channel, as
tables exactly as ``docs/reference/hermes.json``: the board sender's side from hermes-org/lib_cpp
DownstreamStateMachine.cpp (``transitions``), the receiver's from UpstreamStateMachine.cpp
(``receiver_transitions``).

Rules (from the reference): a message received in a state with no row is a protocol error —
send Notification(ProtocolError, Fatal) and disconnect; an illegal local send is a software error —
send Notification(SoftwareError, Fatal) and disconnect; CheckAlive and Notification are accepted
in every connected state and change nothing. BoardForecast is sent only by the sender, in
NotAvailableNotReady and MachineReady, and changes nothing; the receiver accepts it there. The
receiver ignores a BoardAvailable, RevokeBoardAvailable or BoardForecast received in Transporting
or TransportStopped (it crossed its StartTransport on the wire). StopTransport (at the sender) and
TransportFinished (at the receiver) must carry the board id of StartTransport.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class HermesState(StrEnum):
    """A handoff link's state, valued by the names hermes-org's lib_cpp and the reference use."""

    NOT_CONNECTED = "NotConnected"
    SOCKET_CONNECTED = "SocketConnected"
    SERVICE_DESCRIPTION_DOWNSTREAM = "ServiceDescriptionDownstream"
    NOT_AVAILABLE_NOT_READY = "NotAvailableNotReady"
    BOARD_AVAILABLE = "BoardAvailable"
    MACHINE_READY = "MachineReady"
    AVAILABLE_AND_READY = "AvailableAndReady"
    TRANSPORTING = "Transporting"
    TRANSPORT_STOPPED = "TransportStopped"
    TRANSPORT_FINISHED = "TransportFinished"
    DISCONNECTED = "Disconnected"


STATES = tuple(s.value for s in HermesState)

MESSAGES = ("ServiceDescription", "BoardAvailable", "RevokeBoardAvailable", "MachineReady", "RevokeMachineReady",
            "StartTransport", "TransportFinished", "StopTransport", "CheckAlive", "Notification", "BoardForecast")

SENDER: list[tuple[str, str, str]] = [  # (from, event, to): the board sender's side
    ("NotConnected", "connected", "SocketConnected"),
    ("SocketConnected", "recv ServiceDescription", "ServiceDescriptionDownstream"),
    ("ServiceDescriptionDownstream", "send ServiceDescription", "NotAvailableNotReady"),
    ("NotAvailableNotReady", "send BoardAvailable", "BoardAvailable"),
    ("MachineReady", "send BoardAvailable", "AvailableAndReady"),
    ("BoardAvailable", "send RevokeBoardAvailable", "NotAvailableNotReady"),
    ("AvailableAndReady", "send RevokeBoardAvailable", "MachineReady"),
    ("NotAvailableNotReady", "recv MachineReady", "MachineReady"),
    ("BoardAvailable", "recv MachineReady", "AvailableAndReady"),
    ("MachineReady", "recv RevokeMachineReady", "NotAvailableNotReady"),
    ("AvailableAndReady", "recv RevokeMachineReady", "BoardAvailable"),
    ("AvailableAndReady", "recv StartTransport", "Transporting"),
    ("MachineReady", "recv StartTransport", "Transporting"),
    ("Transporting", "send TransportFinished", "TransportFinished"),
    ("Transporting", "recv StopTransport", "TransportStopped"),
    ("TransportFinished", "recv StopTransport", "NotAvailableNotReady"),
    ("TransportStopped", "send TransportFinished", "NotAvailableNotReady"),
]


RECEIVER: list[tuple[str, str, str]] = [  # (from, event, to): the board receiver's side
    ("NotConnected", "connected", "SocketConnected"),
    ("SocketConnected", "send ServiceDescription", "ServiceDescriptionDownstream"),
    ("ServiceDescriptionDownstream", "recv ServiceDescription", "NotAvailableNotReady"),
    ("NotAvailableNotReady", "recv BoardAvailable", "BoardAvailable"),
    ("MachineReady", "recv BoardAvailable", "AvailableAndReady"),
    ("BoardAvailable", "recv RevokeBoardAvailable", "NotAvailableNotReady"),
    ("AvailableAndReady", "recv RevokeBoardAvailable", "MachineReady"),
    ("NotAvailableNotReady", "send MachineReady", "MachineReady"),
    ("BoardAvailable", "send MachineReady", "AvailableAndReady"),
    ("MachineReady", "send RevokeMachineReady", "NotAvailableNotReady"),
    ("AvailableAndReady", "send RevokeMachineReady", "BoardAvailable"),
    ("AvailableAndReady", "send StartTransport", "Transporting"),
    ("MachineReady", "send StartTransport", "Transporting"),
    ("Transporting", "send StopTransport", "TransportStopped"),
    ("TransportFinished", "send StopTransport", "NotAvailableNotReady"),
    ("Transporting", "recv TransportFinished", "TransportFinished"),
    ("TransportStopped", "recv TransportFinished", "NotAvailableNotReady"),
]

ALWAYS_ACCEPTED = ("CheckAlive", "Notification")
FORECAST_STATES = ("NotAvailableNotReady", "MachineReady")  # BoardForecast: sent / accepted, no change
# The receiver ignores what crossed its StartTransport on the wire (UpstreamStateMachine.cpp).
CROSSING = {"BoardAvailable": ("Transporting", "TransportStopped"),
            "RevokeBoardAvailable": ("Transporting", "TransportStopped"),
            "BoardForecast": ("Transporting", "TransportStopped")}
CONNECTED = tuple(s for s in STATES if s not in ("NotConnected", "Disconnected"))


class ProtocolError(Exception):
    """A received message the table does not allow (or a board id mismatch)."""


class SoftwareError(Exception):
    """This side tried to send a message its state does not allow."""


@dataclass
class HermesMachine:
    role: str  # "sender" | "receiver"
    state: HermesState = HermesState.NOT_CONNECTED
    board: str | None = None  # the board id of StartTransport
    history: list[tuple[str, str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        rows = SENDER if self.role == "sender" else RECEIVER
        self._table = {(a, e): b for a, e, b in rows}

    def _move(self, event: str) -> None:
        dest = self._table[(self.state, event)]
        self.history.append((self.state, event, dest))
        self.state = HermesState(dest)

    def connected(self) -> None:
        if (self.state, "connected") in self._table:
            self._move("connected")

    def disconnect(self) -> None:
        self.state, self.board = HermesState.DISCONNECTED, None

    def reconnect(self) -> None:
        """Disconnected → NotConnected when a new connection is attempted."""
        self.state, self.board = HermesState.NOT_CONNECTED, None

    def can(self, direction: str, message: str) -> bool:
        if message in ALWAYS_ACCEPTED:
            return self.state in CONNECTED
        if message == "BoardForecast":  # only the sender sends it; only the receiver receives it
            return (direction == "send") == (self.role == "sender") and self.state in FORECAST_STATES
        return (self.state, f"{direction} {message}") in self._table

    def ignores(self, message: str) -> bool:
        """A received message the receiver drops without a state change or an error."""
        return self.role == "receiver" and self.state in CROSSING.get(message, ())

    def send(self, message: str, board: str | None = None) -> None:
        if not self.can("send", message):
            raise SoftwareError(f"{self.role} may not send {message} in state {self.state}")
        if message == "StartTransport":
            self.board = board
        if message not in ALWAYS_ACCEPTED and message != "BoardForecast":
            self._move(f"send {message}")

    def receive(self, message: str, board: str | None = None) -> bool:
        """Apply a received message; False when it is ignored (it crossed ours on the wire)."""
        if self.ignores(message):
            return False
        if not self.can("recv", message):
            raise ProtocolError(f"{self.role} received {message} in state {self.state}")
        self._check_board(message, board)
        if message not in ALWAYS_ACCEPTED and message != "BoardForecast":
            self._move(f"recv {message}")
        return True

    def _check_board(self, message: str, board: str | None) -> None:
        """StartTransport fixes the board; a received StopTransport (at the sender) or
        TransportFinished (at the receiver) must carry the same one."""
        if message == "StartTransport":
            self.board = board
        elif message in ("StopTransport", "TransportFinished") and board != self.board:
            raise ProtocolError(f"{message} for board {board!r}, but StartTransport was for {self.board!r}")
