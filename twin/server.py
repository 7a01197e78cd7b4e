"""The twin server process: a ROUTER socket for requests, a PUB socket for streams, and the
loop that steps the world. Realtime mode paces physics to the wall clock (× rate)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import zmq

from cellctl.drivers import twin_wire as P
from cellctl.twin.checkpoint import Checkpoint
from cellctl.twin.config import SceneConfig
from cellctl.drivers.curve import check_bind, release
from cellctl.twin.service import TwinService
from cellctl.twin.simtime import first_step_at

JOINT_STATE_HZ = 50
MAX_TOPICS = 64  # topic prefixes the event stream keeps track of
MAX_SUBSCRIPTION_MESSAGES = 100  # read per look, so a client flooding subscriptions cannot stall the loop
MAX_SUBSCRIPTION_BYTES = 4096
MAX_CATCH_UP_S = 0.25  # realtime: if the loop falls further behind, drop the backlog (and say so)
MAX_REQUESTS_PER_TURN = 100
LOCKSTEP_POLL_MS = 50  # how often a lockstep server looks for silent participants
MAX_STEPS_PER_TURN = 24  # at 240 Hz: 0.1 s of sim time between looks at the request socket
TURN_BUDGET_S = 0.02  # wall time spent stepping between looks at the request socket
CHECKPOINT_EVERY_S = 0.5  # wall s between checkpoints (and at once after any part event) ...
CHECKPOINT_SIM_S = 0.25  # ... or sim s, whichever comes first (a lockstep twin runs many times real time)
ORPHAN_CHECK_S = 0.5  # wall s between looks at whether the parent is gone (two syscalls: not per request)
POLLIN, EVENTS = int(zmq.POLLIN), int(zmq.EVENTS)  # plain ints: pyzmq's enum operators cost µs per request


class TwinServer:
    """With ``listen_fd`` (a TCP socket listening on ``host:port``, inherited from a supervisor
    that keeps it open across restarts) the request socket accepts on it instead of binding its
    own. With ``checkpoint`` the world is saved to that file every CHECKPOINT_EVERY_S and after every
    part event (a spawn, a consumption, a part attached or released), and with ``restore`` it
    starts from what the file holds, at sim time ``resume_at`` or later. With the config's
    ``twin.orphan_grace``, a server whose parent process (``parent``, default: the one that started
    it) has gone and that no client has spoken to for that long exits by itself (a launcher killed
    with nobody left to stop its twin)."""

    def __init__(self, config: SceneConfig, host: str = "127.0.0.1", port: int = 0, pub_port: int = 0,
                 checkpoint: Path | None = None, restore: bool = False, resume_at: float = 0.0,
                 parent: int | None = None, listen_fd: int | None = None) -> None:
        keys = config.keys("twin")
        check_bind(host, keys, "the twin")
        self._ctx = zmq.Context()
        self._router = self._ctx.socket(zmq.ROUTER)
        # XPUB: it tells who subscribes to what, so streams nobody reads are not built (a PUB to no
        # subscriber drops them only after they cost a msgpack and a send per robot)
        self._pub = self._ctx.socket(zmq.XPUB)
        self._pub.setsockopt(zmq.MAXMSGSIZE, MAX_SUBSCRIPTION_BYTES)
        self._subscribed: set[bytes] = set()  # topic prefixes someone subscribes to
        for s in (self._router, self._pub):
            s.setsockopt(zmq.LINGER, 0)
            if keys is not None:  # CURVE: allow-listed clients command the world; observers may watch it
                keys.serve(s, read_only=s is self._pub)
        self._router.setsockopt(zmq.MAXMSGSIZE, P.HARD_FRAME_BYTES)  # ZeroMQ drops such a peer unread
        if host == "::1":
            for s in (self._router, self._pub):
                s.setsockopt(zmq.IPV6, 1)
        addr = f"[{host}]" if ":" in host else host
        if listen_fd is not None:  # the supervisor's listening socket on ``port``: its clients started before
            # this process was ready, and connected already (they wait in its backlog)
            self._router.setsockopt(zmq.USE_FD, listen_fd)
        self.endpoint = self._bind(self._router, addr, port)
        self.pub_endpoint = self._bind(self._pub, addr, pub_port)
        self.service = TwinService(config, self.pub_endpoint)
        self.config = config
        self._publish_every = max(1, config.twin.physics_hz // JOINT_STATE_HZ)
        self._parent = parent or os.getppid()  # pid 1 (a service manager) never goes away
        self._last_request = self._orphan_checked = time.monotonic()
        self.requests = 0  # served, for the log line at close (benchmarks' cost model)
        self._checkpoint = Checkpoint(checkpoint) if checkpoint is not None else None
        self._saved_at = self._saved_time = 0.0
        self.restored = False
        if self._checkpoint is not None and restore and (state := self._checkpoint.load()) is not None:
            self.service.restore(state, first_step_at(resume_at, config.twin.physics_hz))
            self.restored = True

    @staticmethod
    def _bind(sock: zmq.Socket, addr: str, port: int) -> str:
        sock.bind(f"tcp://{addr}:{port if port else '*'}")
        return sock.getsockopt_string(zmq.LAST_ENDPOINT)

    def close(self) -> None:
        world = self.service.world
        ops = ", ".join(f"{op} {n}" for op, n in self.service.op_counts.most_common())
        print(f"twin: served {self.requests} requests over {world.steps} physics steps ({world.time:.1f} s sim), "
              f"{time.process_time():.2f} s CPU; by op: {ops}", file=sys.stderr, flush=True)  # benchmarks' cost model
        if self._checkpoint is not None:
            self._save()
            self._checkpoint.close()
        self.service.close()
        release(self._ctx)
        self._ctx.destroy(linger=0)  # every socket of the context, ours or a library's: term never waits

    def announce(self) -> None:
        """One line on stdout that a parent process waits for (PyBullet prints its own lines)."""
        print(P.TWIN_READY + json.dumps({"endpoint": self.endpoint, "pub": self.pub_endpoint,
                                         "time": self.service.world.time, "restored": self.restored}), flush=True)

    # -- checkpoints and orphanhood -------------------------------------------------------------
    def _save(self) -> None:
        world = self.service.world
        self._checkpoint.save(world.snapshot(), world.time)
        self._saved_at, self._saved_time = time.monotonic(), world.time

    def _orphaned(self) -> bool:
        try:
            os.kill(self._parent, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass  # alive, someone else's
        return os.getppid() == 1 and self._parent != 1

    def _housekeeping(self) -> None:
        """Between turns: a checkpoint when one is due; exit when orphaned and unspoken-to."""
        if self._checkpoint is not None and (time.monotonic() - self._saved_at > CHECKPOINT_EVERY_S
                                             or self.service.world.time - self._saved_time > CHECKPOINT_SIM_S):
            self._save()
        grace, now = self.config.twin.orphan_grace, time.monotonic()
        if not grace or now - self._orphan_checked < ORPHAN_CHECK_S:
            return
        self._orphan_checked = now
        if self._orphaned() and now - self._last_request > grace:
            print(f"twin: the process that started it is gone and no client has spoken for {grace}s: exiting",
                  file=sys.stderr, flush=True)
            self.service.shutdown_requested = True

    # -- requests ----------------------------------------------------------------------------
    def _serve_pending(self, first: list[bytes] | None = None) -> None:
        """Serve ``first`` (already received) and whatever else is queued. Checking the socket's
        EVENTS is far cheaper than a failed non-blocking receive."""
        parts = first
        for _ in range(MAX_REQUESTS_PER_TURN):
            if parts is None:
                if not self._router.getsockopt(EVENTS) & POLLIN:
                    return
                parts = self._router.recv_multipart()
            self._last_request = time.monotonic()
            self.requests += 1
            reply = self.service.handle(parts[:-1], parts[-1])
            if reply is not None:
                self._router.send_multipart(parts[:-1] + [P.pack(reply)])
            for envelope, earlier in self.service.extra_replies:
                self._router.send_multipart(envelope + [P.pack(earlier)])
            self.service.extra_replies.clear()
            if self.service.world.events:
                self._publish_events()
            parts = None

    # -- streams -----------------------------------------------------------------------------
    def _publish_events(self) -> list[dict]:
        world = self.service.world
        events = world.events
        for ev in events:
            self._pub.send_multipart([ev["topic"].encode(), P.pack(ev)])
        world.events = []
        if self._checkpoint is not None and any(ev["topic"] in ("parts", "machines") for ev in events):
            self._save()  # a part spawned, consumed, attached or released, a machine's job started or ended:
            # what went in and out, and what the machines do, is never lost
        return events

    def _subscriptions(self) -> None:
        """Who subscribes to what: XPUB hands over a topic's first subscribe and its last
        unsubscribe (at most MAX_TOPICS prefixes are kept: a client cannot make the set grow without
        bound; past it, a new prefix is not streamed)."""
        for _ in range(MAX_SUBSCRIPTION_MESSAGES):
            if not self._pub.getsockopt(EVENTS) & POLLIN:
                return
            message = self._pub.recv()
            if message[:1] == b"\x01" and len(self._subscribed) < MAX_TOPICS:
                self._subscribed.add(message[1:])
            elif message[:1] == b"\x00":
                self._subscribed.discard(message[1:])

    def _wanted(self, topic: bytes) -> bool:
        return any(topic.startswith(prefix) for prefix in self._subscribed)

    def _publish_state(self) -> None:
        """The clock and joint states at JOINT_STATE_HZ, each only while someone subscribes to it."""
        world = self.service.world
        if world.steps % self._publish_every:
            return
        self._subscriptions()
        if self._wanted(P.TOPIC_CLOCK):
            self._pub.send_multipart([P.TOPIC_CLOCK, P.pack({"time": world.time, "steps": world.steps})])
        if not self._wanted(P.TOPIC_JOINTS):
            return
        for name, robot in world.robots.items():
            js = robot.joint_state(world.time)
            self._pub.send_multipart([P.TOPIC_JOINTS, P.pack(
                {"robot": name, "names": js.names, "positions": js.positions, "velocities": js.velocities,
                 "stamp": js.stamp})])

    def step(self) -> list[dict]:
        self.service.world.step()
        events = self._publish_events()
        self._publish_state()
        return events

    def _step_period(self) -> list[dict]:
        return [ev for _ in range(self.config.twin.period_steps) for ev in self.step()]

    # -- loop --------------------------------------------------------------------------------
    def serve_forever(self) -> None:
        if self.service.lockstep is not None:
            self._serve_lockstep()
        else:
            self._serve_realtime()

    def _serve_lockstep(self) -> None:
        """Lockstep: serve requests; whenever every participant has acknowledged, advance and send
        the grants; drop participants silent for longer than the configured wall time."""
        lockstep = self.service.lockstep
        self._router.setsockopt(zmq.RCVTIMEO, LOCKSTEP_POLL_MS)  # a blocking receive is the wait
        while not self.service.shutdown_requested:
            self._housekeeping()
            if lockstep.ready():  # a grant is being worked off: serve whoever asks, without waiting
                self._serve_pending()
            else:
                try:
                    self._serve_pending(self._router.recv_multipart())
                except zmq.Again:
                    pass
            for name in lockstep.silent(time.monotonic()):
                lockstep.deregister(name)
                print(f"twin: participant {name!r} silent for over {lockstep.silence_timeout}s: deregistered",
                      file=sys.stderr, flush=True)
                self.service.world.events.append({"topic": "participants", "event": "deregistered", "name": name,
                                                  "reason": "silent", "time": self.service.world.time})
                self._publish_events()
            if lockstep.ready():
                for envelope, req_id, grant in lockstep.advance(self.service.world.steps, self._step_period,
                                                                TURN_BUDGET_S):
                    self._router.send_multipart(envelope + [P.pack(P.ok(req_id, grant))])

    def _serve_realtime(self) -> None:
        """Realtime: step when the (scaled) wall clock says so, serve requests in between."""
        rate, dt = self.config.twin.rate, 1.0 / self.config.twin.physics_hz
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        t0, base_steps, warned = time.monotonic(), 0, False
        while not self.service.shutdown_requested:
            self._housekeeping()
            world = self.service.world
            if world.steps < base_steps:  # reset rebuilt the world
                t0, base_steps = time.monotonic(), 0
            due = base_steps + int((time.monotonic() - t0) * rate / dt) - world.steps
            if due * dt > MAX_CATCH_UP_S * rate:
                if not warned:
                    print(f"twin: cannot keep up with real time x{rate}; running as fast as it can", file=sys.stderr)
                    warned = True
                t0, base_steps, due = time.monotonic(), world.steps, 1
            turn_ends = time.monotonic() + TURN_BUDGET_S
            for _ in range(min(due, MAX_STEPS_PER_TURN)):  # bounded in steps and time: requests are never starved
                self.step()
                if time.monotonic() > turn_ends:
                    break
            wait = (t0 + (world.steps - base_steps + 1) * dt / rate) - time.monotonic()
            if poller.poll(max(0, int(wait * 1000))):
                self._serve_pending()
