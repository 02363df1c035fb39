"""Hostile files cannot hang or crash the tools: each is one line `FILE:LINE: field: reason`.

Config files, meter profiles, `${file:...}` secrets, the hourly grid factor CSV, TLS files,
the collector's sequence state, and the state databases (outbox, spool, stores). The bounds
are asserted by the message that refuses a file, never by timing: a file that still
expanded or recursed would hang or fail the test.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from processes import BIN, running, wait_for
from pydantic import ValidationError
from test_accounting_config import accounting
from test_accounting_hourly import write_config as write_hourly_config

from agent.config import load_config
from agent.publish.outbox import Outbox, OutboxError
from collector import sequences
from collector.accounting.db import FILE as ACCOUNTING_FILE
from collector.accounting.db import AccountingDB
from collector.config import load_config as load_collector_config
from collector.spool import Spool
from collector.stores.sqlite import SqliteStore
from greengauge.common.broker import BrokerSettings
from greengauge.common.configfile import (
    MAX_ALIAS_VALUES,
    MAX_DEPTH,
    MAX_FILE_BYTES,
    MAX_NUMBER_CHARS,
    ConfigError,
    load_yaml,
)
from greengauge.common.files import open_state
from greengauge.common.secrets import tls_problems

AGENT = """\
site: plant-1
agent_id: gw-1
mqtt:
  url: mqtt://broker.local
meters:
  - id: main
    profile: eastron_sdm630
    modbus:
      host: 10.0.0.10
"""
COLLECTOR = """\
mqtt:
  url: mqtt://broker.local
data_dir: data
"""


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        text = text.encode("utf-8")
    path.write_bytes(text)
    return path


def the_problem(load: Callable[[Path], Any], path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert len(caught.value.problems) == 1, caught.value.problems
    return caught.value.problems[0]


def laughs(levels: int) -> str:
    """The 'billion laughs': each level a list of nine aliases of the one before."""
    names = [chr(ord("a") + i) for i in range(levels)]
    lines = [f"{names[0]}: &{names[0]} [{', '.join(['lol'] * 9)}]"]
    lines += [f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]" for p, n in itertools.pairwise(names)]
    return "\n".join(lines) + "\n"


# --- aliases ------------------------------------------------------------------------------


def test_billion_laughs_is_refused_by_the_alias_counter(tmp_path: Path) -> None:
    # 9 levels: 9^9 = 387 million strings if expanded. 9^6 values already pass the bound, so
    # the key that trips it is the sixth (`f`, line 6), somewhere inside its expansion.
    path = write(tmp_path / "c.yaml", laughs(9))
    problem = the_problem(load_yaml, path)
    assert re.fullmatch(
        rf"{re.escape(str(path))}:6: f(\.\d)+: aliases expand to more than "
        rf"{MAX_ALIAS_VALUES} values",
        problem,
    ), problem


def test_the_alias_counter_allows_exactly_its_bound(tmp_path: Path) -> None:
    ok = write(tmp_path / "ok.yaml", "a: &a x\nb:\n" + "  - *a\n" * MAX_ALIAS_VALUES)
    data, _ = load_yaml(ok)
    assert len(data["b"]) == MAX_ALIAS_VALUES
    over = write(tmp_path / "over.yaml", "a: &a x\nb:\n" + "  - *a\n" * (MAX_ALIAS_VALUES + 1))
    assert the_problem(load_yaml, over) == (
        f"{over}:3: b.{MAX_ALIAS_VALUES}: aliases expand to more than {MAX_ALIAS_VALUES} values"
    )


def test_an_anchor_reused_a_thousand_times_loads(tmp_path: Path) -> None:
    # 1,000 uses of a 50-value mapping: 51,000 alias values, within the bound.
    anchor = "{" + ", ".join(f"k{i}: {i}" for i in range(50)) + "}"
    text = f"bus: &bus {anchor}\nmeters:\n" + "  - *bus\n" * 1000
    data, lines = load_yaml(write(tmp_path / "c.yaml", text))
    assert data["meters"] == [data["bus"]] * 1000
    assert lines[("meters", 999, "k49")] == 3  # the line of the list using it


def test_errors_in_an_aliased_value_name_the_line_of_each_use(tmp_path: Path) -> None:
    meters = "".join(
        f"  - id: m{i}\n    profile: eastron_sdm630\n    modbus: *bus\n" for i in range(1, 4)
    )
    text = (
        "site: s\nmqtt: {url: mqtt://b}\nmeters:\n"
        "  - id: m0\n    profile: eastron_sdm630\n    modbus: &bus {host: h, port: 70000}\n"
        + meters
    )
    path = write(tmp_path / "agent.yaml", text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    # port 70000 is refused in the anchor and at each alias: the line of the `modbus:` key
    # that uses it, not the anchor's line over again.
    lines = [
        re.match(rf"{re.escape(str(path))}:(\d+): meters\.(\d)\.modbus", p)
        for p in caught.value.problems
    ]
    assert {(m.group(2), m.group(1)) for m in lines if m} >= {
        ("0", "6"),
        ("1", "9"),
        ("2", "12"),
        ("3", "15"),
    }, caught.value.problems


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        ("site: &a [*a]\n", 1, "site.0"),
        ("site: s\nmqtt: &m\n  url: *m\n", 3, "mqtt.url"),
        ("a: &a\n  b:\n    - c: *a\n", 3, "a.b.0.c"),
    ],
)
def test_an_alias_inside_its_own_anchor_is_refused(
    tmp_path: Path, text: str, line: int, field: str
) -> None:
    path = write(tmp_path / "c.yaml", text)
    assert the_problem(load_yaml, path) == (
        f"{path}:{line}: {field}: an alias refers to a value that contains it"
    )


@pytest.mark.parametrize("kind", ["list", "mapping"])
def test_a_key_holding_aliases_is_refused_unexpanded(tmp_path: Path, kind: str) -> None:
    # The laughs inside the key: constructing it to show it in the message never ended.
    lines = laughs(9).splitlines()
    if kind == "list":
        key = "[" + ", ".join(line.split(": ", 1)[1] for line in lines) + "]"
    else:
        key = "{" + ", ".join(lines) + "}"
    path = write(tmp_path / "c.yaml", f"site: s\n? {key}\n: 1\n")
    assert the_problem(load_yaml, path) == (
        f"{path}:2: (top level): a key must be a plain value, not a {kind}"
    )


# --- nesting ------------------------------------------------------------------------------


def test_nesting_is_allowed_to_its_bound(tmp_path: Path) -> None:
    # The value of `site` is level 1.
    depth = MAX_DEPTH
    data, _ = load_yaml(write(tmp_path / "c.yaml", f"site: {'[' * depth}{']' * depth}\n"))
    for _ in range(depth):
        data = data["site"] if isinstance(data, dict) else data[0]
    assert data == []


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 990])
def test_nesting_deeper_than_the_bound_is_refused(tmp_path: Path, depth: int) -> None:
    # 990: within libyaml's own limit (1000), so it was Python's recursion that gave out.
    path = write(tmp_path / "c.yaml", f"x: 1\nsite: {'[' * depth}{']' * depth}\n")
    field = "site" + ".0" * MAX_DEPTH
    assert the_problem(load_yaml, path) == (
        f"{path}:2: {field}: nested deeper than {MAX_DEPTH} levels"
    )


def test_block_nesting_deeper_than_the_bound_is_refused(tmp_path: Path) -> None:
    text = "".join(f"{'  ' * i}k{i}:\n" for i in range(MAX_DEPTH + 1)) + "  " * (MAX_DEPTH + 1)
    path = write(tmp_path / "c.yaml", text + "v\n")
    problem = the_problem(load_yaml, path)
    assert problem.startswith(f"{path}:{MAX_DEPTH + 2}: k0.k1.k2.")
    assert problem.endswith(f": nested deeper than {MAX_DEPTH} levels")


def test_nesting_beyond_libyaml_is_a_syntax_error_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", f"x: 1\nsite: {'[' * 5000}{']' * 5000}\n")
    assert the_problem(load_yaml, path) == (
        f"{path}:2: YAML syntax: while increasing flow level, exceeded maximum nesting depth"
    )


# --- numbers and other scalars ------------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    [
        "9" * 5000,  # past Python's int digit limit: ValueError
        "1" + ":1" * 3000,  # sexagesimal: quadratic arithmetic
        "0x" + "f" * MAX_NUMBER_CHARS,
        "-" + "9" * MAX_NUMBER_CHARS,
        "1." + "5" * MAX_NUMBER_CHARS,
    ],
)
def test_a_huge_number_is_refused_at_its_line(tmp_path: Path, number: str) -> None:
    path = write(tmp_path / "agent.yaml", f"site: s\nmqtt:\n  port: {number}\n")
    assert the_problem(load_yaml, path) == (
        f"{path}:3: mqtt.port: a number longer than {MAX_NUMBER_CHARS} characters"
    )


def test_a_number_of_the_longest_length_is_a_number(tmp_path: Path) -> None:
    number = "1" * MAX_NUMBER_CHARS
    data, _ = load_yaml(write(tmp_path / "c.yaml", f"n: {number}\n"))
    assert data == {"n": int(number)}


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("!!int", "int"),
        ("!!int _", "int"),
        ("!!int x", "int"),
        ("!!float _", "float"),
        ("!!bool x", "bool"),
        ("!!timestamp x", "timestamp"),
    ],
)
def test_a_value_its_explicit_tag_does_not_fit_is_refused_at_its_line(
    tmp_path: Path, value: str, kind: str
) -> None:
    path = write(tmp_path / "c.yaml", f"site: s\nport: {value}\n")
    assert the_problem(load_yaml, path) == f"{path}:2: port: not a valid {kind}"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2024-02-30", "not a valid timestamp: day is out of range for month"),
        ("2024-13-01", "not a valid timestamp: month must be in 1..12"),
        ("2024-01-01T25:00:00Z", "not a valid timestamp: hour must be in 0..23"),
    ],
)
def test_an_impossible_date_is_refused_at_its_line(tmp_path: Path, value: str, reason: str) -> None:
    path = write(tmp_path / "c.yaml", f"site: s\nstarted: {value}\n")
    assert the_problem(load_yaml, path) == f"{path}:2: started: {reason}"


# --- the file itself ----------------------------------------------------------------------


def test_a_file_over_the_size_bound_is_refused_unread(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "site: s\n" + "#" * MAX_FILE_BYTES + "\n")
    assert the_problem(load_yaml, path) == f"{path}: cannot read: larger than 4 MiB"


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    os.mkfifo(path)
    assert the_problem(load_yaml, path) == f"{path}: cannot read: not a regular file"


def test_dev_zero_is_refused() -> None:
    assert the_problem(load_yaml, Path("/dev/zero")) == (
        "/dev/zero: cannot read: not a regular file"
    )


def test_binary_garbage_names_the_line_of_the_first_bad_byte(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", b"site: s\nmqtt:\n  url: \x89PNG\r\n\x1a\n")
    assert the_problem(load_yaml, path) == f"{path}:3: not UTF-8 text: invalid start byte"


def test_a_control_character_names_its_line_not_its_position(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "site: s\nmqtt:\n  url: a\x00b\n")
    assert the_problem(load_yaml, path) == (
        f"{path}:3: YAML syntax: character #x0000: control characters are not allowed"
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a: 1\n---\nb: 2\n", "2: YAML syntax: expected a single document in the stream (line "),
        ("- &a x\n- &a y\n", "2: YAML syntax: found duplicate anchor; first occurrence (line 1)"),
        ("site: s\nmqtt:\n  url: x\n  url: y\n", "4: key 'url' appears twice"),
    ],
)
def test_yaml_structure_errors_are_one_line(tmp_path: Path, text: str, problem: str) -> None:
    path = write(tmp_path / "c.yaml", text)
    assert the_problem(load_yaml, path).startswith(f"{path}:{problem}")


def test_keys_and_names_with_line_breaks_stay_on_one_line(tmp_path: Path) -> None:
    path = write(tmp_path / "agent.yaml", AGENT + '"bad\\nkey\\u2028x": 1\n')
    assert the_problem(load_config, path) == (
        f"{path}:10: 'bad\\nkey\\u2028x': unknown field (misspelt, or not valid here)"
    )


# --- secrets, profiles, CSV, TLS files ----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("/dev/zero", "not a regular file"),
        ("fifo", "not a regular file"),
        ("folder", "Is a directory"),
    ],
)
def test_a_secret_that_is_not_a_regular_file_is_refused(
    tmp_path: Path, name: str, reason: str
) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "folder").mkdir()
    path = write(tmp_path / "c.yaml", f"site: s\nmqtt:\n  password: ${{file:{name}}}\n")
    assert the_problem(load_yaml, path) == (
        f"{path}:3: mqtt.password: cannot read secret file {tmp_path / name}: {reason}"
    )


def test_a_run_of_unclosed_substitutions_is_expanded_in_linear_time(tmp_path: Path) -> None:
    # Quadratic before: 10,000 took 3.5 s, so these would take an hour or more.
    run = "${A:-" * 200_000
    path = write(tmp_path / "c.yaml", f"a: '{run}'\nb: '{run}}} and ${{B}}'\n")
    data, _ = load_yaml(path, {"B": "b"})
    assert data == {"a": run, "b": run[5:] + " and b"}


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('password: "${file:a\\0b}"', "password"),  # os.open: ValueError, not OSError
        ('data_dir: "a\\0b"', "data_dir"),  # Path.resolve: a ValueError traceback
        ('meters:\n  - profile: "x\\0y.yaml"', "meters.0.profile"),
    ],
)
def test_a_nul_character_in_a_value_is_refused(tmp_path: Path, text: str, field: str) -> None:
    path = write(tmp_path / "c.yaml", f"site: s\n{text}\n")
    line = 3 if field.startswith("meters") else 2
    assert the_problem(load_yaml, path) == (
        f"{path}:{line}: {field}: a value cannot hold a NUL character"
    )


def test_a_hostile_profile_file_is_refused_at_the_meter_using_it(tmp_path: Path) -> None:
    write(tmp_path / "laughs.yaml", laughs(9))
    path = write(tmp_path / "agent.yaml", AGENT.replace("eastron_sdm630", "laughs.yaml"))
    problem = the_problem(load_config, path)
    assert problem.startswith(f"{path}:7: meters.0.profile: {tmp_path / 'laughs.yaml'}:6: f.")
    assert problem.endswith(f"aliases expand to more than {MAX_ALIAS_VALUES} values")


@pytest.mark.parametrize("name", ["a" * 5000, "../../etc/passwd"])
def test_any_text_as_a_profile_name_is_an_unknown_profile(tmp_path: Path, name: str) -> None:
    path = write(tmp_path / "agent.yaml", AGENT.replace("eastron_sdm630", f'"{name}"'))
    problem = the_problem(load_config, path)
    assert problem.startswith(f"{path}:7: meters.0.profile: unknown profile '")


@pytest.mark.parametrize(
    ("series", "problem"),
    [
        (b"2026-11-24T02:00:00Z,0.3\n# \xe9t\xe9\n", "hourly.csv:2: not UTF-8 text: "),
        (b"#" * (MAX_FILE_BYTES + 1), "hourly.csv: cannot read: larger than 4 MiB"),
    ],
)
def test_a_hostile_hourly_series_is_a_config_error(
    tmp_path: Path, series: bytes, problem: str
) -> None:
    path = write_hourly_config(tmp_path, "")
    write(tmp_path / "grid" / "hourly.csv", series)
    with pytest.raises(ConfigError) as caught:
        load_collector_config(path)
    assert f"{path}:8: accounting.sites.0.hourly_grid_factor: " in caught.value.problems[0]
    assert problem in caught.value.problems[0]


def test_a_fifo_as_the_hourly_series_is_refused(tmp_path: Path) -> None:
    path = write_hourly_config(tmp_path, "")
    (tmp_path / "grid" / "hourly.csv").unlink()
    os.mkfifo(tmp_path / "grid" / "hourly.csv")
    with pytest.raises(ConfigError) as caught:
        load_collector_config(path)
    assert "hourly.csv: cannot read: not a regular file" in caught.value.problems[0]


@pytest.mark.parametrize("zone", ["America", "a" * 5000])
def test_a_zone_name_the_database_cannot_open_is_an_unknown_time_zone(zone: str) -> None:
    # 'America' is a folder of the zone database: IsADirectoryError, an OSError, escaped.
    with pytest.raises(ValidationError) as caught:
        accounting(timezone=zone)
    assert f"unknown time zone '{zone}'" in str(caught.value)


@pytest.mark.parametrize("field", ["ca_file", "cert_file"])
def test_a_fifo_as_a_tls_file_is_a_problem_not_a_hang(tmp_path: Path, field: str) -> None:
    os.mkfifo(tmp_path / "fifo")
    mqtt = BrokerSettings.model_validate({"url": "mqtts://b", field: str(tmp_path / "fifo")})
    [problem] = tls_problems(mqtt, "c.yaml:1")
    assert problem.startswith(f"c.yaml:1: mqtt: cannot load the TLS files ({field} ")
    assert problem.endswith(f"not a regular file ({tmp_path / 'fifo'})")


# --- the collector's sequence state -------------------------------------------------------

HOSTILE_STATE: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("truncated", b'[{"site": "s", "agent": "a", "ranges": [[0, '),
    ("not a list", b'{"site": "s"}'),
    ("wrong types", b'[{"site": 1, "agent": "a", "ranges": [[0, 1]]}]'),
    ("unknown field", b'[{"site": "s", "agent": "a", "ranges": [], "x": 1}]'),
    ("reversed range", b'[{"site": "s", "agent": "a", "ranges": [[5, 1]]}]'),
    ("overlapping", b'[{"site": "s", "agent": "a", "ranges": [[0, 5], [3, 9]]}]'),
    ("twice", b'[{"site": "s", "agent": "a", "ranges": []}, ' * 2 + b"]"),
    ("deep", b"[" * 100_000 + b"]" * 100_000),
    ("huge int", b'[{"site": "s", "agent": "a", "ranges": [[0, ' + b"9" * 5000 + b"]]}]"),
    ("not UTF-8", b'[{"site": "\xff", "agent": "a", "ranges": []}]'),
    (
        "too many ranges",
        b'[{"site": "s", "agent": "a", "ranges": ['
        + b", ".join(b"[%d, %d]" % (2 * i, 2 * i) for i in range(sequences.MAX_RANGES + 1))
        + b"]}]",
    ),
    ("too large", b" " * (sequences.MAX_STATE_BYTES + 1)),
]


@pytest.mark.parametrize(("name", "content"), HOSTILE_STATE, ids=[n for n, _ in HOSTILE_STATE])
def test_an_unusable_sequence_state_is_moved_aside_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str, content: bytes
) -> None:
    path = write(tmp_path / "sequences.json", content.replace(b"}, ]", b"}]"))
    with caplog.at_level(logging.WARNING, logger="collector.sequences"):
        tracker = sequences.load(path)
    assert tracker.agents == {}
    assert not path.exists()
    [aside] = tmp_path.glob("sequences.json.bad-*Z")
    assert aside.read_bytes() == content.replace(b"}, ]", b"}]")
    [record] = caplog.records
    assert record.getMessage().startswith("sequence state unusable")
    assert record.kv["file"] == str(path)  # type: ignore[attr-defined]
    assert record.kv["moved_to"] == str(aside)  # type: ignore[attr-defined]
    assert record.kv["reason"]  # type: ignore[attr-defined]
    # and the tracker works on: the next save writes a good file
    tracker.see("s", "a", 3)
    sequences.save(tracker, path)
    assert sequences.load(path).agents[("s", "a")].ranges == [[3, 3]]


def test_a_fifo_as_the_sequence_state_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "sequences.json"
    os.mkfifo(path)
    assert sequences.load(path).agents == {}
    [aside] = tmp_path.glob("sequences.json.bad-*Z")
    assert aside.is_fifo()


# --- through the real commands ------------------------------------------------------------


def hostile_files(tmp_path: Path, valid: str) -> list[tuple[str, Path, str]]:
    """(case, file, what stderr must say after `FILE:`) for a config of this kind."""
    head = valid.splitlines()[0] + "\n"
    cases: list[tuple[str, str | bytes, str]] = [
        ("billion laughs", head + laughs(9), r"7: f(\.\d)+: aliases expand to more than "),
        ("recursion", head + "x: &a [*a]\n", "2: x.0: an alias refers to a value"),
        ("deep", head + "x: " + "[" * 990 + "]" * 990 + "\n", r"2: x(\.0)+: nested deeper"),
        ("huge int", head + "x: " + "9" * 5000 + "\n", "2: x: a number longer than"),
        ("bad date", head + "x: 2024-02-30\n", "2: x: not a valid timestamp: day is out"),
        ("binary", b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)), "2: not UTF-8 text: "),
        ("control character", head + "x: a\x07b\n", "2: YAML syntax: character #x0007: "),
        ("secret", head + "x: ${file:/dev/zero}\n", "2: x: cannot read secret file /dev/zero: "),
        ("not UTF-8", (valid + "x: D\xfcsseldorf\n").encode("latin-1"), r"\d+: not UTF-8 text"),
        ("duplicate key", valid + valid.splitlines()[0] + "\n", r"\d+: key '\w+' appears twice"),
        ("huge file", valid + "#" * MAX_FILE_BYTES, " cannot read: larger than 4 MiB"),
        ("fifo", b"", " cannot read: not a regular file"),
        ("empty", "", "1: the file is empty"),
    ]
    files = []
    for case, content, expected in cases:
        path = tmp_path / f"{case.replace(' ', '-')}.yaml"
        if case == "fifo":
            os.mkfifo(path)
        else:
            write(path, content)
        files.append((case, path, expected))
    return files


@pytest.mark.parametrize(
    ("program", "valid"), [("energy-agent", AGENT), ("energy-collector", COLLECTOR)]
)
def test_check_refuses_each_hostile_file_in_one_line(
    tmp_path: Path, program: str, valid: str
) -> None:
    for case, path, expected in hostile_files(tmp_path, valid):
        result = subprocess.run(
            [str(BIN / program), "check", "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=120,  # not a measurement: a hang fails instead of stalling the suite
            check=False,
        )
        assert result.returncode == 2, (case, result.stderr[-2000:])
        assert result.stdout == "", case
        assert "Traceback" not in result.stderr, (case, result.stderr[-2000:])
        [line] = result.stderr.splitlines()
        assert re.match(rf"{program}: {re.escape(str(path))}:{expected}", line), (case, line)


# --- state databases ----------------------------------------------------------------------

STATE_DATABASES: dict[str, Callable[[Path], Any]] = {
    "outbox": Outbox,
    "spool": Spool,
    "embedded store": SqliteStore,
    "accounting": AccountingDB,
}
CORRUPT_DATABASES = {
    "not a database": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40,
    # A real SQLite header whose first page claims a size SQLite refuses: malformed.
    "malformed": b"SQLite format 3\x00" + b"\xff" * 4096,
}


@pytest.mark.parametrize("corruption", CORRUPT_DATABASES)
@pytest.mark.parametrize("what", STATE_DATABASES)
def test_a_corrupt_state_database_is_set_aside_and_a_new_one_opened(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, what: str, corruption: str
) -> None:
    path = write(tmp_path / "state.sqlite", CORRUPT_DATABASES[corruption])
    write(tmp_path / "state.sqlite-wal", b"wal")
    opener = STATE_DATABASES[what]
    with caplog.at_level(logging.ERROR, logger="greengauge.common.files"):
        database = open_state(path, lambda: opener(path), what)
    database.close()
    [aside] = tmp_path.glob("state.sqlite.bad-*Z")
    assert aside.read_bytes() == CORRUPT_DATABASES[corruption]
    # The WAL moves along, unless SQLite removed it closing the failed connection.
    wal = aside.with_name(aside.name + "-wal")
    assert wal.read_bytes() == b"wal" if wal.exists() else what == "embedded store"
    [record] = caplog.records
    assert record.getMessage() == f"{what} file corrupt: set aside, starting a new one"
    assert record.kv == {  # type: ignore[attr-defined]
        "file": str(path),
        "moved_to": str(aside),
        "reason": record.kv["reason"],  # type: ignore[attr-defined]
    }
    # the new file is a working database of its kind
    opener(path).close()


def test_a_state_database_that_cannot_be_opened_for_another_reason_is_not_set_aside(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "outbox.sqlite"
    folder.mkdir()
    with pytest.raises(OutboxError):
        open_state(folder, lambda: Outbox(folder), "outbox")
    assert list(tmp_path.iterdir()) == [folder]


def test_the_agent_runs_on_past_a_corrupt_outbox(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    write(state / "outbox.sqlite", CORRUPT_DATABASES["not a database"])
    config = write(
        tmp_path / "agent.yaml",
        AGENT.replace("mqtt://broker.local", "mqtt://127.0.0.1:9") + "state_dir: state\n",
    )
    with running("energy-agent", ["run", "--config", str(config)], tmp_path / "agent.log") as agent:
        wait_for(lambda: "agent starting" in agent.output(), 30, "the agent to start")
        agent.assert_running()
    assert "outbox file corrupt: set aside, starting a new one" in agent.output()
    assert len(list(state.glob("outbox.sqlite.bad-*Z"))) == 1


def test_report_on_a_corrupt_accounting_file_is_one_line(tmp_path: Path) -> None:
    config = write_hourly_config(tmp_path, "2026-11-24T02:00:00Z,0.3\n")
    (tmp_path / "data").mkdir()
    database = write(tmp_path / "data" / ACCOUNTING_FILE, CORRUPT_DATABASES["not a database"])
    args = ["report", "--config", str(config), "--site", "s1", "--month", "2026-11"]
    result = subprocess.run(
        [str(BIN / "energy-collector"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == (f"energy-collector: cannot open {database}: file is not a database\n")
    # a report only reads: the file stays where it is
    assert database.read_bytes() == CORRUPT_DATABASES["not a database"]
