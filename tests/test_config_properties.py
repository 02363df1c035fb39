"""Property: whatever a config file holds, loading it returns a config or raises ConfigError
whose every problem is one line starting `FILE:LINE: ` with a line the file has; nothing
else escapes. Checked on configs generated from valid ones: structures changed (values of
any type and size, unknown fields, shared values dumped as YAML aliases, values inside
themselves) and texts edited with YAML's special characters and bytes that are not UTF-8.
"""

from __future__ import annotations

import copy
import re
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_accounting_config import site

from agent.config import load_config as load_agent_config
from agent.profiles import load_profile
from collector.config import load_config as load_collector_config
from greengauge.common.configfile import ConfigError

PROFILE = Path(__file__).resolve().parent.parent / "agent" / "profiles" / "eastron_sdm630.yaml"

AGENT: dict[str, Any] = {
    "site": "plant-1",
    "agent_id": "gw-1",
    "mqtt": {"url": "mqtt://broker.local", "username": "u", "password": "p"},
    "meters": [
        {"id": "main", "profile": "eastron_sdm630", "modbus": {"host": "10.0.0.10"}},
        {
            "id": "hall-2",
            "profile": "chint_dtsu666",
            "interval": 5,
            "modbus": {"host": "10.0.0.11", "port": 1502, "unit_id": 3},
        },
    ],
}
COLLECTOR: dict[str, Any] = {
    "mqtt": {"url": "mqtt://broker.local"},
    "data_dir": "data",
    "write": {"max_values": 1000, "max_delay": 0.5},
    "accounting": {"sites": [site()]},
}
KINDS: dict[str, tuple[dict[str, Any], Callable[[Path], object]]] = {
    "agent": (AGENT, load_agent_config),
    "collector": (COLLECTOR, load_collector_config),
}
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**90, max_value=10**300),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(["", "${NOPE}", "${file:/dev/zero}", "mqtt://x", "eastron_sdm630", "0x10"]),
    st.dates(),
)
# Values that load as YAML (no huge number, no substitution): an unknown field is all
# that is wrong where one of them is added.
plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-1000, 1000)
    | st.text(string.ascii_letters, max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(string.ascii_letters, max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8) | st.integers(), inner, max_size=4)
    ),
    max_leaves=12,
)


def containers(data: Any, path: tuple[Any, ...] = (), seen: set[int] | None = None) -> list[Any]:
    """Paths of every mapping and list in `data`, the root first, each object once (the
    mutations make shared and self-containing ones)."""
    seen = set() if seen is None else seen
    seen.add(id(data))
    found = [path]
    items = data.items() if isinstance(data, dict) else enumerate(data)
    for key, value in items:
        if isinstance(value, dict | list) and id(value) not in seen:
            found += containers(value, (*path, key), seen)
    return found


def at(data: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        data = data[key]
    return data


@st.composite
def mutated(draw: st.DrawFn, valid: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(valid)
    for _ in range(draw(st.integers(1, 4))):
        target = at(data, draw(st.sampled_from(containers(data))))
        keys = list(target) if isinstance(target, dict) else list(range(len(target)))
        action = draw(st.sampled_from(["set", "delete", "add", "alias", "self"]))
        if action == "add" or not keys:
            if isinstance(target, dict):
                target[draw(st.text(min_size=1, max_size=8))] = draw(values)
            else:
                target.append(draw(values))
            continue
        key = draw(st.sampled_from(keys))
        if action == "set":
            target[key] = draw(values)
        elif action == "delete":
            del target[key]
        elif action == "alias":
            # The same object twice: safe_dump writes an anchor and an alias.
            other = at(data, draw(st.sampled_from(containers(data))))
            target[key] = other
        else:
            target[key] = target  # a value inside itself: `&id001 {..., key: *id001}`
    return data


def assert_line_precise(path: Path, load: Callable[[Path], object]) -> None:
    """Loads, or ConfigError with one-line problems at a line the file has."""
    # YAML's line breaks: NEL and the Unicode separators too, and libyaml counts them.
    text = path.read_bytes().decode("utf-8", errors="replace")
    lines = len(re.split("\r\n|[\r\n\x85\u2028\u2029]", text))
    try:
        load(path)
    except ConfigError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert "\n" not in problem and problem.isprintable(), problem
            match = re.match(rf"{re.escape(str(path))}:(\d+): \S", problem)
            assert match, problem
            assert 1 <= int(match.group(1)) <= lines, (problem, lines)


@pytest.mark.parametrize("kind", KINDS)
@SETTINGS
@given(data=st.data())
def test_any_changed_structure_loads_or_is_refused_line_by_line(
    tmp_path: Path, kind: str, data: st.DataObject
) -> None:
    valid, load = KINDS[kind]
    config = data.draw(mutated(valid))
    path = tmp_path / f"{kind}.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    assert_line_precise(path, load)


@pytest.mark.parametrize("kind", KINDS)
@SETTINGS
@given(data=st.data())
def test_an_unknown_field_is_named_at_its_line(
    tmp_path: Path, kind: str, data: st.DataObject
) -> None:
    valid, load = KINDS[kind]
    config = copy.deepcopy(valid)
    where = data.draw(
        st.sampled_from([p for p in containers(config) if isinstance(at(config, p), dict)])
    )
    at(config, where)["zz_unknown"] = data.draw(plain)
    path = tmp_path / f"{kind}.yaml"
    text = yaml.safe_dump(config, allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    # The line where the value starts (the project's rule): the key's, or the next one.
    key_line, rest = next(
        (n, t.partition("zz_unknown:")[2])
        for n, t in enumerate(text.splitlines(), 1)
        if "zz_unknown:" in t
    )
    line = key_line if rest.strip() else key_line + 1
    field = ".".join(str(k) for k in (*where, "zz_unknown"))
    with pytest.raises(ConfigError) as caught:
        load(path)
    # A union's loc holds the member's name too: `output.OutputFromMeter.zz_unknown`.
    prefix, _, name = field.rpartition(".")
    expected = rf"{re.escape(f'{path}:{line}: {prefix}')}\.?(\w+\.)?{name}: unknown field "
    assert any(re.match(expected, p) for p in caught.value.problems), caught.value.problems


# fmt: off
_TEXT_SNIPPETS = [
    "&a ", "*a", "&b [*b]", "&c {k: *c}", "[", "]", "{", "}", ":", ": ", "- ", "\n", "\n  ",
    "\t", "!!binary ", "!!int ", "!foo ", "<<: ", "? ", "#", "'", '"', "|", ">",
    "%YAML 1.1\n", "@", "---\n", "...\n", "${", "${file:/dev/zero}", "${file:nope}",
    "${NOPE}", "9" * 120, "1:2:3", "2024-02-30", "0x", ".nan", "~", "\x00", "\x07",
    "\ufeff", "\u2028", "\u00e9", "\\", "*", "&",
]
# fmt: on
SNIPPETS = [
    *(s.encode() for s in _TEXT_SNIPPETS),
    b"\xff",
    b"\xc3",
    b"\xed\xa0\x80",  # an encoded surrogate: not UTF-8
]


@st.composite
def edited(draw: st.DrawFn, text: bytes) -> bytes:
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 8))
        snippet = draw(st.sampled_from(SNIPPETS)) if draw(st.booleans()) else b""
        text = text[:at] + snippet + text[at + cut :]
    return text


@pytest.mark.parametrize("kind", [*KINDS, "profile"])
@SETTINGS
@given(data=st.data())
def test_any_edited_text_loads_or_is_refused_line_by_line(
    tmp_path: Path, kind: str, data: st.DataObject
) -> None:
    if kind == "profile":
        text = PROFILE.read_bytes()
        load: Callable[[Path], object] = lambda path: load_profile(str(path))  # noqa: E731
    else:
        valid, load = KINDS[kind]
        text = yaml.safe_dump(valid).encode()
    path = tmp_path / f"{kind}.yaml"
    path.write_bytes(data.draw(edited(text)))
    assert_line_precise(path, load)
