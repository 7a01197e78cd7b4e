"""Who may look at a line and who may command it, off loopback: a users file of names, roles and
hashed passwords, managed with ``cellctl users add|remove|list``. The operator's page uses it (and
the OPC UA server will use the same file), so a technician has one password for every way in.

The file is text, one user per line, ``NAME:ROLE:scrypt$N$r$p$SALT$HASH`` (salt and hash in
base64), ``#`` starts a comment. Passwords are hashed with scrypt (the standard library's, from
OpenSSL): memory-hard, so a stolen file does not give the passwords away cheaply. The file is
written atomically with mode 600. A malformed line is an error naming the file, the line and what
was expected: a users file that half-loads would lock out or let in the wrong people.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")  # as a cell's control socket takes a ``user``
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # ~16 MiB and tens of ms per check
MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # a longer one is refused before it is hashed: no request makes the server hash megabytes


class Role(StrEnum):
    OPERATOR = "operator"  # sees and commands
    OBSERVER = "observer"  # sees only


class UsersFileError(ValueError):
    """A users file missing or malformed, or a bad name, role or password: one line saying which."""


@dataclass(frozen=True)
class User:
    name: str
    role: Role

    @property
    def may_command(self) -> bool:
        return self.role == Role.OPERATOR


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)


def _encode(password: str) -> str:
    salt = secrets.token_bytes(16)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(_hash(password, salt)).decode()}"


# checked against when a name is unknown, so an unknown name costs as long as a wrong password
_DUMMY = _encode(secrets.token_urlsafe(12))


def _matches(password: str, encoded: str) -> bool:
    _, n, r, p, salt, digest = encoded.split("$")
    got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32)
    return hmac.compare_digest(got, base64.b64decode(digest))


@dataclass(frozen=True)
class Users:
    """The users of one file, by name."""

    path: Path
    entries: dict[str, tuple[Role, str]]  # name → (role, encoded hash)

    @classmethod
    def load(cls, path: str | Path, missing_ok: bool = False) -> Users:
        path = Path(path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            if missing_ok:
                return cls(path, {})
            raise UsersFileError(f"{path}: no such users file (create it with `cellctl users add NAME --role "
                                 f"operator --file {path}`)") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UsersFileError(f"{path}: cannot read it: {exc}") from None
        entries: dict[str, tuple[Role, str]] = {}
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            fields = line.split(":")
            ok = (len(fields) == 3 and NAME.fullmatch(fields[0]) and fields[1] in Role.__members__.values()
                  and _well_formed(fields[2]))
            if not ok:
                raise UsersFileError(f"{path}:{number}: expected NAME:ROLE:HASH with ROLE operator or observer and a "
                                     f"HASH of `cellctl users add` (scrypt$N$r$p$SALT$HASH)")
            if fields[0] in entries:
                raise UsersFileError(f"{path}:{number}: user {fields[0]!r} appears twice")
            entries[fields[0]] = (Role(fields[1]), fields[2])
        return cls(path, entries)

    def check(self, name: str, password: str) -> User | None:
        """The user, if ``password`` is theirs; None otherwise (an unknown name takes as long)."""
        role, encoded = self.entries.get(name, (None, _DUMMY))
        if len(password) > MAX_PASSWORD:
            return None
        return User(name, role) if _matches(password, encoded) and role is not None else None

    def users(self) -> list[User]:
        return [User(name, role) for name, (role, _) in sorted(self.entries.items())]

    def with_user(self, name: str, role: Role, password: str) -> Users:
        if not NAME.fullmatch(name):
            raise UsersFileError(f"{name!r}: expected a user name of letters, digits, _ . @ and - (up to 64)")
        if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            raise UsersFileError(f"user {name}: expected a password of {MIN_PASSWORD} to {MAX_PASSWORD} characters")
        return Users(self.path, {**self.entries, name: (Role(role), _encode(password))})

    def without(self, name: str) -> Users:
        if name not in self.entries:
            raise UsersFileError(f"{self.path}: no user {name!r}")
        return Users(self.path, {n: e for n, e in self.entries.items() if n != name})

    def save(self) -> None:
        """Atomically, mode 600: a reader sees the old file or the new one, never half of it."""
        lines = ["# cellctl users: NAME:ROLE:HASH (manage with `cellctl users add|remove`)"]
        lines += [f"{name}:{role}:{encoded}" for name, (role, encoded) in sorted(self.entries.items())]
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(tmp, self.path)


def _well_formed(encoded: str) -> bool:
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt" or not all(p.isdigit() for p in parts[1:4]):
        return False
    n, r, p = (int(x) for x in parts[1:4])
    if not (2 <= n <= 2**15 and n & (n - 1) == 0 and 1 <= r <= 8 and 1 <= p <= 4):  # no file makes a check eat memory
        return False
    try:
        return len(base64.b64decode(parts[4], validate=True)) >= 8 and len(base64.b64decode(parts[5], validate=True)) == 32
    except ValueError:
        return False
