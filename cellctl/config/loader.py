"""Loading a config file: YAML → validated model, or a list of problems that each name the file,
the key path, what was expected and what was found. Never a traceback for a user's mistake."""

from __future__ import annotations

import re
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


# pydantic puts the member of a union that failed into an error's location ("constrained-float",
# "list[constrained-float]"): not a key of the file
_UNION_TAG = re.compile(r"(constrained-\w+|(list|tuple|dict|set|function-\w+|nullable|lax-or-strict|json-or-python|literal)"
                        r"\[.*\]|float|int|str|bool|none)")


def _schema_lines(path: Path, exc: ValidationError) -> list[str]:
    """One line per key. Where a value fits no member of a union (a scalar or a list; a preset's
    name or a mapping), a member whose type does not match at all is left out when another member
    got further (a list with one bad value says which), and the rest are joined with "or"."""
    errors = exc.errors()
    union = [_union_at(e["loc"]) for e in errors]
    mismatch = [u is not None and len(e["loc"]) == len(u) + 1 and _wrong_type(e) for e, u in zip(errors, union)]
    further = {u for u, m in zip(union, mismatch) if u is not None and not m}
    by_key: dict[tuple, tuple[list[str], str]] = {}
    for e, u, m in zip(errors, union, mismatch):
        if m and u in further:
            continue
        loc = tuple(k for i, k in enumerate(e["loc"]) if i < 2 or not (isinstance(k, str) and _UNION_TAG.fullmatch(k)))
        expected, found = _expected(e)
        wanted, _ = by_key.setdefault(loc, ([], found))
        if expected not in wanted:
            wanted.append(expected)
    return [_line(path, loc, " or ".join(wanted), found) for loc, (wanted, found) in by_key.items()]


def _union_at(loc: tuple) -> tuple | None:
    """The key a union's member tag follows in ``loc``, if any."""
    for i, k in enumerate(loc):
        if i >= 2 and isinstance(k, str) and _UNION_TAG.fullmatch(k):
            return loc[:i]
    return None


def _wrong_type(e: dict) -> bool:
    return e["type"].endswith("_type") or e["type"] in ("literal_error", "model_attributes_type")


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
    context = {"base_dir": str(Path(path).resolve().parent)}
    try:
        config = model.model_validate(data, context=context)
    except ValidationError as exc:
        raise ConfigError(_schema_lines(path, exc) + _beside(path, data, exc, model, context)) from None
    problems: list[Problem] = config.problems() if hasattr(config, "problems") else []
    if problems:
        raise ConfigError([_line(path, p.loc, p.expected, _found(p.found)) for p in problems])
    return config


def _beside(path: Path, data: dict, exc: ValidationError, model: type[BaseModel], context: dict) -> list[str]:
    """The cross-reference problems of the rest of a file whose schema check failed: the entries
    with schema errors (``robots.ur``, ``cells.pack``...) left out, the others checked as usual, so
    one ``check`` reports every problem at once. Problems that name a left-out entry are not
    repeated (they would only say it is missing)."""
    left_out: set[tuple] = {tuple(e["loc"][:2]) for e in exc.errors() if len(e["loc"]) >= 2}
    if any(len(e["loc"]) < 2 for e in exc.errors()) or not left_out:
        return []
    rest = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for section, name in left_out:
        if isinstance(rest.get(section), dict):
            rest[section].pop(name, None)
    try:
        config = model.model_validate(rest, context=context)
    except ValidationError:
        return []
    names = {name for _, name in left_out}
    problems = config.problems() if hasattr(config, "problems") else []
    return [_line(path, p.loc, p.expected, _found(p.found)) for p in problems
            if tuple(p.loc[:2]) not in left_out and p.found not in names]
