"""A real OctoPrint with its built-in Virtual Printer, started by a test on loopback: seeded config
(first run off, a user with an API key, the virtual printer connected to port VIRTUAL), in its own
virtualenv (``make test`` installs it under .cache/octoprint: its pins may clash with ours)."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[2]
OCTOPRINT = ROOT / ".cache" / "octoprint" / "venv" / "bin" / "octoprint"
START_S = 90.0  # wall s for OctoPrint to come up with its printer Operational (~10 s here)

CONFIG = {
    "server": {"firstRun": False, "onlineCheck": {"enabled": False}, "pluginBlacklist": {"enabled": False},
               "seenWizards": {"corewizard": 4}},
    "accessControl": {"autologinLocal": False},
    "plugins": {"virtual_printer": {"enabled": True, "waitInterval": 0.2}, "tracking": {"enabled": False},
                "announcements": {"enabled_channels": []}},
    "serial": {"autoconnect": True, "port": "VIRTUAL", "baudrate": 115200, "additionalPorts": []},
}


@dataclass
class OctoPrint:
    url: str
    key_file: Path
    key: str
    basedir: Path
    proc: subprocess.Popen

    def api(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        """As the printer's own operator would, through its web API (a cancel, a disconnect)."""
        return httpx.request(method, self.url + path, headers={"X-Api-Key": self.key}, timeout=10, **kwargs)

    def state(self) -> str:
        return self.api("GET", "/api/job").json()["state"]

    def pause(self) -> None:
        """The network goes away: the process stops answering (SIGSTOP), its print stops with it."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        self.resume()
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def gcode(path: Path, lines: int = 150) -> Path:
    """A job the virtual printer takes a few seconds over (it throttles each line)."""
    path.write_text("G28\n" + "".join(f"G1 X{i % 100} Y{i % 50} F3000\n" for i in range(lines)))
    return path


def start_octoprint(basedir: Path) -> OctoPrint:
    if not OCTOPRINT.exists():
        raise AssertionError(f"{OCTOPRINT} is missing: `make test` installs OctoPrint into .cache/octoprint")
    basedir.mkdir(parents=True, exist_ok=True)
    (basedir / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    subprocess.run([str(OCTOPRINT), "--basedir", str(basedir), "user", "add", "--admin", "--password",
                    secrets.token_hex(8), "cellctl"], check=True, capture_output=True, timeout=60)
    key = secrets.token_hex(16).upper()
    users = yaml.safe_load((basedir / "users.yaml").read_text())
    users["cellctl"]["apikey"] = key
    (basedir / "users.yaml").write_text(yaml.safe_dump(users))
    key_file = basedir / "cellctl.apikey"
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(basedir / "serve.log", "w")  # noqa: SIM115 - kept open for the process's life
    proc = subprocess.Popen([str(OCTOPRINT), "--basedir", str(basedir), "serve", "--iknowwhatimdoing",
                             "--host", "127.0.0.1", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    octo = OctoPrint(f"http://127.0.0.1:{port}", key_file, key, basedir, proc)
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"OctoPrint exited with {proc.returncode}: see {basedir / 'serve.log'}")
        try:
            if octo.state() == "Operational":
                return octo
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.3)
    octo.stop()
    raise AssertionError(f"OctoPrint's virtual printer not Operational after {START_S:.0f}s: see {basedir / 'serve.log'}")
