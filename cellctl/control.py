"""A cell's control socket: PackML commands and a status query over ZeroMQ (ROUTER, loopback),
with the twin's framing (msgpack ``{id, op, args}`` → ``{id, ok, result | error}``).

    op "status"                      → the cell's status (state, PackTags number, skill, parts, part)
    op "command", args {"command"}   → the status after the command, or error "refused"
"""

from __future__ import annotations

import zmq

from cellctl.packml import CommandRefused
from drivers import twin_wire as P
from twin.endpoints import check_loopback

REFUSED = "refused"


class ControlServer:
    def __init__(self, cell, port: int = 0, host: str = "127.0.0.1") -> None:
        check_loopback(host)
        self.cell = cell
        self._ctx = zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.bind(f"tcp://{host}:{port or '*'}")
        self.endpoint = self._sock.getsockopt_string(zmq.LAST_ENDPOINT)

    def serve_pending(self) -> None:
        while True:
            try:
                parts = self._sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._sock.send_multipart(parts[:-1] + [P.pack(self._handle(parts[-1]))])

    def _handle(self, frame: bytes) -> dict:
        try:
            req = P.unpack(frame)
            req_id, op, args = req["id"], req["op"], req.get("args") or {}
        except Exception:  # any garbage: an error reply, and keep serving
            return P.error(None, P.BAD_FRAME, "a request is a msgpack map with keys id, op and args")
        if op == "status":
            return P.ok(req_id, self.cell.status())
        if op == "command":
            try:
                self.cell.command(str(args.get("command")))
            except CommandRefused as exc:
                return P.error(req_id, REFUSED, str(exc))
            return P.ok(req_id, self.cell.status())
        return P.error(req_id, P.UNKNOWN_OP, f"unknown op {op!r}; ops: status, command")

    def close(self) -> None:
        self._sock.close(0)


def request(endpoint: str, op: str, timeout: float = 3.0, **args: object) -> dict:
    """One request to a cell's control socket (the CLI's client); raises TimeoutError."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(endpoint)
        sock.send(P.pack({"id": 1, "op": op, "args": args}))
        if not sock.poll(int(timeout * 1000)):
            raise TimeoutError(f"no answer from the cell at {endpoint} within {timeout}s")
        return P.unpack(sock.recv())
    finally:
        sock.close(0)
