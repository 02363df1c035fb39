"""Config files: errors name the file, the line and the field; env expansion; both configs."""

from __future__ import annotations

import re
import socket
import textwrap
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from agent.config import AgentConfig, load_config
from agent.profiles import builtin_names
from collector.config import load_config as load_collector_config
from greengauge.common.configfile import ConfigError, load_model, load_yaml

VALID = """\
site: plant-1
agent_id: gw-1
mqtt:
  url: mqtt://broker.local
meters:
  - id: main
    profile: eastron_sdm630
    modbus:
      host: 10.0.0.10
  - id: hall-2
    profile: chint_dtsu666
    interval: 5
    modbus:
      host: 10.0.0.11
      port: 1502
      unit_id: 3
"""


def write(tmp_path: Path, text: str, name: str = "agent.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


def the_problem(path: Path) -> str:
    problems = problems_of(path)
    assert len(problems) == 1, problems
    return problems[0]


# --- a valid agent config -----------------------------------------------------------------


def test_valid_config_loads_with_its_profiles(tmp_path: Path) -> None:
    setup = load_config(write(tmp_path, VALID))
    config = setup.config
    assert (config.site, config.agent_id) == ("plant-1", "gw-1")
    assert config.mqtt.host == "broker.local"
    assert config.mqtt.port == 1883
    main, hall = config.meters
    assert main.modbus is not None and hall.modbus is not None
    assert (main.id, main.interval, main.modbus.port, main.modbus.unit_id) == ("main", 1.0, 502, 1)
    assert main.modbus.timeout == 1.0
    assert (hall.id, hall.interval, hall.modbus.port, hall.modbus.unit_id) == (
        "hall-2",
        5.0,
        1502,
        3,
    )
    assert set(setup.profiles) == {"main", "hall-2"}
    assert setup.profiles["main"].model == "eastron_sdm630"
    assert setup.profiles["hall-2"].model == "chint_dtsu666"


def test_a_profile_file_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "mine.yaml").write_text(
        textwrap.dedent(
            """\
            model: my_meter
            manufacturer: Me
            description: a meter of my own
            sources: {manual: my notes}
            function: input
            registers:
              - {quantity: voltage_l1, address: 0, type: float32, unit: V, source: "p. 3"}
            """
        ),
        encoding="utf-8",
    )
    text = VALID.replace("profile: chint_dtsu666", "profile: profiles/mine.yaml")
    setup = load_config(write(tmp_path, text))
    assert setup.profiles["hall-2"].model == "my_meter"


# --- errors name file, line and field -----------------------------------------------------


def test_missing_site(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("site: plant-1\n", ""))
    assert the_problem(path) == f"{path}:1: site: Field required"


def test_missing_mqtt_url(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("  url: mqtt://broker.local\n", "  keepalive: 60\n"))
    assert the_problem(path) == f"{path}:4: mqtt.url: Field required"


def test_bad_meter_id(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("id: hall-2", "id: hall/2"))
    problem = the_problem(path)
    assert problem.startswith(f"{path}:10: meters.1.id: ")
    assert "invalid id ('/' at character 5)" in problem


def test_unknown_key_typo(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("interval: 5", "intervall: 5"))
    assert the_problem(path) == (
        f"{path}:12: meters.1.intervall: unknown field (misspelt, or not valid here)"
    )


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path = write(tmp_path, VALID + "sites: other\n")
    assert the_problem(path) == f"{path}:17: sites: unknown field (misspelt, or not valid here)"


def test_wrong_type_names_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("port: 1502", "port: fifteen"))
    problem = the_problem(path)
    assert problem.startswith(f"{path}:15: meters.1.modbus.port: ")
    assert "integer" in problem


def test_value_out_of_range(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("unit_id: 3", "unit_id: 256"))
    assert the_problem(path).startswith(f"{path}:16: meters.1.modbus.unit_id: ")


def test_wrong_type_for_a_section(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("    modbus:\n      host: 10.0.0.10\n", "    modbus: 7\n"))
    assert the_problem(path).startswith(f"{path}:8: meters.0.modbus: ")


def test_every_problem_is_reported(tmp_path: Path) -> None:
    text = VALID.replace("interval: 5", "intervall: 5").replace("port: 1502", "port: x")
    path = write(tmp_path, text)
    problems = problems_of(path)
    assert len(problems) == 2
    assert any(p.startswith(f"{path}:12: meters.1.intervall:") for p in problems)
    assert any(p.startswith(f"{path}:15: meters.1.modbus.port:") for p in problems)


def test_bad_broker_url(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("mqtt://broker.local", "http://broker.local"))
    problem = the_problem(path)
    assert problem.startswith(f"{path}:4: mqtt.url: ")
    assert "mqtt://" in problem


def test_no_meters(tmp_path: Path) -> None:
    path = write(tmp_path, "site: s\nmqtt: {url: 'mqtt://b'}\nmeters: []\n")
    assert the_problem(path).startswith(f"{path}:3: meters: ")


def test_unknown_profile_lists_the_builtin_ones(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("profile: eastron_sdm630", "profile: eastron_sdm631"))
    problem = the_problem(path)
    assert problem.startswith(f"{path}:7: meters.0.profile: unknown profile 'eastron_sdm631'")
    assert {"chint_dtsu666", "eastron_sdm630"} <= set(builtin_names())
    for name in builtin_names():
        assert name in problem


def test_missing_profile_file(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("profile: chint_dtsu666", "profile: nowhere.yaml"))
    problem = the_problem(path)
    assert problem.startswith(f"{path}:11: meters.1.profile: ")
    assert "nowhere.yaml" in problem
    assert "cannot read" in problem


def test_invalid_profile_file(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("model: Bad Name\n", encoding="utf-8")
    path = write(tmp_path, VALID.replace("profile: chint_dtsu666", "profile: bad.yaml"))
    problems = problems_of(path)
    assert problems
    assert all(p.startswith(f"{path}:11: meters.1.profile: ") for p in problems)
    assert any("bad.yaml" in p and "model" in p for p in problems)


def test_every_bad_profile_is_reported(tmp_path: Path) -> None:
    text = VALID.replace("eastron_sdm630", "nope_a").replace("chint_dtsu666", "nope_b")
    path = write(tmp_path, text)
    problems = problems_of(path)
    assert [p.split(": unknown profile")[0] for p in problems] == [
        f"{path}:7: meters.0.profile",
        f"{path}:11: meters.1.profile",
    ]


def test_duplicate_meter_ids(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("id: hall-2", "id: main"))
    problem = the_problem(path)
    assert "main" in problem
    assert "unique" in problem
    # The problem belongs to `meters` (lines 5-6) or to the repeated id (line 10),
    # not to the top of the file.
    assert re.match(rf"{re.escape(str(path))}:(5|6|10): meters\b", problem), problem


def test_duplicate_top_level_key(tmp_path: Path) -> None:
    path = write(tmp_path, VALID + "site: plant-2\n")
    problem = the_problem(path)
    assert "'site' appears twice" in problem
    # the line of the repeated key, not the line where its mapping starts
    assert problem.startswith(f"{path}:17:"), problem


def test_duplicate_nested_key(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("      unit_id: 3\n", "      port: 1503\n"))
    problem = the_problem(path)
    assert "'port' appears twice" in problem
    assert problem.startswith(f"{path}:16:"), problem


def test_merge_keys_are_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        site: s
        base: &base {host: h}
        mqtt:
          <<: *base
        """,
    )
    # '<<' has the YAML merge tag: the check for it must not be pre-empted by the loader
    problem = the_problem(path)
    assert problem.startswith(f"{path}:4: ")
    assert "merge keys" in problem


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("site: !custom plant\n", 1),
        ("site: s\nmqtt:\n  password: !secret mqtt_password\n", 3),
    ],
)
def test_unknown_yaml_tag_is_a_config_error(tmp_path: Path, text: str, line: int) -> None:
    # The tag cannot be constructed by the safe loader; that must come out as a ConfigError
    # naming the file and line, not as a bare yaml.constructor.ConstructorError.
    path = write(tmp_path, text)
    problem = the_problem(path)
    assert problem.startswith(f"{path}:{line}:"), problem


def test_a_list_as_a_key_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, "site: s\n? [a, b]\n: x\n")
    assert the_problem(path).startswith(f"{path}:")


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("site: s\nmqtt:\n  url: mqtt://b\n meters: 1\n", 4),
        ("site: s\nmqtt: {url: 'mqtt://b'\nmeters: []\n", 3),
        ("site: s\nmqtt:\n  url: 'mqtt://b\n", 4),
        ("site: s\n\tmqtt: x\n", 2),
    ],
)
def test_yaml_syntax_error_names_its_line(tmp_path: Path, text: str, line: int) -> None:
    path = write(tmp_path, text)
    problem = the_problem(path)
    assert problem.startswith(f"{path}:{line}: YAML syntax: ")


@pytest.mark.parametrize("text", ["", "\n\n", "# nothing but a comment\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    assert the_problem(path) == f"{path}:1: the file is empty"


def test_a_scalar_instead_of_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "just text\n")
    assert the_problem(path).startswith(f"{path}:1: (top level): ")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    problem = the_problem(path)
    assert problem.startswith(f"{path}: cannot read: ")
    assert "No such file" in problem


def test_a_folder_instead_of_a_file(tmp_path: Path) -> None:
    assert the_problem(tmp_path).startswith(f"{tmp_path}: cannot read: ")


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    # Python's own message says "position 22": a byte offset nobody can find in an editor.
    path = tmp_path / "latin1.yaml"
    path.write_bytes("site: s\nmqtt:\n  url: Düsseldorf\n".encode("latin-1"))
    assert the_problem(path) == f"{path}:3: not UTF-8 text: invalid start byte"


# --- ${ENV} expansion ---------------------------------------------------------------------


class _Env(BaseModel):
    model_config = ConfigDict(extra="forbid")

    a: str = ""
    b: str = ""
    n: int = 0


@pytest.mark.parametrize(
    ("text", "environ", "expected"),
    [
        ("a: ${USER_X}", {"USER_X": "alice"}, "alice"),
        ("a: pre-${USER_X}-post", {"USER_X": "alice"}, "pre-alice-post"),
        ("a: ${X}${Y}", {"X": "1", "Y": "2"}, "12"),
        ("a: ${X:-fallback}", {}, "fallback"),
        ("a: ${X:-fallback}", {"X": "set"}, "set"),
        ("a: ${X:-fallback}", {"X": ""}, ""),
        ("a: ${X:-}", {}, ""),
        ("a: ${X:-a b:c}", {}, "a b:c"),
        ("a: $X", {"X": "no braces"}, "$X"),
        ("a: '${X}'", {"X": "quoted"}, "quoted"),
        ("a: ${X}", {"X": "${Y}"}, "${Y}"),
    ],
)
def test_env_expansion(tmp_path: Path, text: str, environ: dict[str, str], expected: str) -> None:
    model, _ = load_model(write(tmp_path, text + "\n"), _Env, environ)
    assert model.a == expected


def test_env_expansion_feeds_validation(tmp_path: Path) -> None:
    model, _ = load_model(write(tmp_path, "n: ${PORT:-502}\n"), _Env, {})
    assert model.n == 502
    model, _ = load_model(write(tmp_path, "n: ${PORT:-502}\n"), _Env, {"PORT": "1502"})
    assert model.n == 1502


def test_env_unset_names_file_line_field_and_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "b: x\na: ${MISSING_SECRET}\n")
    with pytest.raises(ConfigError) as info:
        load_model(path, _Env, {})
    assert info.value.problems == [f"{path}:2: a: environment variable MISSING_SECRET is not set"]


def test_env_expansion_leaves_keys_alone(tmp_path: Path) -> None:
    data, _ = load_yaml(write(tmp_path, "${K}: ${V}\n"), {"K": "key", "V": "value"})
    assert data == {"${K}": "value"}


def test_env_expansion_in_lists_and_nesting(tmp_path: Path) -> None:
    text = "top:\n  list:\n    - ${A}\n    - ${B:-two}\n"
    data, lines = load_yaml(write(tmp_path, text), {"A": "one"})
    assert data == {"top": {"list": ["one", "two"]}}
    assert lines[("top", "list", 0)] == 3
    assert lines[("top", "list", 1)] == 4


def test_load_yaml_records_lines(tmp_path: Path) -> None:
    _, lines = load_yaml(write(tmp_path, VALID), {})
    assert lines[()] == 1
    assert lines[("mqtt",)] == 4
    assert lines[("mqtt", "url")] == 4
    assert lines[("meters", 1)] == 10
    assert lines[("meters", 1, "modbus", "port")] == 15


def test_agent_config_reads_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GG_TEST_PASSWORD", "hunter2")
    monkeypatch.delenv("GG_TEST_HOST", raising=False)
    text = VALID.replace(
        "  url: mqtt://broker.local\n",
        "  url: mqtt://${GG_TEST_HOST:-broker.local}\n"
        "  username: gw\n"
        "  password: ${GG_TEST_PASSWORD}\n",
    )
    mqtt = load_config(write(tmp_path, text)).config.mqtt
    assert mqtt.host == "broker.local"
    assert mqtt.password is not None
    assert mqtt.password.get_secret_value() == "hunter2"


def test_agent_config_unset_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GG_TEST_PASSWORD", raising=False)
    text = VALID.replace(
        "  url: mqtt://broker.local\n",
        "  url: mqtt://broker.local\n  password: ${GG_TEST_PASSWORD}\n",
    )
    path = write(tmp_path, text)
    assert the_problem(path) == (
        f"{path}:5: mqtt.password: environment variable GG_TEST_PASSWORD is not set"
    )


# --- agent_id -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hostname", "expected"),
    [
        ("edge-gw-7", "edge-gw-7"),
        ("edge-gw-7.plant.example.com", "edge-gw-7"),
        ("", "agent"),
        (".local", "agent"),
        ("bad host", "agent"),
        ("x" * 70, "agent"),
    ],
)
def test_agent_id_defaults_to_the_host_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hostname: str, expected: str
) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: hostname)
    setup = load_config(write(tmp_path, VALID.replace("agent_id: gw-1\n", "")))
    assert setup.config.agent_id == expected


def test_explicit_agent_id_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "host")
    assert load_config(write(tmp_path, VALID)).config.agent_id == "gw-1"


def test_bad_agent_id(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("agent_id: gw-1", "agent_id: 'gw #1'"))
    assert the_problem(path).startswith(f"{path}:2: agent_id: ")


def test_agent_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID)).config
    assert isinstance(config, AgentConfig)
    with pytest.raises(ValueError, match="frozen"):
        config.site = "other"


# --- the collector's config ---------------------------------------------------------------

COLLECTOR = """\
mqtt:
  url: mqtts://broker.local
"""

INFLUX = """\
influxdb:
  url: https://influx.local:8086
  org: plant
  bucket: energy
  token: ${GG_TEST_INFLUX_TOKEN}
"""


def test_collector_influxdb_is_optional(tmp_path: Path) -> None:
    config = load_collector_config(write(tmp_path, COLLECTOR, "collector.yaml"))
    assert config.influxdb is None
    assert config.mqtt.tls
    assert config.mqtt.port == 8883
    assert config.write.max_values == 50_000
    assert config.write.max_delay == 0.05


def test_collector_token_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GG_TEST_INFLUX_TOKEN", "s3cret")
    config = load_collector_config(write(tmp_path, COLLECTOR + INFLUX, "collector.yaml"))
    assert config.influxdb is not None
    assert config.influxdb.token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(config)
    assert (config.influxdb.org, config.influxdb.bucket) == ("plant", "energy")
    assert config.influxdb.timeout == 10.0


def test_collector_token_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GG_TEST_INFLUX_TOKEN", raising=False)
    path = write(tmp_path, COLLECTOR + INFLUX, "collector.yaml")
    with pytest.raises(ConfigError) as info:
        load_collector_config(path)
    assert info.value.problems == [
        f"{path}:7: influxdb.token: environment variable GG_TEST_INFLUX_TOKEN is not set"
    ]


def test_collector_influx_url_must_be_http(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GG_TEST_INFLUX_TOKEN", "t")
    text = COLLECTOR + INFLUX.replace("https://", "udp://")
    path = write(tmp_path, text, "collector.yaml")
    with pytest.raises(ConfigError) as info:
        load_collector_config(path)
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith(f"{path}:4: influxdb.url: ")


def test_collector_influx_missing_token(tmp_path: Path) -> None:
    text = COLLECTOR + INFLUX.replace("  token: ${GG_TEST_INFLUX_TOKEN}\n", "")
    path = write(tmp_path, text, "collector.yaml")
    with pytest.raises(ConfigError) as info:
        load_collector_config(path)
    assert info.value.problems == [f"{path}:4: influxdb.token: Field required"]


def test_collector_data_dir_defaults_next_to_the_config(tmp_path: Path) -> None:
    config = load_collector_config(write(tmp_path, COLLECTOR, "collector.yaml"))
    assert config.data_dir == (tmp_path / "var" / "collector").resolve()
    assert config.data_dir.is_absolute()


@pytest.mark.parametrize(("given", "expected"), [("data", "data"), ("../state", "../state")])
def test_collector_data_dir_is_relative_to_the_config(
    tmp_path: Path, given: str, expected: str
) -> None:
    (tmp_path / "etc").mkdir()
    text = COLLECTOR + f"data_dir: {given}\n"
    config = load_collector_config(write(tmp_path / "etc", text, "collector.yaml"))
    assert config.data_dir == (tmp_path / "etc" / expected).resolve()


def test_collector_data_dir_for_a_relative_config_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "etc").mkdir()
    write(tmp_path / "etc", COLLECTOR + "data_dir: state\n", "collector.yaml")
    monkeypatch.chdir(tmp_path)
    config = load_collector_config(Path("etc/collector.yaml"))
    assert config.data_dir == (tmp_path / "etc" / "state").resolve()


def test_collector_absolute_data_dir_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    config = load_collector_config(
        write(tmp_path, COLLECTOR + f"data_dir: {target}\n", "collector.yaml")
    )
    assert config.data_dir == target


def test_collector_unknown_key(tmp_path: Path) -> None:
    path = write(tmp_path, COLLECTOR + "write:\n  max_delays: 1\n", "collector.yaml")
    with pytest.raises(ConfigError) as info:
        load_collector_config(path)
    assert info.value.problems == [
        f"{path}:4: write.max_delays: unknown field (misspelt, or not valid here)"
    ]
