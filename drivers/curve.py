"""ZeroMQ CURVE for every socket that commands something (the twin's requests, a cell's control
socket, a cell's handoff inbox), with pyzmq's ``zmq.auth`` (ZAP) and an allow-list of public keys.

A line's ``security: {keys: DIR}`` names one directory in pyzmq's certificate format
(``cellctl keys generate NAME``): each process reads its own pair ``DIR/NAME.key_secret`` (the
twin's name is ``twin``, a cell's its own, the launcher's ``launcher``), a client learns a server's
public key from ``DIR/SERVER.key``, and a server accepts exactly the clients whose public keys
(``DIR/*.key``) are there. A PC gets its own secret and the public keys of whom it talks to and
accepts. Without ``security`` everything stays keyless, and then only loopback may be bound
(:func:`check_bind`).

ZAP authorises a connection, not a message: a client admitted to a socket may send it anything.
So read-only observers (dashboards, an operator's ``cellctl status``) get sockets of their own
that cannot command — a cell's status socket, the twin's event stream — in the ZAP domain
``observe``, which admits the keys of ``DIR`` and of ``security.observers``. Commanding sockets are
in the domain ``command`` and admit ``DIR`` only: an observer's key opens no command socket.
"""

from __future__ import annotations

import ipaddress
import threading
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator


class KeyFileError(ValueError):
    """A key file missing, unreadable or malformed: one line naming the file."""


COMMAND, OBSERVE = b"command", b"observe"  # ZAP domains


@dataclass(frozen=True)
class Keys:
    directory: Path
    name: str
    public: bytes
    secret: bytes
    observers: Path | None = None  # public keys admitted to read-only sockets only

    @classmethod
    def load(cls, directory: str | Path, name: str, observers: str | Path | None = None) -> Keys:
        directory = Path(directory)
        path = directory / f"{name}.key_secret"
        public, secret = _read(path)
        if secret is None:
            raise KeyFileError(f"{path}: no secret key in it (a {name}.key_secret file of `cellctl keys generate {name}`)")
        if observers is not None and not Path(observers).is_dir():
            raise KeyFileError(f"{observers}: no such directory of observers' public keys")
        return cls(directory, name, public, secret, Path(observers) if observers is not None else None)

    def public_of(self, peer: str) -> bytes:
        """The public key of ``peer`` (a server this process connects to)."""
        return _read(self.directory / f"{peer}.key")[0]

    def serve(self, sock: zmq.Socket, read_only: bool = False) -> None:
        """Make ``sock`` a CURVE server that admits the allow-listed clients (before bind): those of
        the keys directory, and for a ``read_only`` socket the observers' too."""
        _authenticator(sock.context, _AllowList(self.directory, self.observers))
        sock.zap_domain = OBSERVE if read_only else COMMAND
        sock.curve_secretkey, sock.curve_publickey, sock.curve_server = self.secret, self.public, True

    def connect_to(self, sock: zmq.Socket, server: str) -> None:
        """Make ``sock`` a CURVE client of ``server`` (before connect)."""
        sock.curve_secretkey, sock.curve_publickey = self.secret, self.public
        sock.curve_serverkey = self.public_of(server)


def _read(path: Path) -> tuple[bytes, bytes | None]:
    if not path.is_file():
        raise KeyFileError(f"{path}: no such key file (`cellctl keys generate {path.name.split('.')[0]} "
                        f"--dir {path.parent}` makes one)")
    try:
        return zmq.auth.load_certificate(path)
    except (OSError, ValueError, KeyError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{path}: not a readable CURVE certificate ({type(exc).__name__}: {exc})") from None


_started: dict[int, ThreadAuthenticator] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class _AllowList:
    """zmq.auth's credentials provider: the directories are read at each connection, so a key
    copied in (or removed) counts from the next connection on, without a restart."""

    directory: Path
    observers: Path | None

    def callback(self, domain: str, z85_key: bytes) -> bool:
        allowed = zmq.auth.load_certificates(self.directory)
        if domain == OBSERVE.decode() and self.observers is not None:
            allowed.update(zmq.auth.load_certificates(self.observers))
        return z85_key in allowed


def _authenticator(ctx: zmq.Context, allow: _AllowList) -> None:
    """One ZAP handler per context: CURVE clients on the allow-list of the socket's domain, any address."""
    with _lock:
        if id(ctx) in _started:
            return
        auth = ThreadAuthenticator(ctx)
        auth.start()
        for domain in (COMMAND, OBSERVE):
            auth.configure_curve_callback(domain.decode(), allow)
        _started[id(ctx)] = auth


def release(ctx: zmq.Context) -> None:
    """Stop the context's ZAP handler (before ``ctx.term()``, which would wait for it for ever)."""
    with _lock:
        auth = _started.pop(id(ctx), None)
    if auth is not None:
        auth.stop()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, keys: Keys | None, what: str) -> None:
    """Loopback without keys; any other address only with CURVE (DESIGN §9)."""
    if keys is None and not is_loopback(host):
        raise ValueError(f"refusing to bind {what} to {host!r} without keys: anyone reaching the port could command "
                         f"it. Set security: {{keys: DIR}} in the config (`cellctl keys generate NAME --dir DIR` "
                         f"for every process), or bind 127.0.0.1")


def generate(directory: str | Path, name: str) -> tuple[Path, Path]:
    """A key pair for ``name`` in ``directory`` (pyzmq's certificate format)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    public, secret = zmq.auth.create_certificates(directory, name)
    Path(secret).chmod(0o600)
    return Path(public), Path(secret)
