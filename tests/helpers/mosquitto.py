"""A real MQTT broker for the tests: Debian's mosquitto on a free loopback port (plain, or TLS with a
password), with a store kept on
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
    """``secured``: TLS with a CA of the test's own (``ca.pem``) and one user, ``cellctl`` with the
    password in ``password.txt``; anonymous clients refused."""

    def __init__(self, directory: Path, secured: bool = False) -> None:
        need_mosquitto()
        self.directory = directory
        self.port = _free_port()
        self.url = f"{'mqtts' if secured else 'mqtt'}://127.0.0.1:{self.port}"
        directory.mkdir(parents=True, exist_ok=True)
        self.conf = directory / "mosquitto.conf"
        conf = [f"listener {self.port} 127.0.0.1", f"allow_anonymous {'false' if secured else 'true'}",
                "persistence true", f"persistence_location {directory}/", "autosave_interval 1",
                "queue_qos0_messages true", f"log_dest file {directory}/mosquitto.log"]
        if os.getuid() == 0:  # as root mosquitto would become user mosquitto, who cannot read the test's files
            conf.append("user root")
        if secured:
            self.ca, cert, key = _tls_files(directory)
            self.password = directory / "password.txt"
            self.password.write_text("broker-secret-1\n")
            subprocess.run(["mosquitto_passwd", "-c", "-b", str(directory / "passwd"), "cellctl", "broker-secret-1"],
                           check=True, capture_output=True)
            conf += [f"cafile {self.ca}", f"certfile {cert}", f"keyfile {key}", f"password_file {directory / 'passwd'}"]
        self.conf.write_text("\n".join(conf) + "\n")
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


def _tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a broker certificate it signed, for 127.0.0.1 and localhost (cryptography, pyca)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def issue(subject: str, key, issuer_name, issuer_key, ca: bool) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name or name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        return builder.sign(issuer_key or key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = issue("cellctl test CA", ca_key, None, None, True)
    cert = issue("127.0.0.1", key, ca.subject, ca_key, False)
    paths = directory / "ca.pem", directory / "broker.pem", directory / "broker.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


@contextlib.contextmanager
def mosquitto(directory: Path, secured: bool = False):
    broker = Mosquitto(directory, secured)
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()
