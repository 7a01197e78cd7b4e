"""The config's reference, made from its schema so the two cannot drift: ``cellctl schema`` prints
the JSON Schema (for editors: a YAML language server validates a config against it), and
``python -m cellctl.config.reference > docs/config.md`` writes the reference a person reads —
every key with its type, default, description (units in it) and example, and the ROS presets'
names. A test fails when docs/config.md is not what this module makes of the schema now.
"""

from __future__ import annotations

import json
from dataclasses import fields

from cellctl.config.line import LineConfig
from cellctl.drivers.robot_config import SWITCHABLE
from cellctl.drivers.ros import ROS2_DEFAULTS, RosNames

def json_schema() -> dict:
    schema = LineConfig.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema,
            "title": "cellctl line config (version 1)"}


def _type(prop: dict) -> str:
    if "$ref" in prop:
        name = prop["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in prop:
        return " or ".join(_type(p) for p in prop["anyOf"])
    if "enum" in prop:
        return " or ".join(f"`{json.dumps(v)}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{json.dumps(prop['const'])}`"
    kind = prop.get("type")
    if kind == "array":
        if "prefixItems" in prop:
            return f"[{', '.join(_type(p) for p in prop['prefixItems'])}]"
        return f"list of {_type(prop.get('items', {}))}"
    if kind == "object":
        values = prop.get("additionalProperties")
        return f"map of name → {_type(values)}" if isinstance(values, dict) else "mapping"
    bounds = [f"{op} {prop[key]}" for key, op in (("exclusiveMinimum", ">"), ("minimum", "≥"),
                                                   ("exclusiveMaximum", "<"), ("maximum", "≤")) if key in prop]
    return {"null": "null"}.get(kind, kind or "any") + (f" ({', '.join(bounds)})" if bounds else "")


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _section(name: str, model: dict, required: set[str]) -> list[str]:
    lines = [f"### {name}", ""]
    if model.get("description"):
        lines += [" ".join(model["description"].split()), ""]
    lines += ["| key | type | default | description | example |", "|---|---|---|---|---|"]
    for key, prop in model.get("properties", {}).items():
        default = ("required" if key in required else "each key's own" if isinstance(prop.get("default"), dict)
                   else f"`{json.dumps(prop['default'])}`" if "default" in prop else "")
        example = ", ".join(f"`{json.dumps(e)}`" for e in prop.get("examples", []))
        lines.append(f"| `{key}` | {_cell(_type(prop))} | {_cell(default)} | {_cell(prop.get('description', ''))} | "
                     f"{_cell(example)} |")
    return lines + [""]


def _presets() -> list[str]:
    keys = [f.name for f in fields(RosNames) if f.name in ("joint_states", "trajectory_action", *SWITCHABLE)]
    lines = ["## ROS presets (`driver.ros.names.preset`)", "",
             "The names each preset starts from (`-`: none). Any of them can be replaced under `names:`; the "
             f"optional ones ({', '.join(f'`{k}`' for k in SWITCHABLE)}) can be switched off with `null`, "
             "and the driver then neither reads nor probes them. The `twin` preset's names are per robot "
             "(`/ROBOT/joint_states`, ...: docs/ros.md).", "",
             "| name | " + " | ".join(f"`{p}`" for p in ROS2_DEFAULTS) + " |", "|---|" + "---|" * len(ROS2_DEFAULTS)]
    for key in keys:
        lines.append(f"| `{key}` | " + " | ".join(f"`{getattr(n, key)}`" if getattr(n, key) else "-"
                                                for n in ROS2_DEFAULTS.values()) + " |")
    return lines + [""]


def markdown() -> str:
    schema = json_schema()
    defs = schema.get("$defs", {})
    lines = ["# The line config: reference", "",
             "Generated from the config schema by `python -m cellctl.config.reference > docs/config.md` (a test "
             "fails when it is stale); `cellctl schema` prints the same schema as JSON Schema for editors "
             "(e.g. `# yaml-language-server: $schema=line-config.json` at the top of a config, after "
             "`cellctl schema > line-config.json`). `cellctl check CONFIG` reports every problem of a file at "
             "once, each naming the key, what was expected and what was found.", "",
             "Units: metres, seconds, radians and kilograms unless a key says otherwise; \"sim s\" is the "
             "twin's time, \"wall s\" the clock on the wall. Which mode needs a key: keys marked *twin only* "
             "matter to the simulated world alone; `driver.ros` and `sensor.ros` are what a live cell (a "
             "real robot behind rosbridge) needs; `host`, ports and `security` matter when cells run one "
             "per PC (docs/deploy.md).", "", "## Sections", ""]
    lines += _section("LineConfig (the file)", schema, set(schema.get("required", [])))
    for name, model in defs.items():
        lines += _section(name, model, set(model.get("required", [])))
    lines += _presets()
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(), end="")
