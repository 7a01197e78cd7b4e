"""``cellctl mqtt TARGET --url URL`` (and the publisher ``--mqtt URL`` on ``cellctl run`` and
``cellctl cell run`` starts): the line as a Sparkplug B edge node on an MQTT broker.

A process of its own beside the launcher (or a cell run alone), like the page and OPC UA: it reads
the cells as any client does and publishes through ``aiomqtt`` (on Eclipse paho), so a slow or gone
broker never touches a cell. It announces itself once set up — before the broker answers, since a
line must run without its broker (``MQTT_READY`` on stdout; ``mqtt.json`` in the run directory for
the line's or the cell's own publisher) — and reconnects for ever with a back-off, each time with a
new ``bdSeq`` (kept in the run directory, so a restarted publisher never reuses its last one).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cellctl.config.line import MqttConfig
from cellctl.config.loader import load_config
from cellctl.drivers.curve import Keys, is_loopback
from cellctl.line.addresses import resolve
from cellctl.line.feeds import Feeds
from cellctl.mqtt.edge import EdgeNode, publish_until
from cellctl.mqtt.sparkplug import MAX_SEQ, Topics
from cellctl.processes.children import MQTT_READY
from cellctl.rundir import RunDir
from cellctl.users import Users, UsersFileError

log = logging.getLogger("cellctl.mqtt")

RETRY_S, MAX_RETRY_S = 0.5, 5.0
KEEPALIVE_S = 10
PAHO_QUEUE = 100  # messages paho holds for the socket; ours wait in the edge node's bounded outbox
PARENT_EVERY_S = 0.5


class MqttRefused(ValueError):
    """A way of publishing that is not allowed or cannot work: one line saying why."""


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, url: str) -> Broker:
        try:
            u = urlsplit(url)
            port = u.port
        except ValueError:
            u, port = None, None
        if u is None or u.scheme not in ("mqtt", "mqtts") or not u.hostname or u.path not in ("", "/"):
            raise MqttRefused(f"--mqtt {url}: expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (TLS)")
        return cls(u.hostname, port or (8883 if u.scheme == "mqtts" else 1883), u.scheme == "mqtts")


@dataclass(frozen=True)
class MqttServing:
    target: str  # RUN_DIR or CONFIG
    url: str
    config: MqttConfig
    edge: str
    cell: str | None = None
    keys: Keys | None = None  # CURVE, for a secured line's cells
    parent: int | None = None  # exit when this process is gone (the cell that started the publisher)
    announce: bool = False


def serving(target: str, url: str, cell: str | None = None, edge: str | None = None, **given: object) -> MqttServing:
    """The config's ``mqtt:`` section for TARGET, its edge node id (given, the section's, the cell's
    name, or the config file's name)."""
    path = Path(target)
    config_path = RunDir(path).line_config if path.is_dir() else path
    section = load_config(config_path).mqtt if config_path.is_file() else MqttConfig()
    if path.is_dir() and (launched := RunDir(path).read_json(RunDir(path).launch).get("config")):
        config_path = Path(launched)
    name = edge or section.edge or cell or config_path.stem
    name = "".join(c if c.isalnum() or c in "_.-" else "_" for c in name)[:64]
    return MqttServing(target, url, section, name, cell, **given)


def check(s: MqttServing) -> tuple[Broker, ssl.SSLContext | None, str | None]:
    """The broker, the TLS context and the password, or MqttRefused / UsersFileError saying why."""
    broker = Broker.parse(s.url)
    c = s.config
    context = None
    if broker.tls or c.tls is not None:
        context = ssl.create_default_context(cafile=c.tls.ca if c.tls else None)
        if c.tls and c.tls.cert:
            context.load_cert_chain(c.tls.cert, c.tls.key)
    password = None
    if c.password_file:
        try:
            password = Path(c.password_file).read_text().splitlines()[0].strip()
        except (OSError, IndexError):
            raise MqttRefused(f"mqtt.password_file {c.password_file}: not a readable file with the password on its "
                              f"first line") from None
    if c.commands:
        if not (is_loopback(broker.host) or (context is not None and c.username)):
            raise MqttRefused(f"mqtt.commands: the broker {broker.host} is not on loopback: commands need TLS "
                              f"(mqtts:// or mqtt.tls) and mqtt.username, or anyone on the network could stop the line")
        users = Users.load(c.users)
        user = next((u for u in users.users() if u.name == c.command_user), None)
        if user is None or not user.may_command:
            raise UsersFileError(f"{c.users}: mqtt.command_user {c.command_user!r} is not an operator there "
                                 f"(`cellctl users add {c.command_user} --role operator --file {c.users}`)")
    return broker, context, password


def serve(s: MqttServing) -> int:
    broker, context, password = check(s)
    if s.cell is not None and Path(s.target).is_dir():
        cells, run = [s.cell], RunDir(Path(s.target))
    else:
        addresses, run = resolve(s.target, s.cell)
        cells = [a.cell for a in addresses]
    logging.getLogger("aiomqtt").setLevel(logging.WARNING)
    asyncio.run(_serve(s, broker, context, password, cells, run))
    return 0


def _next_bd_seq(run: RunDir | None, last: int | None) -> int:
    """A new bdSeq for each MQTT session: after the last this process used, or the run's last one."""
    if last is None and run is not None:
        last = run.read_json(run.mqtt_bd_seq).get("bdSeq")
    now = 0 if last is None else (int(last) + 1) % MAX_SEQ
    if run is not None:
        run.write_json(run.mqtt_bd_seq, {"bdSeq": now})
    return now


async def _serve(s: MqttServing, broker: Broker, context: ssl.SSLContext | None, password: str | None,
                 cells: list[str], run: RunDir | None) -> None:
    c = s.config
    topics = Topics(c.group, s.edge)
    feeds = Feeds(s.target, None, s.keys, by="mqtt")  # type: ignore[arg-type]  # the node follows
    node = EdgeNode(topics, cells, from_events=run is not None, queue=c.queue,
                    commander=feeds if c.commands else None, command_user=c.command_user)
    feeds.view = node
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    info = {"url": s.url, "group": c.group, "edge": s.edge, "topics": f"spBv1.0/{c.group}/+/{s.edge}/#",
            "cells": cells, "pid": os.getpid()}
    if run is not None and s.announce:
        run.write_json(run.mqtt, info)
    print(f"{MQTT_READY}{json.dumps(info)}", flush=True)
    log.info(f"Sparkplug B for {', '.join(cells)}: {s.url}, topics {info['topics']}")
    feeding = [asyncio.create_task(t) for t in [*feeds.tasks(), *([_watch(s.parent, stop)] if s.parent else [])]]
    try:
        await _connected(s, broker, context, password, node, run, stop, feeds)
    finally:
        for task in feeding:
            task.cancel()
        if run is not None and s.announce:
            run.mqtt.unlink(missing_ok=True)


async def _connected(s: MqttServing, broker: Broker, context: ssl.SSLContext | None, password: str | None,
                     node: EdgeNode, run: RunDir | None, stop: asyncio.Event, feeds: Feeds) -> None:
    """Connect, publish, and reconnect with a back-off, until ``stop``; then say goodbye."""
    import aiomqtt

    topics, wait, bd_seq = node.topics, RETRY_S, None
    while not stop.is_set():
        bd_seq = node.bd_seq = _next_bd_seq(run, bd_seq)
        will = aiomqtt.Will(topics.node("NDEATH"), node.death(bd_seq), qos=1, retain=False)
        try:
            async with aiomqtt.Client(broker.host, broker.port, username=s.config.username, password=password,
                                      identifier=f"cellctl-{topics.group}-{topics.edge}", will=will,
                                      clean_session=True, keepalive=KEEPALIVE_S, tls_context=context,
                                      max_queued_outgoing_messages=PAHO_QUEUE, timeout=10) as client:
                await client.subscribe(topics.node("NCMD"))
                await client.subscribe(topics.device("DCMD", "+"))
                log.info(f"mqtt: connected to {s.url} (bdSeq {bd_seq}): NBIRTH and the DBIRTHs")
                wait = RETRY_S
                node.rebirth()
                commands = asyncio.create_task(_commands(client, node))
                try:
                    await publish_until(node, _sender(client), stop)
                    feeds.read_events()  # the last events (a cell's Complete) before the goodbye
                    await publish_until(node, _sender(client), stop)
                    await client.publish(topics.node("NDEATH"), node.death(bd_seq), qos=1)
                    log.info("mqtt: stopped: NDEATH published")
                finally:
                    commands.cancel()
        except aiomqtt.MqttError as exc:
            if stop.is_set():
                break
            log.warning(f"mqtt: broker {s.url}: {exc}; connecting again in {wait:g}s (a rebirth follows)")
            try:
                await asyncio.wait_for(stop.wait(), wait)
            except TimeoutError:
                pass
            wait = min(wait * 2, MAX_RETRY_S)


def _sender(client):
    """Publish at QoS 0 (Sparkplug's births and data); while paho's own queue is full, wait for room
    (the message keeps its seq) — our outbox meanwhile takes the changes and drops its oldest."""
    import aiomqtt
    import paho.mqtt.client as paho

    async def send(topic: str, payload: bytes) -> None:
        while True:
            try:
                await client.publish(topic, payload, qos=0)
                return
            except aiomqtt.MqttCodeError as exc:
                if exc.rc != paho.MQTT_ERR_QUEUE_SIZE:
                    raise
                await asyncio.sleep(0.05)
    return send


async def _commands(client, node: EdgeNode) -> None:
    async for message in client.messages:
        await node.on_command(str(message.topic), bytes(message.payload or b""))


async def _watch(parent: int, stop: asyncio.Event) -> None:
    """Stop once ``parent`` is gone (the cell that started this publisher was killed)."""
    while os.getppid() == parent:
        await asyncio.sleep(PARENT_EVERY_S)
    log.info(f"mqtt: the process that started this publisher ({parent}) is gone: stopping")
    stop.set()
