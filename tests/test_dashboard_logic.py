"""The operator's page's logic, in-process: users and their file, certificates, logins and who may
command, the view made from status replies, and the web application's answers to good and bad
requests (Starlette's test client: no socket, no browser)."""

from __future__ import annotations

import logging
import os

import pytest

from cellctl.certs import CertError, check_pair, generate
from cellctl.config.loader import load_config
from cellctl.dashboard.access import MAX_FAILURES, Access
from cellctl.dashboard.app import Page
from cellctl.line.feeds import Feeds
from cellctl.dashboard.view import LineView
from cellctl.users import Role, Users, UsersFileError
from tests.conftest import CONFIGS


@pytest.fixture
def users(tmp_path) -> Users:
    path = tmp_path / "users.txt"
    Users.load(path, missing_ok=True).with_user("ana", Role.OPERATOR, "ana-secret-1").with_user(
        "olaf", Role.OBSERVER, "olaf-secret-1").save()
    return Users.load(path)


def test_users_file_hashes_passwords_and_checks_them(users):
    text = users.path.read_text()
    assert "ana-secret-1" not in text and "scrypt$" in text
    assert os.stat(users.path).st_mode & 0o777 == 0o600
    assert users.check("ana", "ana-secret-1").role == Role.OPERATOR
    assert users.check("olaf", "olaf-secret-1").may_command is False
    assert users.check("ana", "wrong-password") is None
    assert users.check("nobody", "ana-secret-1") is None
    assert users.check("ana", "x" * 100_000) is None  # refused before hashing
    assert [u.name for u in users.without("olaf").users()] == ["ana"]


@pytest.mark.parametrize("line, expected", [
    ("ana:operator", "expected NAME:ROLE:HASH"),
    ("ana:admin:scrypt$16384$8$1$c2FsdHNhbHQ=$" + "A" * 43 + "=", "expected NAME:ROLE:HASH"),
    ("ana:operator:scrypt$1048576$8$1$c2FsdHNhbHQ=$" + "A" * 43 + "=", "expected NAME:ROLE:HASH"),  # 1 GiB a check
    ("ana:operator:md5$abc", "expected NAME:ROLE:HASH"),
])
def test_a_malformed_users_file_names_the_file_and_line(tmp_path, line, expected):
    path = tmp_path / "users.txt"
    path.write_text(f"# users\n{line}\n")
    with pytest.raises(UsersFileError, match=rf"{path}:2: {expected}"):
        Users.load(path)


def test_bad_names_and_short_passwords_are_refused(users):
    with pytest.raises(UsersFileError, match="expected a user name"):
        users.with_user("ana:operator", Role.OPERATOR, "long-enough-1")
    with pytest.raises(UsersFileError, match="expected a password of 8"):
        users.with_user("bo", Role.OPERATOR, "short")
    with pytest.raises(UsersFileError, match="no such users file"):
        Users.load(users.path.parent / "missing.txt")


def test_a_generated_certificate_loads_and_a_wrong_pair_is_named(tmp_path):
    crt, key = generate(tmp_path / "a", ["10.1.2.3", "cell-pc.local"])
    check_pair(crt, key)
    assert os.stat(key).st_mode & 0o777 == 0o600
    other_crt, _ = generate(tmp_path / "b", ["10.1.2.4"])
    with pytest.raises(CertError, match="not a matching PEM certificate and key"):
        check_pair(other_crt, key)
    with pytest.raises(CertError, match="expected a host name or an IP address"):
        generate(tmp_path / "c", ["bad host!"])


def test_logins_are_refused_and_logged_then_locked_after_repeated_failures(users, caplog):
    now = [0.0]
    access = Access(users, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="cellctl.dashboard"):
        assert access.login("ana", "nope-nope", "10.0.0.9") is None
    assert "login refused for 'ana' from 10.0.0.9: wrong name or password" in caplog.text
    for _ in range(MAX_FAILURES - 1):
        access.login("ana", "nope-nope", "10.0.0.9")
    assert access.login("ana", "ana-secret-1", "10.0.0.9") is None  # locked, even with the right password
    now[0] += 61
    token = access.login("ana", "ana-secret-1", "10.0.0.9")
    assert access.user(token).name == "ana" and access.user("forged") is None and access.user(None) is None
    now[0] += 13 * 3600
    assert access.user(token) is None  # the session ended with the shift
    assert Access(None).user(None).name == "local"  # an open loopback page


LINE = (CONFIGS / "fixed_ports_line.yaml").read_text()


@pytest.fixture
def line_config(tmp_path):
    path = tmp_path / "line.yaml"
    path.write_text(LINE)
    return path


def _status(cell: str, state: str, t: float, done: int = 0, **more) -> dict:
    return {"cell": cell, "state": state, "state_number": 6, "skill": None, "phase": None, "parts_done": done,
            "work_order": 3, "part": None, "sim_time": t, "fault": None, "fault_kind": None, "fault_source": None,
            "fault_since": None, "alarm_history": [], "waiting_for": None,
            "links": {"robot": {"peer": cell, "state": "up", "connected": True}}, **more}


def test_the_view_draws_the_line_in_flow_order_and_makes_events_from_status_differences(line_config):
    view = LineView(load_config(line_config), "line.yaml", derive_events=True)
    assert [i.get("cell") or i.get("station") for i in view.snapshot()["line"]] == \
        ["infeed", "press", "handoff", "pack", "outfeed"]
    view.on_status("pack", _status("pack", "Execute", 1.0))
    view.on_status("pack", _status("pack", "Execute", 11.0, done=1, part="part-2"))
    view.on_status("pack", _status("pack", "Execute", 21.0, done=2))
    held = _status("pack", "Held", 25.0, done=2, fault="Hold by the operator (ana via page)", fault_kind="operator",
                   fault_source="operator ana via page", fault_since="2026-12-05T10:00:00+00:00")
    view.on_status("pack", held)
    view.on_status("press", None, "cell press: not started (it has announced no control socket in run)")
    snap = view.snapshot()
    assert snap["cells"]["press"]["reachable"] is False and "not started" in snap["cells"]["press"]["silent"]
    assert snap["cells"]["pack"]["state"] == "Held" and snap["counters"]["parts_out"] == 2
    kpis = snap["kpis"]["cells"]["pack"]
    assert kpis["parts"] == 2 and kpis["cycle_s"] == 10.0 and kpis["lost_s"] == {}
    [alarm] = snap["alarms"]["active"]
    assert alarm["kind"] == "operator" and alarm["todo"].startswith("intended: press Unhold")
    assert alarm["text"] == "operator: Hold by the operator (ana via page)"  # the page shows it after the cell
    assert [e["text"] for e in snap["events"][:2]] == ["Hold by the operator (ana via page)".join(["operator: ", ""]),
                                                        "Execute → Held"]
    assert snap["parts"][0] == {"part": "part-2", "state": "in work", "cell": "pack", "station": None,
                                "sim_time": 11.0}


@pytest.fixture
def client(tmp_path, line_config, users):
    """The page with a login, over a config whose cells are not running (their status is silent)."""
    from starlette.testclient import TestClient

    view = LineView(load_config(line_config), "line.yaml", derive_events=True)
    page = Page(view, Feeds(str(line_config), view), Access(users), https=False)
    with TestClient(page.app(), base_url="http://testserver") as c:
        yield c


def _login(client, name: str, password: str):
    return client.post("/login", json={"name": name, "password": password},
                       headers={"Origin": "http://testserver"})


def test_without_a_login_nothing_is_shown_or_commanded(client):
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    assert client.get("/api/state").status_code == 401
    r = client.post("/api/cells/pack/command", json={"command": "Hold"})
    assert r.status_code == 401 and r.json()["message"] == "log in first (/login)"
    assert _login(client, "ana", "wrong-one").status_code == 401
    assert client.get("/healthz").text == "ok"


def test_an_observer_sees_but_cannot_command(client):
    assert _login(client, "olaf", "olaf-secret-1").status_code == 200
    state = client.get("/api/state").json()
    assert state["user"] == {"name": "olaf", "role": "observer", "may_command": False, "commands": [], "login": True}
    assert set(state["cells"]) == {"press", "pack"}
    r = client.post("/api/cells/pack/command", json={"command": "Hold"}, headers={"Origin": "http://testserver"})
    assert r.status_code == 403 and "observers see but do not command" in r.json()["message"]


@pytest.mark.parametrize("body, headers, status, message", [
    ({"command": "Hold"}, {"Origin": "http://evil.example"}, 403, "own origin"),
    ("command=Hold", {"Content-Type": "application/x-www-form-urlencoded"}, 400, "Content-Type: application/json"),
    ({"command": "Suspend"}, {}, 400, "Suspend and Unsuspend are the machine's own"),
    ({"command": "Hold", "extra": 1}, {}, 400, "expected {\"command\""),
    ([1, 2], {}, 400, "expected a JSON object"),
    ("x" * 5000, {"Content-Type": "application/json"}, 400, "at most 4096 bytes"),
])
def test_bad_commands_get_a_clear_error(client, body, headers, status, message):
    assert _login(client, "ana", "ana-secret-1").status_code == 200
    kwargs = {"json": body} if not isinstance(body, str) else {"content": body}
    r = client.post("/api/cells/pack/command", headers=headers, **kwargs)
    assert r.status_code == status and message in r.json()["message"]
    assert client.post("/api/cells/nope/command", json={"command": "Hold"}).status_code == 404


def test_a_command_to_a_cell_that_does_not_answer_says_why(client):
    assert _login(client, "ana", "ana-secret-1").status_code == 200
    r = client.post("/api/cells/pack/command", json={"command": "Hold"})
    assert r.status_code == 504 and "no answer from the cell" in r.json()["message"]


def test_the_websocket_pushes_state_and_answers_bad_frames(client):
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect):  # no session: refused
        with client.websocket_connect("/ws", headers={"Origin": "http://testserver"}) as ws:
            ws.receive_json()
    assert _login(client, "olaf", "olaf-secret-1").status_code == 200
    with pytest.raises(WebSocketDisconnect):  # another site's page in the operator's browser
        with client.websocket_connect("/ws", headers={"Origin": "http://evil.example"}) as ws:
            ws.receive_json()
    with client.websocket_connect("/ws", headers={"Origin": "http://testserver"}) as ws:
        first = ws.receive_json()
        assert first["type"] == "state" and first["user"]["name"] == "olaf"
        ws.send_text("{not json")
        assert ws.receive_json()["type"] == "error"
        ws.send_bytes(b"\x00\xff")
        assert ws.receive_json()["type"] == "error"
        ws.send_text('{"type": "ping"}')
        assert ws.receive_json()["type"] in ("pong", "state")


def test_cellctl_dashboard_refuses_what_cannot_work_with_one_line(tmp_path, line_config, users, capsys):
    from cellctl.cli.main import main

    zero = tmp_path / "zero.yaml"
    zero.write_text(LINE.replace("control_port: 7102, status_port: 7202", ""))
    assert main(["dashboard", str(zero), "--port", "0"]) == 2
    assert main(["dashboard", str(line_config), "--host", "10.1.2.3", "--port", "0"]) == 2
    assert main(["dashboard", str(line_config), "--users", str(tmp_path / "none.txt"), "--port", "0"]) == 2
    assert main(["dashboard", str(line_config), "--cert", str(tmp_path / "x.crt"), "--port", "0"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == (f"cellctl dashboard: {zero}: cells.pack.control_port is 0 (chosen at start): give the run "
                        f"directory instead, or fixed ports in the config")
    assert lines[1].startswith("cellctl dashboard: --host 10.1.2.3 is not loopback: give --users FILE")
    assert lines[2].startswith(f"cellctl dashboard: {tmp_path / 'none.txt'}: no such users file")
    assert lines[3] == "cellctl dashboard: give --cert and --key together"


def test_an_open_loopback_page_answers_loopback_names_only(line_config):
    """Open (no users) means: whoever sits at the PC. A page elsewhere that points its own name at
    127.0.0.1 (DNS rebinding) gets nothing."""
    from starlette.testclient import TestClient

    view = LineView(load_config(line_config), "line.yaml", derive_events=True)
    page = Page(view, Feeds(str(line_config), view), Access(None), https=False)
    with TestClient(page.app(), base_url="http://127.0.0.1:8080") as local:
        assert local.get("/api/state").json()["user"]["name"] == "local"
    with TestClient(page.app(), base_url="http://rebound.example:8080") as foreign:
        assert foreign.get("/api/state").status_code == 400
        assert foreign.post("/api/cells/pack/command", json={"command": "Hold"},
                            headers={"Origin": "http://rebound.example:8080"}).status_code == 400
