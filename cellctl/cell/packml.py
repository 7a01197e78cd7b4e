"""The PackML cell state model (ISA-TR88.00.02; OPC UA: OPC 30050), declared as a table.

The rows are exactly those of ``docs/reference/packml.json`` (a copy of the shared reference,
tests check the two agree), including the optional Hold rows of ISA-TR88.00.02-2015. ``SC`` is
State Complete: an acting state (Resetting, Starting, ...) ends by itself when its work is done.
Any (state, command) pair not listed is refused and leaves the state unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from transitions import Machine, MachineError


class State(StrEnum):
    """The 17 PackML states, valued by their names (what events, status replies and the reference
    table spell)."""

    CLEARING = "Clearing"
    STOPPED = "Stopped"
    STARTING = "Starting"
    IDLE = "Idle"
    SUSPENDED = "Suspended"
    EXECUTE = "Execute"
    STOPPING = "Stopping"
    ABORTING = "Aborting"
    ABORTED = "Aborted"
    HOLDING = "Holding"
    HELD = "Held"
    UNHOLDING = "Unholding"
    SUSPENDING = "Suspending"
    UNSUSPENDING = "Unsuspending"
    RESETTING = "Resetting"
    COMPLETING = "Completing"
    COMPLETE = "Complete"


class Command(StrEnum):
    """The PackML commands an operator, the launcher or the cell itself gives."""

    RESET = "Reset"
    START = "Start"
    STOP = "Stop"
    HOLD = "Hold"
    UNHOLD = "Unhold"
    SUSPEND = "Suspend"
    UNSUSPEND = "Unsuspend"
    ABORT = "Abort"
    CLEAR = "Clear"


COMMANDS = tuple(c.value for c in Command)
STATE_COMPLETE = "SC"

STATE_NUMBERS = {state.value: number for number, state in enumerate(State, start=1)}  # PackTags StateCurrent
ACTING = (State.CLEARING, State.RESETTING, State.STARTING, State.COMPLETING, State.HOLDING, State.UNHOLDING,
          State.SUSPENDING, State.UNSUSPENDING, State.STOPPING, State.ABORTING)

_ABORTABLE = ("Stopped", "Resetting", "Idle", "Starting", "Execute", "Completing", "Complete", "Stopping",
              "Clearing", "Suspending", "Suspended", "Unsuspending", "Holding", "Held", "Unholding")
_STOPPABLE = ("Resetting", "Idle", "Starting", "Execute", "Completing", "Complete", "Suspending", "Suspended",
              "Unsuspending", "Holding", "Held", "Unholding")

TRANSITIONS: list[tuple[str, str, str]] = [  # (from, event, to)
    ("Aborted", "Clear", "Clearing"), ("Clearing", "SC", "Stopped"),
    ("Stopped", "Reset", "Resetting"), ("Resetting", "SC", "Idle"),
    ("Idle", "Start", "Starting"), ("Starting", "SC", "Execute"),
    ("Execute", "SC", "Completing"), ("Completing", "SC", "Complete"),
    ("Complete", "Reset", "Resetting"),
    ("Execute", "Hold", "Holding"), ("Holding", "SC", "Held"),
    ("Held", "Unhold", "Unholding"), ("Unholding", "SC", "Execute"),
    ("Execute", "Suspend", "Suspending"), ("Suspending", "SC", "Suspended"),
    ("Suspended", "Unsuspend", "Unsuspending"), ("Unsuspending", "SC", "Execute"),
    ("Stopping", "SC", "Stopped"), ("Aborting", "SC", "Aborted"),
    *[(s, "Stop", "Stopping") for s in _STOPPABLE],
    *[(s, "Abort", "Aborting") for s in _ABORTABLE],
    # optional Hold rows (ISA-TR88.00.02-2015): a starved or waiting cell can be held
    *[(s, "Hold", "Holding") for s in ("Starting", "Suspending", "Suspended", "Unsuspending", "Unholding")],
]


class CommandRefused(ValueError):
    pass


class PackML:
    """The state machine alone; the cell decides what each state does. ``on_change(source, dest,
    event)`` is called after every transition."""

    def __init__(self, on_change: Callable[[str, str, str], None] | None = None) -> None:
        self._on_change = on_change
        self.machine = Machine(model=self, states=list(STATE_NUMBERS), initial="Stopped", auto_transitions=False,
                               transitions=[{"trigger": e, "source": a, "dest": b} for a, e, b in TRANSITIONS],
                               after_state_change="_changed", send_event=True)

    @property
    def state_number(self) -> int:
        return STATE_NUMBERS[self.state]

    @property
    def acting(self) -> bool:
        return self.state in ACTING

    def command(self, command: str) -> None:
        """Apply a PackML command, or raise CommandRefused naming the state and the legal commands."""
        if command not in COMMANDS:
            raise CommandRefused(f"unknown command {command!r}; commands: {', '.join(COMMANDS)}")
        self._fire(command)

    def check(self, command: str) -> None:
        """CommandRefused (with the PackML reason) unless ``command`` is allowed in this state."""
        if command not in COMMANDS:
            raise CommandRefused(f"unknown command {command!r}; commands: {', '.join(COMMANDS)}")
        if command not in self.allowed():
            raise CommandRefused(f"{command} is not allowed in state {self.state}; allowed: "
                                 f"{', '.join(self.allowed()) or 'none'}")

    def complete(self) -> None:
        """State Complete: an acting state (or Execute) has finished its work."""
        self._fire(STATE_COMPLETE)

    def allowed(self) -> list[str]:
        return [e for a, e, _ in TRANSITIONS if a == self.state and e != STATE_COMPLETE]

    def _fire(self, event: str) -> None:
        try:
            self.trigger(event)
        except MachineError:
            raise CommandRefused(f"{event} is not allowed in state {self.state}; allowed: "
                                 f"{', '.join(self.allowed()) or 'none'}") from None

    def _changed(self, event) -> None:
        if self._on_change is not None:
            self._on_change(event.transition.source, event.transition.dest, event.event.name)
