"""The operator's page in a real chromium on the demo line (``cellctl run --dashboard``): every cell
drawn, a state change seen without a reload, Hold and Unhold pressed on the page and checked with
``cellctl status``; a screenshot saved under the run directory (a CI artefact)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.announced import announced
from tests.helpers.browser import chromium, need_chromium, wait_for
from tests.helpers.ci_log import to_ci_log

ROOT = Path(__file__).parents[1]
pytestmark = [pytest.mark.process, pytest.mark.slow, pytest.mark.timeout(300)]


def _cellctl(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cellctl", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


def _state_on_page(driver, cell: str) -> str:
    return driver.find_element("css selector", f'[data-cell="{cell}"]').get_attribute("data-state")


def _status(run_dir: Path, cell: str) -> str:
    out = _cellctl("status", str(run_dir), "--cell", cell)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_the_page_shows_the_line_live_and_its_buttons_command_the_cells(tmp_path, pytestconfig):
    need_chromium()
    run_dir = tmp_path / "run"
    line = subprocess.Popen([sys.executable, "-m", "cellctl", "run", str(ROOT / "configs/demo_line.yaml"), "--parts",
                             "60", "--run-dir", str(run_dir), "--dashboard", "0", "--timeout", "240"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    try:
        url = announced(run_dir / "dashboard.json", line)["url"]
        with chromium() as driver:
            driver.get(url)
            wait_for(driver, lambda d: all(_state_on_page(d, c) == "Execute" for c in ("press", "pack")),
                     message="both cells drawn in Execute")
            stations = [s.get_attribute("data-station") for s in driver.find_elements("css selector", "[data-station]")]
            assert stations == ["infeed", "handoff", "outfeed"]
            done = driver.find_element("css selector", '[data-cell="pack"] [data-field="parts_done"]').text
            wait_for(driver, lambda d: d.find_element("css selector", '[data-cell="pack"] [data-field="parts_done"]')
                     .text != done, message="pack's parts done changing without a reload")
            driver.execute_script("window.stillTheSamePage = true")  # gone if anything reloads the page

            driver.find_element("css selector", '[data-cell="pack"] button[data-command="Hold"]').click()
            wait_for(driver, lambda d: "Hold queued" in d.find_element("id", "reply").text, message="the Hold's reply")
            wait_for(driver, lambda d: _state_on_page(d, "pack") == "Held", message="pack Held on the page")
            assert "pack: Held" in _status(run_dir, "pack")
            alarm = driver.find_element("css selector", '[data-alarm="pack"]').text
            assert "Hold by the operator (local via page)" in alarm and "What to do: intended" in alarm

            held = driver.find_element("css selector", '[data-cell="pack"] [data-field="part"]').text
            driver.find_element("id", "search").send_keys(held)  # where is that part? (search by id)
            rows = lambda d: [r.get_attribute("data-part") for r in d.find_elements("css selector", "#parts tr[data-part]")]  # noqa: E731
            wait_for(driver, lambda d: held in rows(d) and all(held in r for r in rows(d)),
                     message=f"the parts table narrowed to {held}")

            driver.find_element("css selector", '[data-cell="press"] button[data-command="Unhold"]').click()
            wait_for(driver, lambda d: "not allowed in state" in d.find_element("id", "reply").text,
                     message="a refused command's reason")

            shot = run_dir / "screenshots" / "line-held.png"
            shot.parent.mkdir(parents=True, exist_ok=True)
            assert driver.save_screenshot(str(shot))
            driver.find_element("css selector", '[data-cell="pack"] button[data-command="Unhold"]').click()
            wait_for(driver, lambda d: _state_on_page(d, "pack") == "Execute", message="pack back in Execute")
            assert "pack: Execute" in _status(run_dir, "pack")
            assert driver.execute_script("return window.stillTheSamePage") is True
            driver.set_window_size(800, 1280)  # a tablet, upright: nothing wider than the screen, buttons a finger hits
            fits = driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
            heights = driver.execute_script(
                "return [...document.querySelectorAll('button[data-command]')].map(b => b.getBoundingClientRect().height)")
            assert fits and len(heights) == 14 and min(heights) >= 44, (fits, heights)
            assert driver.save_screenshot(str(shot.with_name("line-tablet.png")))
            events = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]
            commands = [(e["cell"], e["command"], e["by"], e.get("user")) for e in events if e["kind"] == "command"]
            assert ("pack", "Hold", "page", "local") in commands and ("pack", "Unhold", "page", "local") in commands
            to_ci_log(pytestconfig, f"operator's page: screenshot {shot} ({shot.stat().st_size} bytes): the demo line, "
                                    f"pack Held by the page's Hold with its reason and what to do")
    finally:
        if line.poll() is None:
            line.terminate()
        line.wait(60)
    assert not (run_dir / "dashboard.json").exists(), "the page's URL outlived it"
