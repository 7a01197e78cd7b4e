"""``cellctl opcua TARGET`` (and the server ``cellctl run --opcua PORT`` and ``cellctl cell run
--opcua PORT`` start): a line's cells as OPC 30050 PackML objects on one OPC UA endpoint.

One server per line, a process of its own beside the launcher (or beside a cell run one per PC):
it sees the cells as any outside client does — status sockets, the run directory's events — so a
server that dies takes nothing else with it and is restarted like the operator's page, and a cell
is never called into from the server's event loop.

Security as elsewhere in the project: on loopback with no users file, security policy None and
anonymous sessions that may command. Any other address needs a users file, a certificate and key
(``cellctl certs generate --opcua``) and a trust directory of client application certificates:
then only Basic256Sha256 (sign and encrypt) is offered, unknown client certificates are rejected
and users log in (an anonymous session, where ``--anonymous`` allows it, reads only). The server
announces itself once it serves (``OPCUA_READY`` on stdout; the line's or the cell's own server also in
``opcua.json`` in the run directory: ``{"url", "secured", "login", "cells", "pid"}``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from cellctl.certs import CertError
from cellctl.config.line import OpcuaConfig
from cellctl.config.loader import load_config
from cellctl.drivers.curve import Keys, is_loopback
from cellctl.line.addresses import resolve
from cellctl.line.feeds import Feeds
from cellctl.processes.children import OPCUA_READY
from cellctl.rundir import RunDir
from cellctl.users import Users, UsersFileError

log = logging.getLogger("cellctl.opcua")

PARENT_EVERY_S = 0.5
MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # no request makes the server hold more
MAX_CONNECTIONS = 64
MAX_QUEUE = 1000  # a monitored item's queue
MAX_SESSION_TIMEOUT_MS = 120_000


class OpcuaRefused(ValueError):
    """A way of serving that is not allowed or cannot work: one line saying why."""


@dataclass(frozen=True)
class OpcuaServing:
    target: str  # RUN_DIR or CONFIG
    cell: str | None = None  # one cell of it (`cellctl cell run --opcua`)
    host: str = "127.0.0.1"
    port: int = 4840
    users: str | None = None
    cert: str | None = None
    key: str | None = None
    trust: str | None = None  # a directory of trusted client application certificates (DER or PEM)
    anonymous: bool = False  # off loopback, or with users: anonymous sessions may read
    keys: Keys | None = None  # CURVE, for a secured line's cells
    parent: int | None = None  # exit when this process is gone (the cell that started the server)
    announce: bool = False  # write opcua.json in the run directory (the line's or the cell's own server)

    @property
    def secured(self) -> bool:
        return bool(self.cert)


def serving(target: str, cell: str | None = None, **given: object) -> OpcuaServing:
    """What to serve: the flags given (None: not given), else the target's config's ``opcua:``."""
    config_path = RunDir(Path(target)).line_config if Path(target).is_dir() else Path(target)
    section = load_config(config_path).opcua if config_path.is_file() else OpcuaConfig()
    defaults = {k: getattr(section, k) for k in ("host", "users", "cert", "key", "trust", "anonymous")}
    return OpcuaServing(target, cell, **{**defaults, **{k: v for k, v in given.items() if v is not None}})


def check(s: OpcuaServing) -> Users | None:
    """The users, or OpcuaRefused / UsersFileError / CertError naming what is wrong."""
    if not is_loopback(s.host) and not (s.users and s.cert and s.key and s.trust):
        raise OpcuaRefused(f"--host {s.host} is not loopback: give --users FILE (`cellctl users add NAME --role "
                           f"operator`), --cert/--key (`cellctl certs generate --opcua --host {s.host}`) and --trust "
                           f"DIR (the client applications' certificates): an open OPC UA server on the network lets "
                           f"anyone on it stop the line")
    if bool(s.cert) != bool(s.key):
        raise OpcuaRefused("give --cert and --key together")
    if s.cert and not s.trust:
        raise OpcuaRefused("--cert needs --trust DIR: the client application certificates this server accepts")
    for path in (s.cert, s.key):
        if path and not Path(path).is_file():
            raise CertError(f"{path}: no such file (make a pair with `cellctl certs generate --opcua --host HOST`)")
    if s.trust and not Path(s.trust).is_dir():
        raise OpcuaRefused(f"--trust {s.trust}: no such directory (put the client applications' certificates in it)")
    if not s.users:
        return None
    users = Users.load(s.users)
    if not users.entries:
        raise UsersFileError(f"{s.users}: no users in it (add one with `cellctl users add NAME --role operator "
                             f"--file {s.users}`)")
    return users


async def _server(s: OpcuaServing, users: Users | None, title: str):
    from asyncua import Server, ua
    from asyncua.crypto.truststore import TrustStore
    from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions

    from cellctl.opcua.access import Sessions

    anonymous_commands = users is None and not s.secured
    sessions = Sessions(users, anonymous=anonymous_commands or s.anonymous, anonymous_commands=anonymous_commands)
    server = Server(user_manager=sessions)
    server.limits.max_message_size = MAX_MESSAGE_BYTES
    server.limits.max_chunk_count = MAX_MESSAGE_BYTES // server.limits.max_recv_buffer + 1
    await server.init()
    server.iserver.max_connections = MAX_CONNECTIONS
    server.iserver.max_monitored_item_queue_size = MAX_QUEUE
    server.iserver.max_session_timeout_ms = MAX_SESSION_TIMEOUT_MS
    host = f"[{s.host}]" if ":" in s.host else s.host
    server.set_endpoint(f"opc.tcp://{host}:{s.port}/cellctl")
    server.set_server_name(f"cellctl {title}")
    tokens = [ua.UserNameIdentityToken] if users is not None else []
    if sessions.anonymous:
        tokens.append(ua.AnonymousIdentityToken)
    server.set_identity_tokens(tokens)
    if s.secured:
        await server.load_certificate(s.cert)
        await server.load_private_key(s.key)
        await server.set_application_uri(_application_uri(s.cert))
        server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt], permission_ruleset=sessions)
        store = TrustStore([Path(s.trust)], [])
        await store.load()
        options = (CertificateValidatorOptions.EXT_VALIDATION | CertificateValidatorOptions.TRUSTED
                   | CertificateValidatorOptions.PEER_CLIENT)
        server.set_certificate_validator(CertificateValidator(options, store))
    else:
        await server.set_application_uri("urn:cellctl:opcua")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity], permission_ruleset=sessions)
    return server


def _application_uri(cert: str) -> str:
    """The URI in the certificate's subject alternative names (OPC UA clients check the server's)."""
    from cryptography import x509

    data = Path(cert).read_bytes()
    c = x509.load_pem_x509_certificate(data) if data.startswith(b"-----") else x509.load_der_x509_certificate(data)
    try:
        uris = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    if not uris:
        raise CertError(f"{cert}: no application URI in its subject alternative names (an OPC UA server certificate "
                        f"has one: `cellctl certs generate --opcua`)")
    return uris[0]


def serve(s: OpcuaServing) -> int:
    users = check(s)
    logging.getLogger("asyncua").setLevel(logging.ERROR)  # its per-request info is not a technician's
    if s.cell is not None and Path(s.target).is_dir():  # a cell's own run directory: it may not have started yet
        cells, run = [s.cell], RunDir(Path(s.target))
    else:
        addresses, run = resolve(s.target, s.cell)
        cells = [a.cell for a in addresses]
    title = f"run {run.path.name}" if run is not None else Path(s.target).name
    asyncio.run(_serve(s, users, cells, title, run))
    return 0


async def _serve(s: OpcuaServing, users: Users | None, cells: list[str], title: str, run) -> None:
    from cellctl.opcua.space import Space

    server = await _server(s, users, title)
    feeds = Feeds(s.target, None, s.keys, by="opcua")  # type: ignore[arg-type]  # the view follows
    space = Space(server, cells, feeds, from_events=run is not None)
    feeds.view = space
    await space.build()
    _check_port(s.host, s.port)
    await server.start()
    try:
        port = server.bserver.port  # what an ephemeral 0 became
        host = f"[{s.host}]" if ":" in s.host else s.host
        info = {"url": f"opc.tcp://{host}:{port}/cellctl", "secured": s.secured, "login": users is not None,
                "cells": cells, "pid": os.getpid()}
        if run is not None and s.announce:
            run.write_json(run.opcua, info)
        print(f"{OPCUA_READY}{json.dumps(info)}", flush=True)
        log.info(f"OPC UA (OPC 30050 PackML) for {', '.join(cells)}: {info['url']}"
                 + (" (Basic256Sha256, users log in)" if s.secured else ""))
        tasks = [asyncio.create_task(t) for t in [*feeds.tasks(), space.publish(),
                                                  *([_watch(s.parent)] if s.parent else [])]]
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for task in done:
            task.result()  # a feed's or the publisher's error ends the server with its traceback
    finally:
        if run is not None and s.announce:
            run.opcua.unlink(missing_ok=True)
        await server.stop()


def _check_port(host: str, port: int) -> None:
    """A port in use is one clear line, before asyncua logs its own traceback about it."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise OpcuaRefused(f"cannot serve OPC UA on {host}:{port}: {exc.strerror}") from None


async def _watch(parent: int) -> None:
    """Return once ``parent`` is gone (it was SIGKILLed, say): the server must not outlive the cell
    it serves and keep its port from the cell's next start."""
    while os.getppid() == parent:
        await asyncio.sleep(PARENT_EVERY_S)
    log.info(f"opcua: the process that started this server ({parent}) is gone: stopping")
