"""Request/reply with a twin server over ZeroMQ: the socket side of ``drivers/twin_wire.py``.

Shared by the twin driver and by the twin's own helpers that speak to a server (the rosbridge
endpoint, the launcher's probe), so that none of them needs a robot driver to ask the twin a
question.

It never hangs: every request has a timeout; a server that does not answer surfaces as
``ConnectionLost`` within that bound, the socket is thrown away (so a late reply to an old request
can never be taken for a new one) and the next call reconnects, which is how a client recovers
when the server comes back.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable

import zmq

from cellctl.drivers import twin_wire as P
from cellctl.drivers.curve import Keys
from cellctl.drivers.errors import ConnectionLost, from_code

IDLE_EVERY_S = 0.1  # wall s between calls of a waiting request's idle callback
RECONNECT_HELLO_S = 1.0  # wall s a twin that did not answer has to answer the next request's hello


class TwinClient:
    def __init__(self, endpoint: str, timeout: float = 2.0, client: str = "", keys: Keys | None = None) -> None:
        self.endpoint, self.timeout, self.keys = endpoint, timeout, keys  # keys: CURVE, the twin as "twin"
        self.client = client or f"twin-client-{os.getpid()}"
        self._ctx = zmq.Context.instance()
        self._sock: zmq.Socket | None = None
        self._ids = itertools.count(1)
        self.server_info: dict = {}
        self.restarts_seen = 0  # hellos answered by another server instance than the one before
        self._lost = False  # the last request timed out (and no hello has been answered since)

    def __enter__(self) -> TwinClient:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        self._open()

    def close(self) -> None:
        self._drop()

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def _open(self, timeout: float | None = None) -> None:
        self._drop()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        if self.keys is not None:
            self.keys.connect_to(self._sock, "twin")
        self._sock.connect(self.endpoint)
        info = self._call("hello", {"version": P.VERSION, "client": self.client}, timeout)
        self._lost = False
        if self.server_info.get("instance") not in (None, info.get("instance")):
            self.restarts_seen += 1  # a restarted twin: motions and registrations of the old one are gone
        self.server_info = info

    def alive(self, timeout: float) -> bool:
        """Whether the server answers a hello on a fresh socket within ``timeout`` (then that socket
        is kept): tells a server that is busy from one that is gone."""
        try:
            self._open(timeout)
        except ConnectionLost:
            return False
        return True

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None

    def request(self, op: str, _timeout: float | None = None, _idle: Callable[[], None] | None = None,
                **args: object) -> object:
        """One request/reply; reconnects first (a hello within RECONNECT_HELLO_S) if the previous
        request lost the link. ``_idle`` is called every IDLE_EVERY_S while the reply is awaited (a cell
        answers status queries while it waits for a long lockstep grant)."""
        if self._sock is None:  # after a lost link a twin that is back says hello at once, and one
            # still gone costs the caller RECONNECT_HELLO_S, not a whole timeout per request
            self._open(min(_timeout or self.timeout, RECONNECT_HELLO_S) if self._lost else _timeout)
        return self._call(op, args, _timeout or self.timeout, _idle)

    def _call(self, op: str, args: dict, timeout: float | None = None,
              idle: Callable[[], None] | None = None) -> object:
        timeout = timeout or self.timeout
        req_id = next(self._ids)
        sock = self._sock
        sock.send(P.pack({"id": req_id, "op": op, "args": args}))
        # A receive timeout on the socket, not a poll per call: a Poller per request costs more
        # than the rest of the round trip.
        deadline = time.monotonic() + timeout
        remaining = timeout
        while remaining > 0:
            sock.setsockopt(zmq.RCVTIMEO, int(min(remaining, IDLE_EVERY_S if idle else remaining) * 1000) + 1)
            try:
                reply = P.unpack(sock.recv())
            except zmq.Again:
                if idle is not None:
                    idle()
                remaining = deadline - time.monotonic()
                continue
            if reply.get("id") == req_id:
                if reply["ok"]:
                    return reply["result"]
                err = reply["error"]
                raise from_code(err["code"], err["message"])
            remaining = deadline - time.monotonic()  # a stale reply to a request that timed out earlier
        self._drop()
        self._lost = True
        raise ConnectionLost(f"twin at {self.endpoint} did not answer {op!r} within {timeout}s")
