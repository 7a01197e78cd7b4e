"""A cell's control socket: PackML commands and a status query over ZeroMQ (ROUTER, loopback),
with the twin's framing (msgpack ``{id, op, args}`` → ``{id, ok, result | error}``).

    op "status"                      → the cell's status (state, PackTags number, skill, parts, part)
    op "command", args {"command"}   → the status after the command, or error "refused"

The envelope rules are the twin's (``drivers.twin_wire.decode_request``: frames up to 1 MiB, an
int or short str id); ``command`` must be one PackML command name (``bad_args`` otherwise). At
most 100 requests are answered per control period, so no client can keep the cell from ticking.
"""

from __future__ import annotations

import zmq

from cellctl.packml import COMMANDS, CommandRefused
from drivers import twin_wire as P
from twin.endpoints import check_loopback

REFUSED = "refused"
MAX_REQUESTS_PER_TICK = 100


class ControlServer:
    def __init__(self, cell, port: int = 0, host: str = "127.0.0.1") -> None:
        check_loopback(host)
        self.cell = cell
        self._ctx = zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.MAXMSGSIZE, P.HARD_FRAME_BYTES)
        self._sock.bind(f"tcp://{host}:{port or '*'}")
        self.endpoint = self._sock.getsockopt_string(zmq.LAST_ENDPOINT)

    def serve_pending(self) -> None:
        """Answer what is queued, at most a bounded number per tick (the cell must keep ticking)."""
        for _ in range(MAX_REQUESTS_PER_TICK):
            try:
                parts = self._sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._sock.send_multipart(parts[:-1] + [P.pack(self._handle(parts[-1]))])

    def _handle(self, frame: bytes) -> dict:
        try:
            req_id, op, args = P.decode_request(frame)
        except P.BadFrame as exc:  # any garbage: an error reply, and keep serving
            return P.error(exc.req_id, P.BAD_FRAME, str(exc))
        if op == "status":
            return P.ok(req_id, self.cell.status())
        if op != "command":
            return P.error(req_id, P.UNKNOWN_OP, f"unknown op {op[:P.MAX_NAME]!r}; ops: status, command")
        command = args.get("command") if isinstance(args, dict) and len(args) == 1 else None
        if command not in COMMANDS:
            return P.error(req_id, P.BAD_ARGS, f"command: args {{\"command\": one of {', '.join(COMMANDS)}}}")
        try:
            self.cell.command(command)
        except CommandRefused as exc:
            return P.error(req_id, REFUSED, str(exc))
        return P.ok(req_id, self.cell.status())

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
