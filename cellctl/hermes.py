"""The handoff protocol's state machine, modelled on IPC-HERMES-9852's horizontal channel, as a
table: the board sender's side exactly as ``docs/reference/hermes.json`` (from hermes-org/lib_cpp
DownstreamStateMachine.cpp); the receiver's side mirrors it with send and receive swapped.

Rules (from the reference): a message received in a state with no row is a protocol error —
send Notification(ProtocolError, Fatal) and disconnect; an illegal local send is a software error —
send Notification(SoftwareError, Fatal) and disconnect; CheckAlive and Notification are accepted
in every connected state and change nothing; BoardForecast may be sent in NotAvailableNotReady and
MachineReady and changes nothing; StopTransport must carry the board id of StartTransport.
"""

from __future__ import annotations

from dataclasses import dataclass, field

STATES = ("NotConnected", "SocketConnected", "ServiceDescriptionDownstream", "NotAvailableNotReady",
          "BoardAvailable", "MachineReady", "AvailableAndReady", "Transporting", "TransportStopped",
          "TransportFinished", "Disconnected")

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


def _mirror(event: str) -> str:
    verb, _, message = event.partition(" ")
    return {"send": "recv", "recv": "send"}.get(verb, verb) + (f" {message}" if message else "")


RECEIVER: list[tuple[str, str, str]] = [(a, _mirror(e), b) for a, e, b in SENDER]

ALWAYS_ACCEPTED = ("CheckAlive", "Notification")
FORECAST_STATES = ("NotAvailableNotReady", "MachineReady")
CONNECTED = tuple(s for s in STATES if s not in ("NotConnected", "Disconnected"))


class ProtocolError(Exception):
    """A received message the table does not allow (or a board id mismatch)."""


class SoftwareError(Exception):
    """This side tried to send a message its state does not allow."""


@dataclass
class HermesMachine:
    role: str  # "sender" | "receiver"
    state: str = "NotConnected"
    board: str | None = None  # the board id of StartTransport
    history: list[tuple[str, str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        rows = SENDER if self.role == "sender" else RECEIVER
        self._table = {(a, e): b for a, e, b in rows}

    def _move(self, event: str) -> None:
        dest = self._table[(self.state, event)]
        self.history.append((self.state, event, dest))
        self.state = dest

    def connected(self) -> None:
        if (self.state, "connected") in self._table:
            self._move("connected")

    def disconnect(self) -> None:
        self.state, self.board = "Disconnected", None

    def reconnect(self) -> None:
        """Disconnected → NotConnected when a new connection is attempted."""
        self.state, self.board = "NotConnected", None

    def can(self, direction: str, message: str) -> bool:
        if message in ALWAYS_ACCEPTED:
            return self.state in CONNECTED
        if message == "BoardForecast":
            return direction == "send" and self.state in FORECAST_STATES
        return (self.state, f"{direction} {message}") in self._table

    def send(self, message: str, board: str | None = None) -> None:
        if not self.can("send", message):
            raise SoftwareError(f"{self.role} may not send {message} in state {self.state}")
        self._track(message, board)
        if message not in ALWAYS_ACCEPTED and message != "BoardForecast":
            self._move(f"send {message}")

    def receive(self, message: str, board: str | None = None) -> None:
        if not self.can("recv", message):
            raise ProtocolError(f"{self.role} received {message} in state {self.state}")
        self._track(message, board)
        if message not in ALWAYS_ACCEPTED:
            self._move(f"recv {message}")

    def _track(self, message: str, board: str | None) -> None:
        if message == "StartTransport":
            self.board = board
        elif message == "StopTransport" and board != self.board:
            raise ProtocolError(f"StopTransport for board {board!r}, but StartTransport was for {self.board!r}")
