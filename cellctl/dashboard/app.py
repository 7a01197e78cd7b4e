"""The operator's page as a Starlette application: the page and its assets (shipped in the wheel:
it works with no internet), a login, the line's snapshot, PackML commands, and a websocket that
pushes a new snapshot whenever the view changed.

    GET  /                     the page (to /login first when a login is needed)
    GET  /login, POST /login   {"name", "password"} → a session cookie, or 401
    POST /logout
    GET  /api/state            the snapshot (``LineView.snapshot``) and who is asking
    POST /api/cells/{cell}/command   {"command": "Hold"} → {"ok", "message"}: 200 queued, 409 refused
                               with the PackML reason, 403 an observer, 404 no such cell, 504 no answer
    WS   /ws                   {"type": "state", ...} on connect and on every change; a client's
                               frames are answered {"type": "error"} (or "pong" to {"type": "ping"})
    GET  /healthz              "ok" (no login): for a monitor

Every refusal is a JSON error with a message a person reads; a request the server cannot parse
never ends its serving. Requests that change something must be JSON from the page's own origin
(a cross-site form cannot send one, and a foreign ``Origin`` is refused), websockets too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from importlib import resources

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from cellctl.cell.packml import Command
from cellctl.dashboard.access import COOKIE, SESSION_S, Access
from cellctl.line.feeds import Feeds, Sent
from cellctl.dashboard.view import LineView

log = logging.getLogger("cellctl.dashboard")

OPERATOR_COMMANDS = (Command.START, Command.STOP, Command.HOLD, Command.UNHOLD, Command.RESET, Command.ABORT,
                     Command.CLEAR)  # Suspend and Unsuspend are the machine's own
MAX_BODY = 4096  # bytes of a JSON request
PUSH_EVERY_S = 0.25
SEND_TIMEOUT_S = 5.0  # a client that takes longer to take a snapshot is dropped
MAX_SOCKETS = 64
STATIC = resources.files("cellctl.dashboard") / "static"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")


@dataclass
class Page:
    view: LineView
    feeds: Feeds
    access: Access
    https: bool

    # -- helpers ---------------------------------------------------------------------------------
    def _user(self, request: Request | WebSocket):
        return self.access.user(request.cookies.get(COOKIE))

    @staticmethod
    def _same_origin(request: Request | WebSocket) -> bool:
        origin = request.headers.get("origin")
        if origin is None:
            return isinstance(request, Request)  # a websocket from a browser always says its origin
        scheme = "https" if request.url.scheme in ("https", "wss") else "http"
        return origin == f"{scheme}://{request.headers.get('host', '')}"

    @staticmethod
    async def _json(request: Request) -> dict | str:
        """The request's JSON object, or what is wrong with it."""
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return "expected Content-Type: application/json"
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return f"expected a body of at most {MAX_BODY} bytes"
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return "expected a JSON object"
        return data if isinstance(data, dict) else "expected a JSON object"

    @staticmethod
    def _error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"ok": False, "message": message}, status_code=status)

    # -- routes ----------------------------------------------------------------------------------
    async def index(self, request: Request) -> Response:
        if self._user(request) is None:
            return RedirectResponse("/login", status_code=303)
        return FileResponse(str(STATIC / "index.html"), headers={"Cache-Control": "no-store"})

    async def login_page(self, request: Request) -> Response:
        if self.access.open:
            return RedirectResponse("/", status_code=303)
        return FileResponse(str(STATIC / "login.html"), headers={"Cache-Control": "no-store"})

    async def login(self, request: Request) -> Response:
        if self.access.open:
            return self._error(400, "this page is open (loopback, no users file): no login needed")
        if not self._same_origin(request):
            return self._error(403, "a login must come from this page's own origin")
        data = await self._json(request)
        if isinstance(data, str):
            return self._error(400, data)
        name, password = data.get("name"), data.get("password")
        if not isinstance(name, str) or not isinstance(password, str):
            return self._error(400, 'expected {"name": "...", "password": "..."}')
        peer = request.client.host if request.client else "?"
        token = await asyncio.to_thread(self.access.login, name, password, peer)  # scrypt: off the event loop
        if token is None:
            return self._error(401, "wrong name or password (or too many tries: wait a minute)")
        response = JSONResponse({"ok": True, "message": f"logged in as {name}"})
        response.set_cookie(COOKIE, token, max_age=int(SESSION_S), httponly=True, samesite="strict", secure=self.https)
        return response

    async def logout(self, request: Request) -> Response:
        self.access.logout(request.cookies.get(COOKIE))
        response = JSONResponse({"ok": True, "message": "logged out"})
        response.delete_cookie(COOKIE)
        return response

    async def state(self, request: Request) -> Response:
        user = self._user(request)
        if user is None:
            return self._error(401, "log in first (/login)")
        return JSONResponse({**self.view.snapshot(), "user": self._who(user)})

    def _who(self, user) -> dict:
        return {"name": user.name, "role": str(user.role), "may_command": user.may_command,
                "commands": [str(c) for c in OPERATOR_COMMANDS] if user.may_command else [],
                "login": not self.access.open}

    async def command(self, request: Request) -> Response:
        user = self._user(request)
        if user is None:
            return self._error(401, "log in first (/login)")
        if not user.may_command:
            log.warning(f"dashboard: {user.name} ({user.role}) may not command: refused")
            return self._error(403, f"{user.name} is an observer: observers see but do not command")
        if not self._same_origin(request):
            return self._error(403, "a command must come from this page's own origin")
        cell = request.path_params["cell"]
        if cell not in self.view.cells:
            return self._error(404, f"no cell {cell[:64]!r}; cells: {', '.join(self.view.cells)}")
        data = await self._json(request)
        if isinstance(data, str):
            return self._error(400, data)
        command = data.get("command")
        if command not in [str(c) for c in OPERATOR_COMMANDS] or set(data) != {"command"}:
            return self._error(400, f'expected {{"command": one of {", ".join(OPERATOR_COMMANDS)}}} '
                                    f"(Suspend and Unsuspend are the machine's own)")
        sent, message = await self.feeds.command(cell, command, user.name)
        if sent == Sent.QUEUED:
            return JSONResponse({"ok": True, "message": message})
        return self._error(409 if sent == Sent.REFUSED else 504, message)

    async def healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok")

    async def socket(self, ws: WebSocket) -> None:
        user = self._user(ws)
        if user is None or not self._same_origin(ws):
            await ws.close(code=1008, reason="log in first, from this page's own origin")
            return
        if len(self._sockets) >= MAX_SOCKETS:
            await ws.close(code=1013, reason="too many pages open: try again later")
            return
        await ws.accept()
        self._sockets.add(ws)
        try:
            await ws.send_json({"type": "state", **self.view.snapshot(), "user": self._who(user)})
            while True:  # the page sends nothing but pings: anything else is answered, then ignored
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                text = message.get("text")
                try:
                    ping = json.loads(text) == {"type": "ping"} if text is not None else False
                except ValueError:
                    ping = False
                await ws.send_json({"type": "pong"} if ping else
                                   {"type": "error", "message": 'this socket only pushes; send {"type": "ping"} or '
                                                               "nothing"})
        except (WebSocketDisconnect, RuntimeError):
            return
        finally:
            self._sockets.discard(ws)

    async def push(self) -> None:
        """Send a new snapshot to every page when the view changed (at most every PUSH_EVERY_S)."""
        sent = -1
        while True:
            await asyncio.sleep(PUSH_EVERY_S)
            if self.view.version == sent or not self._sockets:
                continue
            sent = self.view.version
            snapshot = {"type": "state", **self.view.snapshot()}
            await asyncio.gather(*(self._send(ws, snapshot) for ws in list(self._sockets)))

    async def _send(self, ws: WebSocket, snapshot: dict) -> None:
        try:
            await asyncio.wait_for(ws.send_json(snapshot), SEND_TIMEOUT_S)
        except Exception:  # noqa: BLE001 - a slow or gone page is dropped, the others go on
            self._sockets.discard(ws)
            with contextlib.suppress(Exception):
                await ws.close()

    def __post_init__(self) -> None:
        self._sockets: set[WebSocket] = set()

    def app(self) -> Starlette:
        @contextlib.asynccontextmanager
        async def lifespan(_app):
            tasks = [asyncio.create_task(c) for c in [*self.feeds.tasks(), self.push()]]
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()

        routes = [Route("/", self.index), Route("/login", self.login_page, methods=["GET"]),
                  Route("/login", self.login, methods=["POST"]), Route("/logout", self.logout, methods=["POST"]),
                  Route("/api/state", self.state), Route("/api/cells/{cell}/command", self.command, methods=["POST"]),
                  Route("/healthz", self.healthz), WebSocketRoute("/ws", self.socket),
                  Mount("/static", StaticFiles(directory=str(STATIC)), name="static")]
        middleware = []
        if self.access.open:  # anyone at the PC may command: only by a loopback name, so that a web page
            # elsewhere cannot reach it through a name it points at 127.0.0.1 (DNS rebinding)
            middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=list(LOOPBACK_NAMES)))
        return Starlette(routes=routes, lifespan=lifespan, middleware=middleware)
