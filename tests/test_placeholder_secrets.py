"""A secret left at the examples' `change-me` (deploy/.env.example) is refused when the
config is loaded, by the agent and the collector alike, naming the field, its line and
where the value came from; so is a secret variable that is set but empty. A `change-me`
anywhere else is just text."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.config import load_config as load_agent
from collector.config import load_config as load_collector
from greengauge.common.configfile import ConfigError, load_yaml
from greengauge.common.secrets import is_placeholder

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = "change-me"
SECRET_KEYS = ("password", "token", "read_token", "write_token", "secret", "api_key", "passwd")
# Each way a placeholder is written: a bare value, with spaces, in another case.
placeholders = st.builds(
    lambda word, upper, pad: (
        " " * pad
        + "".join(c.upper() if u else c for c, u in zip(word, upper, strict=False))
        + " " * pad
    ),
    st.sampled_from(["change-me", "changeme"]),
    st.lists(st.booleans(), min_size=9, max_size=9),
    st.integers(0, 2),
)


def _load(text: str, environ: dict[str, str]) -> object:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.yaml"
        path.write_text(text)
        (Path(folder) / "pw").write_text(environ.get("FILE", "") + "\n")
        return load_yaml(path, environ)[0]


@given(key=st.sampled_from(SECRET_KEYS), value=placeholders)
def test_a_placeholder_secret_is_refused_however_it_arrives(key: str, value: str) -> None:
    assert is_placeholder(value)
    for text, environ, source in (
        (f"a:\n  {key}: '{value}'\n", {}, "the value"),
        (f"a:\n  {key}: ${{SECRET}}\n", {"SECRET": value}, "environment variable SECRET"),
        (f"a:\n  {key}: ${{SECRET:-{value}}}\n", {}, "its default"),
        (f"a:\n  {key}: ${{file:pw}}\n", {"FILE": value}, "secret file pw"),
    ):
        with pytest.raises(ConfigError) as error:
            _load(text, environ)
        assert error.value.problems == [
            f"{error.value.problems[0].split(':')[0]}:2: a.{key}: {source} is still the "
            "example's placeholder: set a real secret"
        ]
        assert value.strip() not in str(error.value)


@given(key=st.sampled_from(SECRET_KEYS))
def test_a_secret_variable_set_but_empty_is_refused(key: str) -> None:
    with pytest.raises(ConfigError, match=f"a.{key}: environment variable S is empty: set it"):
        _load(f"a:\n  {key}: ${{S}}\n", {"S": ""})
    # An explicit empty default is a choice, not a slip.
    assert _load(f"a:\n  {key}: ${{S:-}}\n", {}) == {"a": {key: ""}}


@given(value=placeholders, key=st.sampled_from(["site", "username", "description", "tokenizer"]))
def test_change_me_elsewhere_is_text(value: str, key: str) -> None:
    assert _load(f"a:\n  {key}: '{value}'\n", {}) == {"a": {key: value}}


@given(
    value=st.text(min_size=1, max_size=20).filter(
        lambda v: not is_placeholder(v) and v.isprintable() and "${" not in v
    )
)
def test_a_real_secret_passes(value: str) -> None:
    assert _load("a:\n  password: ${S}\n", {"S": value}) == {"a": {"password": value}}


def test_both_programs_refuse_the_env_examples_placeholders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compose stack's configs with deploy/.env.example's values, as compose passes
    them: the collector and the demo agent refuse to start, naming the variable."""
    monkeypatch.setenv("MQTT_PASSWORD", PLACEHOLDER)
    monkeypatch.setenv("INFLUX_TOKEN", "a-real-token-4f1e")
    collector = ROOT / "configs/collector.central.example.yaml"
    with pytest.raises(ConfigError) as error:
        load_collector(collector)
    assert error.value.problems == [
        f"{collector}:12: mqtt.password: environment variable MQTT_PASSWORD is still the "
        "example's placeholder: set a real secret"
    ]
    # The API read token compose passes from API_READ_TOKEN, once the password is set.
    monkeypatch.setenv("MQTT_PASSWORD", "a-real-password-93ab")
    monkeypatch.setenv("GREENGAUGE_API_READ_TOKEN", PLACEHOLDER)
    with pytest.raises(
        ConfigError, match=r"api\.read_token: environment variable GREENGAUGE_API_R"
    ):
        load_collector(collector)
    monkeypatch.setenv("MQTT_PASSWORD", PLACEHOLDER)
    agent = ROOT / "deploy/demo-agent.yaml"
    with pytest.raises(ConfigError, match=r"mqtt\.password: environment variable MQTT_PASSWORD"):
        load_agent(agent)
    # Unset in deploy/.env (the demo's password is optional there): empty, refused too.
    monkeypatch.setenv("MQTT_PASSWORD", "")
    with pytest.raises(ConfigError, match="MQTT_PASSWORD is empty: set it"):
        load_agent(agent)
