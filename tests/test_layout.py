"""The house: one top-level name when installed, every module under one name, and commands that
do not simulate start without loading physics, clusters or plots."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import cellctl
from tests.helpers.names import MAPPED_FOLDERS, loaded_twice

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-X", "importtime", "-m", "cellctl"]


def test_every_module_loads_under_one_name_beneath_cellctl():
    for package in ("cellctl", "cellctl.drivers", "cellctl.skills", "cellctl.twin"):
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, f"{package}."):
            if not info.name.endswith("__main__"):
                importlib.import_module(info.name)
    assert loaded_twice() == {}
    stray = sorted(n for n in sys.modules if n.split(".")[0] in MAPPED_FOLDERS)
    assert stray == [], f"loaded outside cellctl: {stray}"


def _imports(*args: str, cwd: Path = REPO) -> tuple[set[str], subprocess.CompletedProcess]:
    """The modules a cellctl command imports (``python -X importtime``: one line per module)."""
    result = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, cwd=cwd)
    modules = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    return {m.split(".")[0] for m in modules} | modules, result


HEAVY = {"pybullet", "ray", "matplotlib"}


@pytest.mark.process
@pytest.mark.parametrize("args,also_forbidden", [
    (["--help"], {"numpy", "pydantic", "zmq", "transitions", "yaml", "rich"}),
    (["status", "{empty}"], set()),
    (["cmd", "tcp://127.0.0.1:9", "Start", "--keys", "{empty}"], set()),
    (["keys", "generate", "op", "--dir", "{empty}"], set()),
    (["skills", "list"], set()),
    (["check", "--no-reach", "configs/demo_line.yaml"], set()),
])
def test_commands_that_do_not_simulate_load_no_physics(args, also_forbidden, tmp_path):
    args = [a.replace("{empty}", str(tmp_path)) for a in args]
    modules, result = _imports(*args)
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert modules & (HEAVY | also_forbidden) == set(), result.stderr[-2000:]


@pytest.mark.process
def test_no_command_prints_pybullets_banner():
    """``check`` runs the reach test (URDFs in PyBullet); its output is only the checker's."""
    result = subprocess.run([sys.executable, "-m", "cellctl", "check", "configs/demo_line.yaml"], capture_output=True,
                            text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "pybullet build time" not in result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert all(line.startswith("configs/demo_line.yaml: ") for line in lines), result.stdout  # the checker's own lines
    assert "configs/demo_line.yaml: ok (2 robots, 3 stations, 0 parts, 2 cells)" in lines


@pytest.mark.process
def test_the_cli_says_less_with_quiet_and_its_answers_still_reach_stdout(tmp_path):
    quiet = subprocess.run([sys.executable, "-m", "cellctl", "-q", "keys", "generate", "op", "--dir", str(tmp_path)],
                           capture_output=True, text=True, timeout=60)
    assert quiet.returncode == 0 and quiet.stderr == "" and "op.key" in quiet.stdout
    bad = subprocess.run([sys.executable, "-m", "cellctl", "-q", "status", str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr == (f"cellctl status: {tmp_path}: no cells found (expected a run "
                                                  f"directory of `cellctl run` or `cell run`)\n")


def test_installed_names_are_one_in_the_wheel_metadata():
    """pyproject.toml maps every folder beneath cellctl: no other top-level package is listed."""
    import tomllib

    setup = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert {p.split(".")[0] for p in setup["packages"]} == {"cellctl"}
    assert set(setup["package-dir"]) == {f"cellctl.{f}" for f in MAPPED_FOLDERS}
    assert Path(cellctl.__file__).parent == REPO / "cellctl"
