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

import zmq

from drivers import twin_wire as P
from drivers.errors import ConnectionLost, from_code


class TwinClient:
    def __init__(self, endpoint: str, timeout: float = 2.0, client: str = "") -> None:
        self.endpoint, self.timeout = endpoint, timeout
        self.client = client or f"twin-client-{os.getpid()}"
        self._ctx = zmq.Context.instance()
        self._sock: zmq.Socket | None = None
        self._ids = itertools.count(1)
        self.server_info: dict = {}

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

    def _open(self) -> None:
        self._drop()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.connect(self.endpoint)
        self.server_info = self._call("hello", {"version": P.VERSION, "client": self.client})

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None

    def request(self, op: str, _timeout: float | None = None, **args: object) -> object:
        """One request/reply; reconnects first if the previous request lost the link."""
        if self._sock is None:
            self._open()
        return self._call(op, args, _timeout or self.timeout)

    def _call(self, op: str, args: dict, timeout: float | None = None) -> object:
        timeout = timeout or self.timeout
        req_id = next(self._ids)
        sock = self._sock
        sock.send(P.pack({"id": req_id, "op": op, "args": args}))
        # A receive timeout on the socket, not a poll per call: a Poller per request costs more
        # than the rest of the round trip.
        sock.setsockopt(zmq.RCVTIMEO, int(timeout * 1000))
        deadline = time.monotonic() + timeout
        while True:
            try:
                reply = P.unpack(sock.recv())
            except zmq.Again:
                break
            if reply.get("id") == req_id:
                if reply["ok"]:
                    return reply["result"]
                err = reply["error"]
                raise from_code(err["code"], err["message"])
            remaining = deadline - time.monotonic()  # a stale reply to a request that timed out earlier
            if remaining <= 0:
                break
            sock.setsockopt(zmq.RCVTIMEO, int(remaining * 1000) + 1)
        self._drop()
        raise ConnectionLost(f"twin at {self.endpoint} did not answer {op!r} within {timeout}s")
