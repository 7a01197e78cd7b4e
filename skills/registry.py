"""Skills found by name (Gymnasium's ``register``/``make`` habit), so YAML recipes can name them.

Users add their own with ``@register`` or, without touching this package, an entry point in the
``cellctl.skills`` group (``name = "package.module:SkillClass"``).
"""

from __future__ import annotations

import importlib
import sys
from importlib.metadata import entry_points

from cellctl.skills.base import Skill
from cellctl.skills.context import SkillContext

_SKILLS: dict[str, type[Skill]] = {}
_BUILTIN = ("cellctl.skills.move_joints", "cellctl.skills.move_pose", "cellctl.skills.pick", "cellctl.skills.place",
            "cellctl.skills.wait", "cellctl.skills.load_machine", "cellctl.skills.unload_machine",
            "cellctl.skills.start_job", "cellctl.skills.wait_job")
ENTRY_POINT_GROUP = "cellctl.skills"


class UnknownSkill(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def register(cls: type[Skill]) -> type[Skill]:
    """Class decorator: ``@register`` on a Skill subclass with a ``name``."""
    if not cls.name:
        raise ValueError(f"{cls.__qualname__} needs a class attribute 'name' to be registered")
    _SKILLS[cls.name] = cls
    return cls


_BROKEN: dict[str, str] = {}  # entry point name -> why it cannot be loaded


def _load() -> None:
    """Built-in skills, then the entry points; one that cannot be loaded is reported in one line
    (once) and the others load as usual."""
    for module in _BUILTIN:
        importlib.import_module(module)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _SKILLS or ep.name in _BROKEN:
            continue
        try:
            register(ep.load())
        except Exception as exc:  # noqa: BLE001 - a user's package may fail in any way
            _BROKEN[ep.name] = f"{type(exc).__name__}: {exc}".splitlines()[0]
            print(f"cellctl: skill entry point {ep.name} = {ep.value} cannot be loaded: {_BROKEN[ep.name]}",
                  file=sys.stderr)


def names() -> list[str]:
    _load()
    return sorted(_SKILLS)


def get(name: str) -> type[Skill]:
    if name not in _SKILLS:
        _load()
    try:
        return _SKILLS[name]
    except KeyError:
        if name in _BROKEN:
            raise UnknownSkill(f"skill {name!r} cannot be loaded: {_BROKEN[name]}") from None
        raise UnknownSkill(f"unknown skill {name!r}; known skills: {', '.join(sorted(_SKILLS))}") from None


def create(name: str, ctx: SkillContext, params: dict | None = None) -> Skill:
    return get(name)(ctx, params)
