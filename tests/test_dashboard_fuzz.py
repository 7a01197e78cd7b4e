"""A short hypothesis campaign against a running ``cellctl dashboard`` (a real uvicorn on
loopback, with a users file): malformed requests to every endpoint and malformed websocket frames
each get an error — never a 5xx, never a dead server — and the page keeps serving. Derandomised:
the same frames every run."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.ci_log import to_ci_log
from tests.conftest import CONFIGS
from tests.strategies import values

ROOT = Path(__file__).parents[1]
pytestmark = [pytest.mark.process, pytest.mark.fuzz, pytest.mark.timeout(600)]
CAMPAIGN = dict(max_examples=300, derandomize=True, deadline=None, database=None, print_blob=False,
                suppress_health_check=list(HealthCheck))
PATHS = ["/", "/login", "/logout", "/api/state", "/api/cells/pack/command", "/api/cells/press/command",
         "/api/cells/%00/command", "/api/cells/" + "x" * 3000 + "/command", "/ws", "/healthz", "/static/app.js",
         "/static/../../etc/passwd", "/static/%2e%2e/%2e%2e/etc/passwd", "/nope"]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz-page")
    (tmp / "line.yaml").write_text((CONFIGS / "fixed_ports_line.yaml").read_text())
    users = tmp / "users.txt"
    subprocess.run([sys.executable, "-m", "cellctl", "users", "add", "ana", "--role", "operator", "--file", str(users),
                    "--password-stdin"], input="ana-secret-1\n", check=True, capture_output=True, text=True, cwd=ROOT)
    log = tmp / "dashboard.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "cellctl", "dashboard", str(tmp / "line.yaml"), "--port", "0",
                                 "--users", str(users)], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while not any(x.startswith("CELLCTL-DASHBOARD-READY ") for x in log.read_text().splitlines()):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        ready = next(x for x in log.read_text().splitlines() if x.startswith("CELLCTL-DASHBOARD-READY "))
        yield json.loads(ready.split(" ", 1)[1])["url"].rstrip("/"), proc
    finally:
        proc.terminate()
        proc.wait(15)


def _alive(url: str) -> None:
    import httpx

    assert httpx.get(f"{url}/healthz", timeout=10).text == "ok"


def _session(url: str) -> str:
    import httpx

    r = httpx.post(f"{url}/login", json={"name": "ana", "password": "ana-secret-1"}, headers={"Origin": url},
                   timeout=30)
    assert r.status_code == 200, r.text
    return r.cookies["cellctl_session"]


bodies = st.one_of(st.binary(max_size=6000), values(json_safe=True).map(lambda v: json.dumps(v).encode()),
                   st.fixed_dictionaries({"command": values(json_safe=True)}).map(lambda v: json.dumps(v).encode()),
                   st.fixed_dictionaries({"name": values(json_safe=True), "password": values(json_safe=True)})
                   .map(lambda v: json.dumps(v).encode()))
header_values = st.one_of(st.sampled_from(["application/json", "text/plain", "application/json; charset=utf-8",
                                           "multipart/form-data; boundary=x", ""]), st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=200))


def test_malformed_requests_get_an_error_and_the_page_keeps_serving(page, pytestconfig):
    import httpx

    url, proc = page
    cookie = _session(url)
    seen: dict[int, int] = {}

    @settings(**CAMPAIGN)
    @given(method=st.one_of(st.just("POST"), st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS",
                                                              "HEAD"])),
           path=st.one_of(st.sampled_from(PATHS[:6]), st.sampled_from(PATHS), st.text(max_size=60).map(lambda t: "/" + t)),
           content_type=header_values, origin=st.one_of(st.just(url), header_values), logged_in=st.booleans(),
           body=bodies)
    def one(method, path, content_type, origin, logged_in, body):
        headers = {"Content-Type": content_type, "Origin": origin}
        cookies = {"cellctl_session": cookie} if logged_in else {}
        try:
            with httpx.Client(base_url=url, cookies=cookies, timeout=10) as client:
                r = client.request(method, path, content=body, headers=headers)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, httpx.LocalProtocolError):
            return  # the client would not send it: nothing reached the server
        seen[r.status_code] = seen.get(r.status_code, 0) + 1
        assert r.status_code < 500, f"{method} {path!r}: {r.status_code} {r.text[:300]}"

    one()
    _alive(url)
    assert proc.poll() is None
    to_ci_log(pytestconfig, f"dashboard fuzz, HTTP: {sum(seen.values())} requests, statuses {dict(sorted(seen.items()))}; "
                            f"still serving")


def test_malformed_websocket_frames_and_raw_bytes_get_an_error_and_the_page_keeps_serving(page, pytestconfig):
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    url, proc = page
    cookie = _session(url)
    ws_url = url.replace("http://", "ws://") + "/ws"
    answered = closed = 0

    @settings(**CAMPAIGN)
    @given(frames=st.lists(st.one_of(st.binary(max_size=2000), st.text(max_size=2000),
                                     values(json_safe=True).map(json.dumps),
                                     st.integers(64 * 1024 + 1, 300_000).map(lambda n: b"x" * n)),
                           min_size=1, max_size=4))
    def one(frames):
        nonlocal answered, closed
        with connect(ws_url, additional_headers={"Cookie": f"cellctl_session={cookie}", "Origin": url},
                     open_timeout=10, max_size=2**22) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "state"
            try:
                for frame in frames:
                    ws.send(frame)
                    reply = json.loads(ws.recv(timeout=10))
                    while reply["type"] == "state":  # a push can come between
                        reply = json.loads(ws.recv(timeout=10))
                    assert reply["type"] in ("error", "pong")
                    answered += 1
            except ConnectionClosed as exc:  # a frame over the size limit: closed with 1009, others unharmed
                assert exc.rcvd is not None and exc.rcvd.code == 1009, exc
                closed += 1

    one()
    raw = 0
    host, port = url.removeprefix("http://").split(":")
    for garbage in (b"\x00" * 100, b"GET / HTTP/9.9\r\n\r\n", b"POST /login HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
                    b"\xff\xfe" * 5000, b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n\r\n"):
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(garbage)
            s.shutdown(socket.SHUT_WR)
            s.recv(4096)
            raw += 1
    _alive(url)
    assert proc.poll() is None
    to_ci_log(pytestconfig, f"dashboard fuzz, websocket: {answered} frames answered with an error or pong, {closed} "
                            f"connections closed for an oversized frame (1009), {raw} raw garbage connections; "
                            f"still serving")
