"""A real MQTT broker for the tests: Debian's mosquitto on a free loopback port, with a store kept on
disk (saved every second) and QoS 0 messages queued for a persistent session, so a recorder that was
subscribed before a broker kill still gets what is published after the broker comes back on the
same port. Killed and restarted on demand; always stopped."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def need_mosquitto() -> None:
    if os.access(MOSQUITTO, os.X_OK):
        return
    why = "needs Debian's mosquitto (apt-get install mosquitto)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why}; under CI=true this test must run")
    pytest.skip(why)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mosquitto:
    def __init__(self, directory: Path) -> None:
        need_mosquitto()
        self.directory = directory
        self.port = _free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        directory.mkdir(parents=True, exist_ok=True)
        self.conf = directory / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                             f"persistence_location {directory}/\nautosave_interval 1\nqueue_qos0_messages true\n"
                             f"log_dest file {directory}/mosquitto.log\n")
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.directory / "mosquitto.log").read_text()
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return
            time.sleep(0.05)
        raise AssertionError(f"mosquitto did not listen on {self.port} within {timeout}s")

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def mosquitto(directory: Path):
    broker = Mosquitto(directory)
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()
