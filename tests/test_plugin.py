"""cellctl's pytest plugin (cellctl/testkit/pytest_plugin.py), loaded from its ``pytest11`` entry point as
a partner's CI loads it: the fixtures start real processes and read what they write."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cellctl.config.paths import CONFIG_DIR
from tests.conftest import CONFIGS

pytestmark = pytest.mark.process  # starts twins, cells, launchers or bridges

DEMO = CONFIG_DIR / "demo_line.yaml"


def test_the_plugin_is_loaded_from_its_entry_point(pytestconfig):
    plugin = pytestconfig.pluginmanager.get_plugin("cellctl")
    assert plugin is not None and plugin.__name__ == "cellctl.testkit.pytest_plugin"


def test_cellctl_line_runs_a_line_and_tells_its_story(cellctl_line):
    result = cellctl_line(DEMO, parts=2)
    assert result.returncode == 0, result.stderr[-2000:]
    s = result.summary
    assert s["finished"] and s["parts_in"] == s["parts_out"] == 2 and s["lost"] == s["duplicated"] == 0, s
    for cell in ("press", "pack"):
        states = result.states(cell)
        assert states[:5] == ["Stopped", "Resetting", "Idle", "Starting", "Execute"], states
        assert states[-2:] == ["Completing", "Complete"], states
    result.assert_never(None, "Held")
    result.assert_never("pack", "Aborted")
    for part in ("part-1", "part-2"):
        result.assert_visited(part, ["infeed", "handoff", "outfeed"])
        assert result.visits(part) == ["infeed", "handoff", "outfeed"]
    result.assert_visited("part-1", ["infeed", "outfeed"])  # others may come between
    with pytest.raises(AssertionError, match=r"press entered Execute at sim time .* \(from Starting on SC\)"):
        result.assert_never("press", "Execute")
    with pytest.raises(AssertionError, match=r"did not visit \['outfeed', 'infeed'\] in that order; "
                                             r"it visited \['infeed', 'handoff', 'outfeed'\]"):
        result.assert_visited("part-1", ["outfeed", "infeed"])
    with pytest.raises(AssertionError, match="no PackML state change of cell 'nobody'"):
        result.states("nobody")


def test_cellctl_cell_is_driven_through_its_control_socket(cellctl_cell):
    cell = cellctl_cell(CONFIGS / "one_cell.yaml", "press", parts=2)
    assert cell.status()["state"] == "Stopped"
    with pytest.raises(RuntimeError, match="refused command"):
        cell.command("Unhold")
    cell.command("Reset")
    cell.wait_state("Idle")
    cell.command("Start")
    status = cell.wait_state("Complete", timeout=120)
    assert status["parts_done"] == 2
    assert [e["part"] for e in cell.events() if e["kind"] == "part_done"] == ["part-1", "part-2"]


def test_cellctl_twin_serves_a_config_and_hands_out_drivers(cellctl_twin):
    twin = cellctl_twin(CONFIGS / "kuka.yaml")
    with twin.driver("press") as robot:
        assert robot.describe().dof == 7 and robot.gripper_state().state == "open"


def test_a_line_that_is_not_lockstep_is_refused_with_the_key_to_change(cellctl_line):
    with pytest.raises(ValueError, match=r"kuka.yaml: twin.mode is 'realtime'; tests need 'lockstep'"):
        cellctl_line(CONFIGS / "kuka.yaml", parts=1)


def test_a_pytest_session_that_does_not_use_cellctl_pays_nothing_for_it(tmp_path):
    """The plugin loads in every pytest session of an environment with cellctl installed: it
    imports PyBullet (and prints its banner) only when a fixture is used."""
    (tmp_path / "test_other.py").write_text("import sys\n\ndef test_other():\n    assert 'pybullet' not in sys.modules\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "pybullet build time" not in proc.stdout + proc.stderr
