"""``cellctl dashboard TARGET`` (and the page ``cellctl run --dashboard`` starts): who may bind
where, and the web server.

On loopback the page may be open. Any other address needs a users file with at least one user and
a TLS certificate (``cellctl certs generate``), or the server refuses to start and says so: an
open page on the cell network lets anyone on it stop the line. The socket is bound here, before
the server starts, so a port in use is one clear line, and the page's URL is announced once it
serves (``DASHBOARD_READY`` on stdout; ``dashboard.json`` in a run directory).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from dataclasses import dataclass
from pathlib import Path

from cellctl.certs import check_pair
from cellctl.config.loader import load_config
from cellctl.dashboard.access import Access
from cellctl.dashboard.app import Page
from cellctl.line.feeds import Feeds
from cellctl.dashboard.view import LineView
from cellctl.drivers.curve import Keys, is_loopback
from cellctl.line.addresses import resolve
from cellctl.processes.children import DASHBOARD_READY
from cellctl.users import Users, UsersFileError

log = logging.getLogger("cellctl.dashboard")

WS_MAX_BYTES = 64 * 1024  # a websocket frame from a page: it sends pings only
MAX_CONNECTIONS = 200


class DashboardRefused(ValueError):
    """A way of serving the page that is not allowed or cannot work: one line saying why."""


@dataclass(frozen=True)
class Serving:
    target: str  # RUN_DIR or CONFIG
    host: str = "127.0.0.1"
    port: int = 0
    users: str | None = None
    cert: str | None = None
    key: str | None = None
    keys: Keys | None = None  # CURVE, for a secured line's cells


def prepare(s: Serving) -> tuple[Page, socket.socket]:
    """The page and its bound socket, or DashboardRefused."""
    local = is_loopback(s.host)
    if not local and not (s.users and s.cert and s.key):
        raise DashboardRefused(f"--host {s.host} is not loopback: give --users FILE (`cellctl users add NAME --role "
                               f"operator`) and --cert/--key (`cellctl certs generate --host {s.host}`): an open page "
                               f"on the network lets anyone on it stop the line")
    if bool(s.cert) != bool(s.key):
        raise DashboardRefused("give --cert and --key together")
    if s.cert:
        check_pair(s.cert, s.key)
    users = None
    if s.users:
        users = Users.load(s.users)
        if not users.entries:
            raise UsersFileError(f"{s.users}: no users in it (add one with `cellctl users add NAME --role operator "
                                 f"--file {s.users}`)")
    addresses, run = resolve(s.target, None)
    config_path = run.line_config if run is not None else Path(s.target)
    config = load_config(config_path)
    launched = Path(run.read_json(run.launch).get("config") or config_path).name if run is not None else ""
    title = f"{launched} (run {run.path.name})" if run is not None else config_path.name
    view = LineView(config, title, derive_events=run is None)
    feeds = Feeds(s.target, view, s.keys)
    page = Page(view, feeds, Access(users), https=bool(s.cert))
    sock = socket.socket(socket.AF_INET6 if ":" in s.host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((s.host, s.port))
    except OSError as exc:
        sock.close()
        raise DashboardRefused(f"cannot bind {s.host}:{s.port}: {exc.strerror}") from None
    return page, sock


def serve(s: Serving) -> int:
    import uvicorn

    page, sock = prepare(s)
    host, port = sock.getsockname()[:2]
    scheme = "https" if s.cert else "http"
    url = f"{scheme}://{'[' + host + ']' if ':' in host else host}:{port}/"
    config = uvicorn.Config(page.app(), ssl_certfile=s.cert, ssl_keyfile=s.key, ws_max_size=WS_MAX_BYTES,
                            limit_concurrency=MAX_CONNECTIONS, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=2, ws_ping_interval=20, ws_ping_timeout=20)
    server = uvicorn.Server(config)
    run = page.feeds.run

    async def main() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.05)
        if server.started:
            info = {"url": url, "login": s.users is not None}
            if run is not None:
                run.write_json(run.dashboard, info)
            print(f"{DASHBOARD_READY}{json.dumps(info)}", flush=True)
            log.info(f"the operator's page: {url}" + (" (log in: users of " + s.users + ")" if s.users else ""))
        await task

    try:
        asyncio.run(main())
    finally:
        if run is not None:
            run.dashboard.unlink(missing_ok=True)  # no URL left behind that nothing serves
    return 0
