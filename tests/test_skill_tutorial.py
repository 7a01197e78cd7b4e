"""The skills tutorial's code runs as written: a skill defined outside the package is registered
and run by name from YAML on the twin."""

from __future__ import annotations

import re
from pathlib import Path

from cellctl.skills.base import SkillStatus

DOC = Path(__file__).resolve().parent.parent / "docs" / "skills.md"


def test_tutorial_code_runs(kuka_twin, capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 2
    namespace = {"ENDPOINT": kuka_twin.endpoint}
    exec(compile(blocks[0], "skills.md#define", "exec"), namespace)
    exec(compile(blocks[1], "skills.md#run", "exec"), namespace)
    assert namespace["result"].status is SkillStatus.SUCCEEDED, namespace["result"]
    assert "succeeded" in capsys.readouterr().out
