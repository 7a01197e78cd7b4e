"""The operator's page off loopback, as a pilot site runs it: the press (with the twin) and the pack
on two PCs under CURVE, ``cellctl dashboard`` on a third over HTTPS with users, and a technician's
browser on the cell network (four network namespaces' worth: three PCs and this one, on a bridge).
Without a login nothing is shown; a wrong password is refused and logged; an observer sees both cells
but has no button and a forged command is refused; an operator's Hold and Unhold work."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.browser import chromium, need_chromium, wait_for
from tests.helpers.ci_log import to_ci_log
from tests.helpers.netns import ROOT, generate_keys, in_ns, line_config, pcs

pytestmark = [pytest.mark.process, pytest.mark.netns, pytest.mark.slow, pytest.mark.timeout(400)]
PORT = 8443


def _cellctl(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cellctl", *args], input=stdin, capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


def _ready(log: Path, proc: subprocess.Popen, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines() if log.exists() else []:
            if line.startswith("CELLCTL-DASHBOARD-READY "):
                return json.loads(line.split(" ", 1)[1])
        assert proc.poll() is None, log.read_text()
        time.sleep(0.1)
    raise AssertionError(f"the page did not announce itself: {log.read_text()}")


def _log_in(driver, url: str, name: str, password: str) -> None:
    driver.get(url)
    wait_for(driver, lambda d: d.current_url.endswith("/login"), message="the login page")
    driver.find_element("id", "name").send_keys(name)
    driver.find_element("id", "password").send_keys(password)
    driver.find_element("css selector", "button[type=submit]").click()


def _forged_command(driver, cell: str) -> tuple[int, str]:
    """What a page's script could send with the session's cookie, button or not."""
    reply = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch("/api/cells/%s/command", {method: "POST", headers: {"Content-Type": "application/json"},
              body: JSON.stringify({command: "Hold"})}).then(async (r) => done([r.status, (await r.json()).message]));
    """ % cell)
    return reply[0], reply[1]


def test_a_dashboard_on_a_third_pc_over_https_with_users(tmp_path, pytestconfig):
    need_chromium()
    with pcs(3) as [(ns_a, host_a), (ns_b, host_b), (ns_c, host_c)]:
        keys = generate_keys(tmp_path / "keys", "twin", "press", "pack", "operator")
        config = line_config(tmp_path, keys, (host_a, host_b), parts=60)
        users = tmp_path / "users.txt"
        for name, role in (("ana", "operator"), ("olaf", "observer")):
            added = _cellctl("users", "add", name, "--role", role, "--file", str(users), "--password-stdin",
                             stdin=f"{name}-secret-1\n")
            assert added.returncode == 0, added.stderr
        assert _cellctl("certs", "generate", "--host", host_c, "--dir", str(tmp_path / "certs")).returncode == 0

        refused = subprocess.run(["ip", "netns", "exec", ns_c, sys.executable, "-m", "cellctl", "dashboard",
                                  str(config), "--host", host_c, "--keys", str(keys)],
                                 capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert refused.returncode == 2 and f"--host {host_c} is not loopback: give --users FILE" in refused.stderr

        procs = [in_ns(ns_a, "twin", "serve", str(config), log=tmp_path / "twin.log")]
        time.sleep(1.0)
        procs += [in_ns(ns_a, "cell", "run", str(config), "--cell", "press", "--run-dir", str(tmp_path / "a"),
                        "--start", log=tmp_path / "press.log"),
                  in_ns(ns_b, "cell", "run", str(config), "--cell", "pack", "--run-dir", str(tmp_path / "b"),
                        "--start", log=tmp_path / "pack.log")]
        page_log = tmp_path / "dashboard.log"
        procs.append(in_ns(ns_c, "dashboard", str(config), "--host", host_c, "--port", str(PORT), "--users",
                           str(users), "--cert", str(tmp_path / "certs/cellctl.crt"), "--key",
                           str(tmp_path / "certs/cellctl.key"), "--keys", str(keys), "--as", "operator",
                           log=page_log))
        try:
            info = _ready(page_log, procs[-1])
            url = info["url"]
            assert url == f"https://{host_c}:{PORT}/" and info["login"] is True
            import httpx

            anonymous = httpx.get(f"{url}api/state", verify=False, timeout=10)
            assert anonymous.status_code == 401
            anonymous = httpx.post(f"{url}api/cells/pack/command", json={"command": "Hold"}, verify=False, timeout=10)
            assert anonymous.status_code == 401

            with chromium(trust_self_signed=True) as driver:
                _log_in(driver, url, "ana", "not-her-password")
                wait_for(driver, lambda d: "wrong name or password" in d.find_element("id", "error").text,
                         message="the wrong password refused")
                assert "login refused for 'ana' from 10.78.0.254: wrong name or password" in page_log.read_text()

                _log_in(driver, url, "olaf", "olaf-secret-1")
                wait_for(driver, lambda d: all(d.find_element("css selector", f'[data-cell="{c}"]')
                                               .get_attribute("data-state") == "Execute" for c in ("press", "pack")),
                         timeout=90, message="both cells, on two other PCs, in Execute")
                assert driver.find_elements("css selector", "button[data-command]") == []
                status, message = _forged_command(driver, "pack")
                assert status == 403 and "observers see but do not command" in message
                observer_view = driver.find_element("id", "who").text
                driver.find_element("id", "logout").click()

                _log_in(driver, url, "ana", "ana-secret-1")
                wait_for(driver, lambda d: d.find_elements("css selector",
                                                           '[data-cell="pack"] button[data-command="Hold"]'),
                         message="the operator's buttons")
                driver.find_element("css selector", '[data-cell="pack"] button[data-command="Hold"]').click()
                wait_for(driver, lambda d: d.find_element("css selector", '[data-cell="pack"]')
                         .get_attribute("data-state") == "Held", message="pack Held")
                status = _cellctl("status", str(config), "--cell", "pack", "--keys", str(keys))
                assert "pack: Held" in status.stdout and "Hold by the operator (ana via page)" in status.stdout
                shot = tmp_path / "b" / "screenshots" / "dashboard-third-pc.png"
                shot.parent.mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(str(shot))
                driver.find_element("css selector", '[data-cell="pack"] button[data-command="Unhold"]').click()
                wait_for(driver, lambda d: d.find_element("css selector", '[data-cell="pack"]')
                         .get_attribute("data-state") == "Execute", message="pack back in Execute")
            events = [json.loads(x) for x in (tmp_path / "b" / "events.jsonl").read_text().splitlines()]
            assert [(e["command"], e["by"], e.get("user")) for e in events if e["kind"] == "command"] == \
                [("Hold", "page", "ana"), ("Unhold", "page", "ana")]
            to_ci_log(pytestconfig, f"dashboard on a third PC ({url}): anonymous 401; wrong password refused and "
                                    f"logged; observer ({observer_view}) sees press and pack, no buttons, forged "
                                    f"command 403; operator ana's Hold/Unhold recorded with her name; screenshot "
                                    f"{shot}")
        finally:
            for proc in reversed(procs):
                if proc.poll() is None:
                    proc.terminate()
            for proc in procs:
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
