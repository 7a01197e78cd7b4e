"""A cell's control socket: PackML commands and a status query over ZeroMQ (ROUTER), with the
twin's framing (msgpack ``{id, op, args}`` → ``{id, ok, result | error}``); and its status socket,
which answers the status query only.

    op "status"                      → the cell's status: state, PackTags number, skill, phase, parts
                                       done and work order, part, fault, the neighbour it waits for
                                       and each link's peer, Hermes state and liveness
    op "command", args {"command", "by"?, "user"?}
                                     → {"cell", "queued": the command, "state": the state now}: a
                                       command the state allows is queued and applied at the cell's
                                       next tick (even while it waits for its lockstep grant: never
                                       "busy"); one it forbids is refused at once, error "refused"
                                       with the PackML reason (on the status socket: "read_only").
                                       ``by`` names who sends it (cli, page, opcua, launcher, ...),
                                       ``user`` the logged-in person behind a page's command
    op "cut_link", args {"peer", "seconds"}
                                     → an injected fault (scenarios, ``cellctl test``): the handoff
                                       link to ``peer`` is down for ``seconds`` of sim time; error
                                       "refused" on a cell whose robot is real

Two sockets because ZAP admits a connection, not a message: under CURVE the control socket admits
the line's keys only, the status socket observers' keys too (``cellctl.drivers.curve``). The envelope rules
are the twin's (``cellctl.drivers.twin_wire.decode_request``: frames up to 1 MiB, an int or short str id);
``command`` must be one PackML command name (``bad_args`` otherwise). At most 100 requests are
answered per control period, so no client can keep the cell from ticking.
"""

from __future__ import annotations

import re

import zmq

from cellctl.cell.packml import COMMANDS, CommandRefused
from cellctl.drivers import twin_wire as P
from cellctl.drivers.curve import Keys, check_bind

REFUSED = "refused"
READ_ONLY = "read_only"
ACTING_OPS = ("command", "cut_link")  # refused on the status socket
SENDER = re.compile(r"[a-z][a-z0-9_-]{0,31}")  # a command's ``by``
USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")  # a command's ``user`` (``cellctl.users``' names)
MAX_CUT_S = 3600.0
MAX_REQUESTS_PER_TICK = 100


class ControlServer:
    def __init__(self, cell, port: int = 0, host: str = "127.0.0.1", keys: Keys | None = None,
                 status_port: int = 0) -> None:
        check_bind(host, keys, f"cell {getattr(cell, 'name', '?')}'s control socket")
        self.cell = cell
        self._ctx = zmq.Context.instance()
        self._sock = self._bind(host, port, keys, read_only=False)
        self._status = self._bind(host, status_port, keys, read_only=True)
        self.endpoint = self._sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.status_endpoint = self._status.getsockopt_string(zmq.LAST_ENDPOINT)

    def _bind(self, host: str, port: int, keys: Keys | None, read_only: bool) -> zmq.Socket:
        sock = self._ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        if keys is not None:  # CURVE: only allow-listed clients command the cell (observers: status only)
            keys.serve(sock, read_only=read_only)
        sock.setsockopt(zmq.MAXMSGSIZE, P.HARD_FRAME_BYTES)
        sock.bind(f"tcp://{host}:{port or '*'}")
        return sock

    def serve_pending(self) -> None:
        """Answer what is queued, at most a bounded number per tick (the cell must keep ticking);
        also called while the cell waits for its lockstep grant (commands are queued either way)."""
        for sock in (self._sock, self._status):
            for _ in range(MAX_REQUESTS_PER_TICK):
                try:
                    parts = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                reply = self._handle(parts[-1], read_only=sock is self._status)
                sock.send_multipart(parts[:-1] + [P.pack(reply)])

    def _handle(self, frame: bytes, read_only: bool) -> dict:
        try:
            req_id, op, args = P.decode_request(frame)
        except P.BadFrame as exc:  # any garbage: an error reply, and keep serving
            return P.error(exc.req_id, P.BAD_FRAME, str(exc))
        if op == "status":
            return P.ok(req_id, self.cell.status())
        if op in ACTING_OPS and read_only:
            return P.error(req_id, READ_ONLY, "this is the cell's status socket: commands go to its control socket")
        if op == "cut_link":
            return self._cut_link(req_id, args)
        if op != "command":
            return P.error(req_id, P.UNKNOWN_OP, f"unknown op {op[:P.MAX_NAME]!r}; ops: status"
                                                 + ("" if read_only else ", " + ", ".join(ACTING_OPS)))
        ok = isinstance(args, dict) and set(args) <= {"command", "by", "user"} and args.get("command") in COMMANDS \
            and isinstance(args.get("by", "cli"), str) and SENDER.fullmatch(args.get("by", "cli")) \
            and isinstance(args.get("user", "u"), str) and USER.fullmatch(args.get("user", "u"))
        if not ok:
            return P.error(req_id, P.BAD_ARGS, f"command: args {{\"command\": one of {', '.join(COMMANDS)}, "
                                               f"\"by\": who sends it (cli, page, opcua, ...), \"user\"?: who is "
                                               f"logged in}}")
        try:
            self.cell.queue(args["command"], args.get("by", "cli"), args.get("user"))
        except CommandRefused as exc:
            return P.error(req_id, REFUSED, str(exc))
        return P.ok(req_id, {"cell": self.cell.name, "queued": args["command"], "state": self.cell.state})

    def _cut_link(self, req_id: object, args: object) -> dict:
        peers = self.cell.peers()
        ok = (isinstance(args, dict) and set(args) == {"peer", "seconds"} and args["peer"] in peers
              and isinstance(args["seconds"], (int, float)) and not isinstance(args["seconds"], bool)
              and 0 < args["seconds"] <= MAX_CUT_S)
        if not ok:
            return P.error(req_id, P.BAD_ARGS, f"cut_link: args {{\"peer\": one of {peers}, "
                                               f"\"seconds\": sim seconds in (0, {MAX_CUT_S:g}]}}")
        if not self.cell.simulated:
            return P.error(req_id, REFUSED, "injected faults are for simulated cells: this cell's robot is real")
        self.cell.cut_link(args["peer"], float(args["seconds"]))
        return P.ok(req_id, self.cell.status())

    def close(self) -> None:
        self._sock.close(0)
        self._status.close(0)


def request(endpoint: str, op: str, timeout: float = 3.0, keys: Keys | None = None, cell: str = "",
            **args: object) -> dict:
    """One request to a cell's control socket (the CLI's client); raises TimeoutError. With
    ``keys``, over CURVE to ``cell`` (its public key from the keys directory)."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        if keys is not None:
            keys.connect_to(sock, cell)
        sock.connect(endpoint)
        sock.send(P.pack({"id": 1, "op": op, "args": args}))
        if not sock.poll(int(timeout * 1000)):
            raise TimeoutError(f"no answer from the cell at {endpoint} within {timeout}s")
        return P.unpack(sock.recv())
    finally:
        sock.close(0)
