"""Loading a config file: YAML → validated model, or a list of problems that each name the file,
the key path, what was expected and what was found. Never a traceback for a user's mistake."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from cellctl.config.line import LineConfig
from cellctl.drivers.robot_config import Problem
from cellctl.twin.config import SceneConfig

_MAX_FOUND = 200  # characters of a found value shown; a longer one is cut (and says so)


class ConfigError(Exception):
    """Carries every problem found, one line each, so a user fixes them in one pass."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def _found(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_FOUND else f"{text[:_MAX_FOUND]}... ({len(text)} characters)"


def _expected(err: dict) -> tuple[str, str]:
    """Turn one pydantic error into (expected, found) phrases."""
    kind, msg = err["type"], err["msg"]
    if kind == "missing" and isinstance(err["loc"][-1], int):
        return "more values in this list", "too few"
    if kind == "missing":
        return "a value (required key)", "nothing"
    if kind == "extra_forbidden":
        return "only keys of the schema (misspelt?)", f"unknown key {err['loc'][-1]!r}"
    if kind == "too_long":
        return "fewer values in this list", "too many"
    if msg.startswith("Input should be "):
        return msg.removeprefix("Input should be "), _found(err["input"])
    if msg.startswith("Value error, "):
        return msg.removeprefix("Value error, "), _found(err["input"])
    return msg[0].lower() + msg[1:], _found(err["input"])


def _line(path: Path, loc: tuple, expected: str, found: str) -> str:
    key = ".".join(str(k) for k in loc) or "(top level)"
    return f"{path}: {key}: expected {expected}, found {found}"


def load_config(path: str | Path, model: type[SceneConfig] = LineConfig) -> LineConfig:
    return load_model(path, model, "a mapping with a 'version' key", "the config format version (1)")


def load_model(path: str | Path, model: type[BaseModel], what: str, version: str) -> BaseModel:
    """A YAML file (a line config, a scenario) as ``model``: every problem names the file, the key,
    what was expected (``what``: the whole file; ``version``: its version key) and what was found.
    A model with ``problems()`` checks what a schema cannot (cross-references)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the file: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([_line(path, (), "a YAML text file (UTF-8)",
                                 f"a byte 0x{exc.object[exc.start]:02x} that is not UTF-8 at offset {exc.start}")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError([f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}"]) from None
    if not isinstance(data, dict):
        raise ConfigError([_line(path, (), what, _found(data))])
    if "version" not in data:
        raise ConfigError([_line(path, ("version",), version, "nothing")])
    try:
        config = model.model_validate(data, context={"base_dir": str(Path(path).resolve().parent)})
    except ValidationError as exc:
        raise ConfigError([_line(path, e["loc"], *_expected(e)) for e in exc.errors()]) from None
    problems: list[Problem] = config.problems() if hasattr(config, "problems") else []
    if problems:
        raise ConfigError([_line(path, p.loc, p.expected, _found(p.found)) for p in problems])
    return config
