"""One error hierarchy for every driver, so skills and cells handle faults the same way
whatever the backend.

    DriverError                  anything a driver refuses or cannot do
    ├── ConnectionLost           the backend stopped answering (dead server, dropped bridge)
    ├── Timeout                  an operation took longer than its bound (not a lost link)
    ├── LimitViolation           a command breaks joint / velocity / acceleration / workspace
    │                            limits; raised *before* anything is sent
    ├── Unreachable              no joint solution reaches the pose (FK residual over tolerance)
    └── Unsupported              the backend lacks this capability (e.g. IO not configured)

A ``code`` on every error mirrors the twin protocol's error codes, so a reply from the twin
maps onto exactly one class (see ``from_code``); a code with no class of its own (``busy``,
``unknown_participant``, ...) stays on a plain DriverError's ``code``, for code to decide on —
never inside the message.
"""

from __future__ import annotations


class DriverError(Exception):
    """Base of every driver error."""

    code = "driver_error"

    def __init__(self, message: str = "", code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class ConnectionLost(DriverError):
    code = "connection_lost"


class Timeout(DriverError):
    code = "timeout"


class LimitViolation(DriverError):
    code = "limit_violation"


class Unreachable(DriverError):
    code = "unreachable"


class Unsupported(DriverError):
    code = "unsupported"


_BY_CODE = {cls.code: cls for cls in (ConnectionLost, Timeout, LimitViolation, Unreachable, Unsupported)}


def from_code(code: str, message: str) -> DriverError:
    """Map a wire error code onto the hierarchy; other codes become a plain DriverError that
    carries the code, so nothing is lost."""
    cls = _BY_CODE.get(code)
    if cls is None:
        return DriverError(message, code=code)
    return cls(message)
