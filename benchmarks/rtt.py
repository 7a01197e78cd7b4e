"""Command round trip: one request/reply through the twin driver (``joint_state``: a reply of a
few hundred bytes) against a bare pyzmq DEALER/ROUTER echo, in another process, of a msgpack
payload of the same size. Alternating batches; p50 and p99 in microseconds."""

from __future__ import annotations

import multiprocessing as mp
import time

import msgpack
import zmq

from benchmarks.common import config_variant, percentile
from cellctl.processes.children import TwinProcess
from cellctl.drivers.twin import TwinDriver


def _echo(endpoint_queue: mp.Queue) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    endpoint_queue.put(f"tcp://127.0.0.1:{port}")
    while True:
        ident, frame = sock.recv_multipart()
        if frame == b"stop":
            break
        msg = msgpack.unpackb(frame)
        sock.send_multipart([ident, msgpack.packb({"id": msg["id"], "ok": True, "result": msg["pad"]})])
    sock.close(0)
    ctx.term()


def main(quick: bool = False) -> dict:
    n, batches = (300, 3) if quick else (2000, 5)
    ours, base = [], []
    spawn = mp.get_context("spawn")
    queue = spawn.Queue()
    echo = spawn.Process(target=_echo, args=(queue,), daemon=True)
    echo.start()
    endpoint = queue.get(timeout=30)
    ctx = zmq.Context.instance()
    raw = ctx.socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(endpoint)
    try:
        with config_variant("demo_cell.yaml", mode="lockstep") as path, TwinProcess(str(path)) as twin, \
                TwinDriver(twin.endpoint, "press") as driver:
            size = len(msgpack.packb(driver.request("joint_state", robot="press")))
            pad = "x" * size
            for _ in range(batches):
                for _ in range(n):
                    t0 = time.perf_counter()
                    driver.joint_state()
                    ours.append(time.perf_counter() - t0)
                for i in range(n):
                    t0 = time.perf_counter()
                    raw.send(msgpack.packb({"id": i, "op": "echo", "pad": pad}))
                    raw.recv()
                    base.append(time.perf_counter() - t0)
    finally:
        raw.send(b"stop")
        raw.close(0)
        echo.join(5)
    p50, p99 = percentile(ours, 50) * 1e6, percentile(ours, 99) * 1e6
    r50, r99 = percentile(base, 50) * 1e6, percentile(base, 99) * 1e6
    return {"rtt_p50_us": round(p50, 1), "rtt_p99_us": round(p99, 1), "rtt_raw_p50_us": round(r50, 1),
            "rtt_raw_p99_us": round(r99, 1), "rtt_ratio": round(p50 / r50, 3), "rtt_payload_bytes": size}
