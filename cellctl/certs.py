"""A TLS certificate for a server a technician's tablet reaches over the network — the operator's
page off loopback: ``cellctl certs generate --host NAME|IP``; and an OPC UA application instance
certificate for the OPC UA server (``--opcua``): RSA 2048 as Basic256Sha256 needs, with the
application URI in its subject alternative names, made by asyncua's own generator (OPC 10000-6).

Self-signed, for the names and addresses the server is reached by (subject alternative names), an
ECDSA P-256 key written with mode 600. A site with its own certificate authority gives its own
files instead (``--cert``/``--key``); this one is for a pilot cell with none: the browser asks once
to trust it. Built with ``cryptography`` (pyca), not by hand.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

VALID_DAYS = 825  # the longest browsers accept for a server certificate


class CertError(ValueError):
    """A certificate or key file missing or unreadable, or a bad host name: one line naming it."""


def _name(host: str):
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        if not host or len(host) > 253 or not all(part and len(part) <= 63 and part.replace("-", "").isalnum()
                                                  for part in host.split(".")):
            raise CertError(f"{host!r}: expected a host name or an IP address") from None
        return x509.DNSName(host)


def generate(directory: str | Path, hosts: list[str], name: str = "cellctl") -> tuple[Path, Path]:
    """``DIRECTORY/NAME.crt`` and ``NAME.key`` for ``hosts`` (localhost and 127.0.0.1 always)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    names = [_name(h) for h in dict.fromkeys([*hosts, "localhost", "127.0.0.1"])]
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0] if hosts else "localhost"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cellctl")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    return _write(Path(directory) / f"{name}.crt", cert.public_bytes(serialization.Encoding.PEM),
                  Path(directory) / f"{name}.key", key.private_bytes(serialization.Encoding.PEM,
                                                                    serialization.PrivateFormat.PKCS8,
                                                                    serialization.NoEncryption()))


def _write(cert: Path, cert_bytes: bytes, key: Path, key_bytes: bytes) -> tuple[Path, Path]:
    """The certificate, and its key with mode 600 from the moment it exists."""
    cert.parent.mkdir(parents=True, exist_ok=True)
    cert.write_bytes(cert_bytes)
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_bytes)
    return cert, key


def application_uri(host: str) -> str:
    """The OPC UA server's application URI on ``host`` (clients check it against the certificate)."""
    return f"urn:{host}:cellctl:opcua"


def generate_opcua(directory: str | Path, hosts: list[str], name: str = "opcua") -> tuple[Path, Path]:
    """``DIRECTORY/NAME.der`` (the certificate, DER as OPC UA tools expect) and ``NAME.pem`` (its key)."""
    from asyncua.crypto.cert_gen import dump_private_key_as_pem, generate_private_key, generate_self_signed_app_certificate
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID

    names = [_name(h) for h in dict.fromkeys([*hosts, "localhost", "127.0.0.1"])]
    host = hosts[0] if hosts else "localhost"
    key = generate_private_key()
    cert = generate_self_signed_app_certificate(
        key, f"cellctl OPC UA server {host}", {"organizationName": "cellctl"},
        [x509.UniformResourceIdentifier(application_uri(host)), *names],
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH], days=VALID_DAYS)
    return _write(Path(directory) / f"{name}.der", cert.public_bytes(serialization.Encoding.DER),
                  Path(directory) / f"{name}.pem", dump_private_key_as_pem(key))


def check_pair(cert: str | Path, key: str | Path) -> None:
    """Load the pair as the server will, so a wrong file fails at start with its name."""
    import ssl

    for path in (cert, key):
        if not Path(path).is_file():
            raise CertError(f"{path}: no such file (make a pair with `cellctl certs generate --host HOST`)")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(str(cert), str(key))
    except (ssl.SSLError, OSError) as exc:
        raise CertError(f"{cert} / {key}: not a matching PEM certificate and key ({exc})") from None
