"""The ROS driver's link over a real websocket, in-process: a rosbridge that speaks the protocol's
subscribe and publish ops and can withhold its joint states, so that the moment between a
reconnection and its first joint state can be held open as long as the test needs."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator

import pytest
from websockets.asyncio.server import ServerConnection, serve

from cellctl.config.loader import load_config
from cellctl.drivers.description import describe_from_config
from cellctl.drivers.errors import ConnectionLost
from cellctl.drivers.ros import RosDriver, RosNames
from tests.conftest import CONFIGS
from tests.helpers.ros import until_linked

pytestmark = pytest.mark.timeout(60)
JOINTS = [f"lbr_iiwa_joint_{i}" for i in range(1, 8)]
HOME = [0.0, 0.5, 0.0, -1.2, 0.0, 1.4, 0.0]


class GatedBridge:
    """Publishes joint states every 20 ms to each subscriber while ``publishing`` is set;
    ``drop()`` closes every connection as a bridge that died would."""

    def __init__(self) -> None:
        self.publishing = threading.Event()
        self.close_on_subscribe = False  # a bridge that drops a client as it subscribes
        self.subscribes = 0
        self._connections: set[ServerConnection] = set()
        self._loop = asyncio.new_event_loop()
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self._thread.start()
        assert started.wait(10), "the test bridge did not start"

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._server = await serve(self._serve, "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]
            started.set()
            await self._server.serve_forever()

        self._loop.run_until_complete(main())

    async def _serve(self, ws: ServerConnection) -> None:
        self._connections.add(ws)
        try:
            async for raw in ws:
                msg = json.loads(raw)
                if msg.get("op") == "subscribe" and msg.get("topic", "").endswith("joint_states"):
                    self.subscribes += 1
                    if self.close_on_subscribe:
                        await ws.close()
                        return
                    asyncio.ensure_future(self._publish(ws, msg["topic"]))
        finally:
            self._connections.discard(ws)

    async def _publish(self, ws: ServerConnection, topic: str) -> None:
        while ws.state.name == "OPEN":
            if self.publishing.is_set():
                await ws.send(json.dumps({"op": "publish", "topic": topic, "msg": {
                    "header": {"stamp": {"sec": int(time.time()), "nanosec": 0}, "frame_id": ""},
                    "name": JOINTS, "position": HOME, "velocity": [0.0] * 7, "effort": []}}))
            await asyncio.sleep(0.02)

    def drop(self) -> None:
        async def close_all() -> None:
            for ws in list(self._connections):
                await ws.close()

        asyncio.run_coroutine_threadsafe(close_all(), self._loop).result(10)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._server.close)
        self._thread.join(10)


@pytest.fixture
def bridge() -> Iterator[GatedBridge]:
    b = GatedBridge()
    yield b
    b.stop()


def _until(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.02)


def _lost(driver: RosDriver) -> bool:
    try:
        driver.check_link()
    except ConnectionLost as exc:
        assert "reconnecting" in str(exc), exc
        return True
    return False


def _driver(port: int, **kwargs) -> RosDriver:
    desc = describe_from_config("press", load_config(CONFIGS / "kuka_ros.yaml").robots["press"])
    return RosDriver("127.0.0.1", port, desc, RosNames("/press/joint_states", "/press/follow_joint_trajectory"),
                     **kwargs)


def test_a_bridge_that_closes_before_the_first_joint_state_is_named_at_once(bridge):
    bridge.close_on_subscribe = True
    driver = _driver(bridge.port, timeout=20.0)
    started = time.monotonic()
    with pytest.raises(ConnectionLost, match="closed the connection before the first /press/joint_states"):
        driver.connect()
    assert time.monotonic() - started < 10  # not the whole timeout
    driver.close()


def test_a_reconnected_link_is_up_only_once_its_first_joint_state_is_in(bridge):
    # stale_after long: the last joint state of the old link stays fresh all through the test
    driver = _driver(bridge.port, timeout=20.0, stale_after=60.0)
    bridge.publishing.set()
    driver.connect()
    try:
        assert driver.joint_state().positions == pytest.approx(HOME)
        bridge.publishing.clear()
        bridge.drop()
        _until(lambda: _lost(driver))  # the first check that sees it starts the reconnection beside us
        _until(lambda: bridge.subscribes == 2)  # the new link is open and subscribed, no joint state yet
        time.sleep(0.3)
        for _ in range(3):  # a caller meanwhile is told the link is not up: it never reads a state not come
            with pytest.raises(ConnectionLost, match="reconnecting"):
                driver.joint_state()
        bridge.publishing.set()
        until_linked(driver)
        assert driver.joint_state().positions == pytest.approx(HOME)
    finally:
        driver.close()
