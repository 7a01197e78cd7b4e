"""Who an OPC UA session is and what it may do, with the rules of the rest of the project.

On loopback with no users file, a session is anonymous and may command, as ``cellctl cmd`` may on
loopback: a local HMI works out of the box. With a users file (``cellctl users add``, the same file
as the operator's page), a session logs in with a user name and password: an operator calls the
PackML methods, an observer browses, reads and subscribes only; an anonymous session, where allowed,
is an observer. Nobody adds or deletes nodes or references.

asyncua hands a method's callback no session, so the permission check — which runs for every
request, in the task that then serves it — puts the session's user in a context variable that the
method reads (``caller``).
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from dataclasses import dataclass

from asyncua import ua
from asyncua.crypto.permission_rules import ADMIN_TYPES, USER_TYPES, User, UserRole

from cellctl.users import Users

log = logging.getLogger("cellctl.opcua")

ALLOWED = frozenset(ua.NodeId(t) for t in USER_TYPES)
NEVER = frozenset(ua.NodeId(t) for t in ADMIN_TYPES)


@dataclass
class Caller(User):
    """A session's user; ``may_command``: an operator (or anonymous on an open loopback server)."""

    may_command: bool = False

    def describe(self) -> str:
        if self.name:
            return f"user {self.name}" + ("" if self.may_command else " (an observer)")
        return "an anonymous session" + ("" if self.may_command else " (read only)")


NOBODY = Caller(role=UserRole.Anonymous)
_caller: ContextVar[Caller] = ContextVar("opcua_caller", default=NOBODY)


def caller() -> Caller:
    """The user of the session whose request is being served."""
    return _caller.get()


@dataclass(frozen=True)
class Sessions:
    """asyncua's user manager and permission ruleset in one: ``users`` (None: nobody logs in) and
    whether anonymous sessions are let in and may command."""

    users: Users | None
    anonymous: bool  # anonymous sessions are let in
    anonymous_commands: bool  # ... and may command (loopback, no users file)

    # asyncua.server.user_managers.UserManager
    def get_user(self, iserver: object, username: str | None = None, password: str | None = None,
                 certificate: object = None) -> Caller | None:
        if username is None:
            if not self.anonymous:
                return None
            return Caller(role=UserRole.Anonymous, may_command=self.anonymous_commands)
        found = self.users.check(username, password or "") if self.users is not None else None
        if found is None:
            log.warning(f"opcua: refused a login as {username[:64]!r}: unknown user or wrong password")
            return None
        return Caller(role=UserRole.User, name=found.name, may_command=found.may_command)

    # asyncua.crypto.permission_rules.PermissionRuleset (duck-typed)
    def check_validity(self, user: User | None, action_type: ua.NodeId, body: object) -> bool:
        _caller.set(user if isinstance(user, Caller) else NOBODY)
        return action_type in ALLOWED and action_type not in NEVER

