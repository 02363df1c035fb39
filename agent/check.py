"""What `check`, `profiles` and `schema` show integrators, as text. No I/O beyond reading files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from agent.config import AgentConfig, AgentSetup, MeterSettings, load_config
from agent.modbus.codec.plan import plan_reads
from agent.profiles import builtin_names, load_profile
from agent.tables import format_table
from greengauge.common.configfile import ENV_PATTERN, ConfigError
from greengauge.common.i18n import _
from greengauge.common.secrets import broker_summary, tls_problems


def _dlt645_row(meter: MeterSettings, setup: AgentSetup) -> list[object]:
    """A DL/T 645 meter: its address in the unit column, one request per value."""
    assert meter.dlt645 is not None
    values = len(setup.dlt645_profiles[meter.id].read_values)
    profile = setup.dlt645_profiles[meter.id].model
    return [
        meter.id,
        profile,
        meter.dlt645.bus_name,
        meter.dlt645.address,
        meter.interval,
        values,
        values,
    ]


def check_report(path: Path) -> str:
    """A summary of a valid config; raises ConfigError naming every problem otherwise."""
    setup = load_config(path)
    config = setup.config
    problems = tls_problems(config.mqtt, str(path))
    if problems:
        raise ConfigError(problems)
    rows: list[list[object]] = []
    for meter in config.meters:
        if meter.dlt645 is not None:
            rows.append(_dlt645_row(meter, setup))
            continue
        assert meter.modbus is not None
        profile = setup.profiles[meter.id]
        rows.append(
            [
                meter.id,
                profile.model,
                meter.modbus.bus_name,
                meter.modbus.unit_id,
                meter.interval,
                len(profile.read_registers),
                len(plan_reads(profile)),
            ]
        )
    table = format_table(
        [
            _("meter"),
            _("profile"),
            "modbus",
            _("unit"),
            _("interval s"),
            _("quantities"),
            _("requests"),
        ],
        rows,
    )
    header = _("{path}: OK\nsite {site}, agent {agent}, broker {broker}\n").format(
        path=path, site=config.site, agent=config.agent_id, broker=broker_summary(config.mqtt)
    )
    if ":" in config.site + config.agent_id:
        # The ids are valid on the wire; only the broker's user for them cannot be made.
        header += (
            "note: site or agent_id holds ':', which cannot be in a mosquitto user name "
            "(its password file is USER:HASH): deploy/mosquitto/add-agent.sh refuses it; "
            "give this gateway ids without ':' or a broker user made another way\n"
        )
    profiles = {profile.model: profile for profile in setup.profiles.values()}
    for model, profile in sorted(profiles.items()):
        header += "".join(f"note: profile {model}: {note}\n" for note in profile.byte_order_notes())
        header += "".join(f"note: profile {model}: {note}\n" for note in profile.state_notes())
    return header + "\n" + table


def profiles_report() -> str:
    rows: list[list[object]] = []
    for name in builtin_names():
        profile = load_profile(name)
        rows.append(
            [
                name,
                profile.manufacturer,
                profile.function.value,
                len(profile.read_registers),
                len(profile.registers) - len(profile.read_registers),
                len(plan_reads(profile)),
                profile.description,
            ]
        )
    headers = [
        _("profile"),
        _("manufacturer"),
        _("table"),
        _("quantities"),
        _("unconfirmed"),
        _("requests"),
        _("description"),
    ]
    return format_table(headers, rows)


_SUBSTITUTED: Final = {
    "type": "string",
    "pattern": ENV_PATTERN,
    "description": "${VAR}, ${VAR:-default} or ${file:PATH}: checked once substituted",
}
# Keys that hold subschemas: a value is a leaf (a number, a text with a pattern, an
# enum) when its schema has none of them.
_NESTED: Final = ("properties", "items", "additionalProperties", "allOf", "oneOf")


def _leaf(schema: dict[str, Any]) -> bool:
    return not (
        "$ref" in schema
        or "anyOf" in schema
        or schema.get("type") in ("object", "array")
        or any(k in schema for k in _NESTED)
    )


def _with_substitution(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with `${...}` allowed wherever the file has a value: the agent substitutes
    every text before it checks types, so `port: ${PORT}` is valid (the schema alone would
    want an integer)."""
    if "anyOf" in schema:  # one of several: the leaves stay, one more if one is a value
        members = [m if _leaf(m) else _with_substitution(m) for m in schema["anyOf"]]
        values = [m for m in members if _leaf(m) and m.get("type") != "null"]
        return {**schema, "anyOf": [*members, *([_SUBSTITUTED] if values else [])]}
    if "$ref" in schema:
        return schema  # the definition it names is converted itself
    if not _leaf(schema):
        converted = dict(schema)
        for key in _NESTED:
            value = schema.get(key)
            if key == "properties" and isinstance(value, dict):
                converted[key] = {name: _with_substitution(sub) for name, sub in value.items()}
            elif isinstance(value, dict):
                converted[key] = _with_substitution(value)
            elif isinstance(value, list):
                converted[key] = [_with_substitution(sub) for sub in value]
        return converted
    # A leaf: the annotations stay outside, the checks become one of two alternatives.
    annotations = {k: v for k, v in schema.items() if k in ("title", "description", "default")}
    checks = {k: v for k, v in schema.items() if k not in annotations}
    if checks == {"type": "string"}:
        return schema
    return {**annotations, "anyOf": [checks, _SUBSTITUTED]}


def config_schema() -> str:
    """The JSON schema of the agent config file, for editors' completion and validation."""
    schema = AgentConfig.model_json_schema()
    schema["title"] = "GreenGauge energy-agent config"
    schema = _with_substitution(schema)
    schema["$defs"] = {name: _with_substitution(sub) for name, sub in schema["$defs"].items()}
    return json.dumps(schema, indent=2)
