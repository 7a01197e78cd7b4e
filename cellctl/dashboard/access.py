"""Who may look at the page and who may press its buttons.

On loopback without a users file the page is open: whoever sits at the cell's PC is its operator
(recorded as ``local``). Otherwise a person logs in with a name and password of the users file
(``cellctl.users``); the server keeps the session (a random token in an HttpOnly, SameSite=Strict
cookie, Secure over HTTPS) for ``SESSION_S``; observers see everything and command nothing. A
wrong password is refused and logged; after ``MAX_FAILURES`` within ``FAILURE_WINDOW_S`` a name
(or an address) is refused for that window without checking, so nobody guesses passwords at
scrypt speed.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import OrderedDict, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from cellctl.users import Role, User, Users

log = logging.getLogger("cellctl.dashboard")

COOKIE = "cellctl_session"
SESSION_S = 12 * 3600.0  # a shift
MAX_SESSIONS = 1000  # the oldest goes first: no one fills the server's memory by logging in
MAX_FAILURES = 5
MAX_TRACKED = 10_000  # names and addresses with recent failures the server remembers
FAILURE_WINDOW_S = 60.0
LOCAL = User("local", Role.OPERATOR)  # the person at the PC, on an open loopback page


@dataclass
class Access:
    users: Users | None  # None: the page is open (loopback only)
    clock: Callable[[], float] = time.monotonic
    _sessions: OrderedDict[str, tuple[User, float]] = field(default_factory=OrderedDict)
    _failures: dict[str, deque] = field(default_factory=lambda: defaultdict(deque))

    @property
    def open(self) -> bool:
        return self.users is None

    def login(self, name: str, password: str, peer: str) -> str | None:
        """A session token, or None (logged with the reason)."""
        assert self.users is not None
        if self._locked(f"name:{name[:64]}") or self._locked(f"addr:{peer}"):
            log.warning(f"dashboard: login refused for {name!r} from {peer}: too many failures, wait "
                        f"{FAILURE_WINDOW_S:.0f} s")
            return None
        user = self.users.check(name, password)
        if user is None:
            for key in (f"name:{name[:64]}", f"addr:{peer}"):
                self._failures[key].append(self.clock())
            while len(self._failures) > MAX_TRACKED:  # a flood of made-up names cannot fill the memory
                del self._failures[next(iter(self._failures))]
            log.warning(f"dashboard: login refused for {name[:64]!r} from {peer}: wrong name or password")
            return None
        token = secrets.token_urlsafe(32)
        self._sessions[token] = (user, self.clock() + SESSION_S)
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        log.info(f"dashboard: {user.name} ({user.role}) logged in from {peer}")
        return token

    def _locked(self, key: str) -> bool:
        times = self._failures.get(key)
        if not times:
            return False
        while times and times[0] < self.clock() - FAILURE_WINDOW_S:
            times.popleft()
        if not times:
            del self._failures[key]
        return len(times) >= MAX_FAILURES

    def user(self, token: str | None) -> User | None:
        """Who a request comes from: LOCAL on an open page, the session's user, or None."""
        if self.open:
            return LOCAL
        found = self._sessions.get(token or "")
        if found is None:
            return None
        user, expires = found
        if self.clock() > expires:
            del self._sessions[token]
            return None
        return user

    def logout(self, token: str | None) -> None:
        self._sessions.pop(token or "", None)
