"""deploy/compose.yaml and what it runs, checked without a Docker engine.

Compose reads .env, interpolates every value of the whole file (profiles are applied
after: a `${VAR:?}` in a demo service fails every command), then validates the result.
This file does the same: the interpolation rules of the Compose Specification, with the
documented deploy/.env.example, a JSON schema of the keys compose.yaml may use
(tests/data/compose-subset.schema.json), and every reference (services, volumes,
secrets, files, the Prometheus scrape and rules) resolved. The shell steps the stack
runs (the broker's entrypoint.sh, make-test-pki.sh, add-agent.sh) are run for real.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from processes import running, wait_for, write_yaml
from servers import Mosquitto, free_port
from test_deploy import env_example

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SCHEMA = Path(__file__).parent / "data" / "compose-subset.schema.json"
# The secrets every command needs (`:?`): set in deploy/.env, change-me in the example.
REQUIRED = {
    "MQTT_COLLECTOR_PASSWORD",
    "INFLUXDB_ADMIN_PASSWORD",
    "INFLUXDB_TOKEN",
    "GRAFANA_ADMIN_PASSWORD",
}

# --- the Compose Specification's interpolation --------------------------------------------

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_TOKEN = re.compile(rf"\$(?:(\$)|\{{({_NAME})(?:(:?[-?+])([^}}]*))?\}}|({_NAME}))")


class InterpolationError(Exception):
    pass


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """`$$` is `$`; `$VAR` and `${VAR}` the value (empty if unset); `${VAR:-d}` d when
    unset or empty, `${VAR-d}` when unset; `${VAR:?e}` an error when unset or empty,
    `${VAR?e}` when unset; `${VAR:+r}` r when set and not empty, `${VAR+r}` when set."""

    def one(match: re.Match[str]) -> str:
        if match.group(1):
            return "$"
        name = match.group(2) or match.group(5)
        op, arg = match.group(3), match.group(4) or ""
        value = env.get(name)
        if op is None:
            return value or ""
        unset = value is None or (op.startswith(":") and value == "")
        kind = op[-1]
        if kind == "-":
            return interpolate(arg, env) if unset else str(value)
        if kind == "?":
            if unset:
                raise InterpolationError(f"required variable {name} is missing a value: {arg}")
            return str(value)
        return "" if unset else interpolate(arg, env)

    return _TOKEN.sub(one, text)


def interpolated(data: Any, env: Mapping[str, str], errors: list[str]) -> Any:
    """Every string value of the file interpolated (keys are not); errors collected."""
    if isinstance(data, dict):
        return {key: interpolated(value, env, errors) for key, value in data.items()}
    if isinstance(data, list):
        return [interpolated(item, env, errors) for item in data]
    if isinstance(data, str):
        try:
            return interpolate(data, env)
        except InterpolationError as exc:
            errors.append(str(exc))
            return data
    return data


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("${A}", {"A": "x"}, "x"),
        ("$A-$B", {"A": "x"}, "x-"),
        ("${A:-d}", {"A": ""}, "d"),
        ("${A-d}", {"A": ""}, ""),
        ("${A-d}", {}, "d"),
        ("${A:+r}", {"A": "x"}, "r"),
        ("${A:+r}", {"A": ""}, ""),
        ("${A+r}", {"A": ""}, "r"),
        ("$${A}", {"A": "x"}, "${A}"),
        ("${A:?no}", {"A": "x"}, "x"),
        ("${A?no}", {"A": ""}, ""),
    ],
)
def test_interpolation_follows_the_specification(
    text: str, env: dict[str, str], expected: str
) -> None:
    assert interpolate(text, env) == expected


@given(value=st.text(st.characters(blacklist_characters="$"), max_size=10))
def test_required_fails_exactly_when_unset_or_empty(value: str) -> None:
    for env in ({}, {"A": value}):
        unset = "A" not in env or env["A"] == ""
        try:
            assert interpolate("${A:?set A}", env) == value
            assert not unset
        except InterpolationError as exc:
            assert unset and "A" in str(exc)


def compose_file() -> Any:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def resolved(env: Mapping[str, str]) -> tuple[Any, list[str]]:
    errors: list[str] = []
    return interpolated(compose_file(), env, errors), errors


# --- the documented commands work with the documented .env --------------------------------


def test_the_env_example_makes_every_documented_command_interpolate() -> None:
    """`up`, and `--profile demo up`: compose interpolates the whole file either way."""
    env = env_example()
    data, errors = resolved(env)
    assert errors == []
    jsonschema.validate(data, json.loads(SCHEMA.read_text()))
    assert {name for name, value in env.items() if value == "change-me"} >= REQUIRED


def test_only_the_secrets_every_command_needs_are_required() -> None:
    _, errors = resolved({})
    missing = {re.search(r"variable (\w+)", e).group(1) for e in errors}  # type: ignore[union-attr]
    assert missing == REQUIRED
    # Never in a profile-only service: `up` without the profile would fail on it.
    for name, service in compose_file()["services"].items():
        if "profiles" in service:
            assert ":?" not in json.dumps(service) and "?" not in re.findall(
                r"\$\{\w+(:?\?)", json.dumps(service)
            ), name


def test_the_schema_refuses_a_misspelt_key() -> None:
    data, _ = resolved(env_example())
    data["services"]["collector"]["enviroment"] = {}
    with pytest.raises(jsonschema.ValidationError, match="enviroment"):
        jsonschema.validate(data, json.loads(SCHEMA.read_text()))


def test_every_reference_resolves() -> None:
    data, _ = resolved(env_example())
    services = data["services"]
    volumes = set(data["volumes"])
    secrets = set(data.get("secrets", {}))
    used_volumes = set()
    for name, service in services.items():
        depends = service.get("depends_on", {})
        for other in depends:
            assert other in services, (name, other)
            # A service every command starts never waits for a profile-only one.
            assert "profiles" in service or "profiles" not in services[other], (name, other)
        for secret in service.get("secrets", []):
            assert secret in secrets, (name, secret)
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            assert target.startswith("/"), (name, volume)
            if source.startswith((".", "/")):
                path = (DEPLOY / source).resolve()
                if not source.startswith(("./pki/out", "./data/")):
                    assert path.exists(), (name, source)
            else:
                assert source in volumes, (name, source)
                used_volumes.add(source)
    assert used_volumes == volumes, "declared but unused volumes"
    for secret in data["secrets"].values():
        assert secret["environment"] in env_example()


def test_the_generated_folders_are_never_committed() -> None:
    for path in ("deploy/data/mosquitto/passwd", "deploy/pki/out/ca.key", "deploy/.env"):
        done = subprocess.run(
            ["git", "check-ignore", "-q", path], cwd=ROOT, check=False, capture_output=True
        )
        assert done.returncode == 0, path


# --- Prometheus ----------------------------------------------------------------------------


def test_prometheus_scrapes_the_collector_with_the_api_token(tmp_path: Path) -> None:
    data, _ = resolved(env_example())
    prometheus = data["services"]["prometheus"]
    mounts = dict(v.split(":")[:2] for v in prometheus["volumes"])
    config_dir = Path(mounts["./prometheus"])
    config = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    [secret] = prometheus["secrets"]
    assert job["authorization"]["credentials_file"] == f"/run/secrets/{secret}"
    assert data["secrets"][secret] == {"environment": "API_READ_TOKEN"}
    assert (
        data["services"]["collector"]["environment"]["GREENGAUGE_API_READ_TOKEN"]
        == (env_example()["API_READ_TOKEN"])
    )
    [[target]] = [c["targets"] for c in job["static_configs"]]
    host, port = target.split(":")
    assert host == "collector"
    central = yaml.safe_load((ROOT / "configs/collector.central.example.yaml").read_text())
    assert central["api"]["listen"].endswith(f":{port}")
    for rules in config["rule_files"]:
        assert Path(rules).parent == config_dir
        assert (DEPLOY / "prometheus" / Path(rules).name).is_file()
    # promtool (Debian's prometheus package) on the files as compose mounts them.
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian package prometheus) is needed: make servers-test"
    token = tmp_path / "token"
    token.write_text("t")
    local = tmp_path / "prometheus.yml"
    local.write_text(
        (DEPLOY / "prometheus/prometheus.yml")
        .read_text()
        .replace(f"{config_dir}/", f"{DEPLOY / 'prometheus'}/")
        .replace(f"/run/secrets/{secret}", str(token))
    )
    done = subprocess.run(
        [promtool, "check", "config", str(local)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 6 rules found" in done.stdout


def test_each_alert_fires_when_it_should_and_not_before() -> None:
    """promtool's rule unit tests (tests/data/prometheus-alerts.test.yml): series as the
    collector exports them, each alert silent at first and firing with its labels and
    annotations once its condition has held for its `for`."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian package prometheus) is needed: make servers-test"
    done = subprocess.run(
        [promtool, "test", "rules", str(Path(__file__).parent / "data/prometheus-alerts.test.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    tested = set(
        re.findall(
            r"alertname: (\w+)",
            (Path(__file__).parent / "data/prometheus-alerts.test.yml").read_text(),
        )
    )
    rules = yaml.safe_load((DEPLOY / "prometheus/alerts.yml").read_text())
    assert tested == {rule["alert"] for group in rules["groups"] for rule in group["rules"]}


def test_the_alert_rules_name_metrics_the_collector_exports(tmp_path: Path) -> None:
    """Every metric an alert rule names is on a running collector's /metrics."""
    rules = yaml.safe_load((DEPLOY / "prometheus/alerts.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    names = {n for e in exprs for n in re.findall(r"\bgreengauge_\w+", e)}
    assert all(rule["annotations"]["summary"] for g in rules["groups"] for rule in g["rules"])
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    port = free_port()
    config = write_yaml(
        tmp_path / "collector.yaml",
        {
            "mqtt": {"url": broker.url},
            "data_dir": str(tmp_path / "data"),
            "api": {"listen": f"127.0.0.1:{port}"},
        },
    )
    try:
        with running("energy-collector", ["run", "--config", str(config)], tmp_path / "log"):
            text = wait_for(lambda: scrape(port), 20, "the collector's /metrics")
    finally:
        broker.stop()
    exported = set(re.findall(r"^(\w+)", text, re.MULTILINE))
    assert names and names <= exported, names - exported


def scrape(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
            return str(answer.read().decode())
    except OSError:
        return None


# --- the broker's entrypoint.sh ------------------------------------------------------------


def run_entrypoint(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """entrypoint.sh with the container's folders moved under tmp_path, and `true` for
    mosquitto itself: what it assembles and what it refuses."""
    paths = {
        "/mosquitto/config/greengauge": tmp_path / "config",
        "/greengauge/users": tmp_path / "users",
        "/greengauge/pki": tmp_path / "pki",
        "/mosquitto/data": tmp_path / "data",
        "/mosquitto/certs": tmp_path / "certs",
    }
    script = (DEPLOY / "mosquitto/entrypoint.sh").read_text()
    for inside, here in paths.items():
        script = script.replace(inside, str(here))
    script = script.replace("chown -R mosquitto:mosquitto", "true").replace(
        "exec /usr/sbin/mosquitto", "exec true"
    )
    (tmp_path / "entrypoint.sh").write_text(script)
    return subprocess.run(
        ["sh", str(tmp_path / "entrypoint.sh")],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        check=False,
    )


def guarded(service: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """The guard's arguments (container variable -> deploy/.env setting) and the command
    it runs, from a service's entrypoint; ({}, []) when it has no guard."""
    entrypoint = service.get("entrypoint", [])
    if entrypoint[:2] != ["/bin/sh", "/greengauge/refuse-placeholders.sh"]:
        return {}, []
    split = entrypoint.index("--")
    names = dict((arg.split("=", 1) if "=" in arg else (arg, arg)) for arg in entrypoint[2:split])
    return names, entrypoint[split + 1 :]


def secret_settings(service: dict[str, Any]) -> dict[str, str]:
    """Container variable -> the deploy/.env secret (password, token) it is set from."""
    found = {}
    for var, value in (service.get("environment") or {}).items():
        match = re.fullmatch(r"\$\{(\w+)[^}]*\}", str(value))
        if match and re.search(r"PASSWORD|TOKEN", match.group(1)):
            found[var] = match.group(1)
    return found


def test_every_image_that_cannot_check_its_secrets_is_guarded() -> None:
    """A service of ours refuses a placeholder when it loads its config; every other one
    that takes a secret from deploy/.env starts through refuse-placeholders.sh naming
    each of them (the read-token step only uses the token the collector checks)."""
    raw = compose_file()["services"]
    guarded_services = set()
    for name, service in raw.items():
        secrets = secret_settings(service)
        if not secrets or service["image"].startswith("greengauge:"):
            continue
        if name == "influxdb-read-token":
            assert set(secrets.values()) == {"INFLUXDB_TOKEN"}
            continue
        names, command = guarded(service)
        assert names == secrets, name
        assert (
            "./refuse-placeholders.sh:/greengauge/refuse-placeholders.sh:ro" in service["volumes"]
        ), name
        assert command, name
        guarded_services.add(name)
    assert guarded_services == {"mosquitto", "influxdb", "grafana"}


def run_guard(names: dict[str, str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    args = [f"{var}={setting}" for var, setting in names.items()]
    return subprocess.run(
        ["sh", str(DEPLOY / "refuse-placeholders.sh"), *args, "--", "echo", "started"],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("service", ["mosquitto", "influxdb", "grafana"])
def test_a_guarded_service_refuses_the_env_examples_placeholders(service: str) -> None:
    data, _ = resolved(env_example())
    names, _ = guarded(compose_file()["services"][service])
    environment = {k: str(v) for k, v in data["services"][service]["environment"].items()}
    done = run_guard(names, environment)
    first = next(s for v, s in names.items() if environment.get(v) == "change-me")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"refusing to start: {first} is still 'change-me' (deploy/.env): set a real secret, "
        "e.g. openssl rand -base64 32\n"
    )
    real = {var: f"real-secret-{i}" for i, var in enumerate(names)}
    started = run_guard(names, environment | real)
    assert (started.returncode, started.stdout, started.stderr) == (0, "started\n", "")


@given(
    value=st.sampled_from(["change-me", "changeme"]),
    upper=st.lists(st.booleans(), min_size=9, max_size=9),
)
def test_the_guard_refuses_every_spelling_of_the_placeholder(value: str, upper: list[bool]) -> None:
    spelt = "".join(c.upper() if u else c for c, u in zip(value, upper, strict=False))
    done = run_guard({"SECRET": "SOME_PASSWORD"}, {"SECRET": spelt})
    assert done.returncode == 1 and "SOME_PASSWORD is still" in done.stderr
    assert run_guard({"SECRET": "S"}, {"SECRET": spelt + "x"}).returncode == 0
    assert run_guard({"SECRET": "S"}, {}).returncode == 0  # unset: the image's to refuse


def test_the_broker_assembles_users_and_acl_from_the_generated_folder(tmp_path: Path) -> None:
    shutil.copytree(DEPLOY / "mosquitto", tmp_path / "config")
    (tmp_path / "data").mkdir()
    subprocess.run(
        [str(DEPLOY / "pki/make-test-pki.sh"), str(tmp_path / "pki")],
        check=True,
        capture_output=True,
    )
    added = subprocess.run(
        [str(DEPLOY / "mosquitto/add-agent.sh"), "plant-a", "gw-01"],
        input="gw-secret-8d1c\n",
        capture_output=True,
        text=True,
        check=False,
        env={"MOSQUITTO_DIR": str(tmp_path / "users"), "PATH": os.environ["PATH"]},
    )
    assert added.returncode == 0, added.stderr
    done = run_entrypoint(
        tmp_path, {"MQTT_COLLECTOR_PASSWORD": "c-secret-2b9e", "MQTT_MES_PASSWORD": "m-secret-4a7d"}
    )
    assert done.returncode == 0, done.stderr
    committed = (DEPLOY / "mosquitto/acl").read_text()
    acl = (tmp_path / "data/acl").read_text()
    assert acl == committed + "\nuser plant-a/gw-01\ntopic write greengauge/v1/plant-a/gw-01/#\n"
    users = {line.split(":")[0] for line in (tmp_path / "data/passwd").read_text().splitlines()}
    assert users == {"plant-a/gw-01", "mes"}  # no demo user: its password is empty
    collector = (tmp_path / "data/passwd-collector").read_text().splitlines()
    assert [line.split(":")[0] for line in collector] == ["collector"]
    assert sorted(p.name for p in (tmp_path / "certs").iterdir()) == [
        "broker.key",
        "broker.pem",
        "ca.pem",
    ]
    assert (DEPLOY / "mosquitto/acl").read_text() == committed


# --- add-agent.sh and make-test-pki.sh ----------------------------------------------------


def test_add_agent_writes_into_the_data_folder_not_the_committed_acl(tmp_path: Path) -> None:
    """Run from a copy of deploy/ with no MOSQUITTO_DIR: the default folder."""
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY / "mosquitto", copy / "mosquitto")
    committed = (copy / "mosquitto/acl").read_text()
    done = subprocess.run(
        [str(copy / "mosquitto/add-agent.sh"), "plant-a", "gw-01"],
        input="gw-secret-8d1c\n",
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": os.environ["PATH"]},
    )
    assert done.returncode == 0, done.stderr
    assert (copy / "mosquitto/acl").read_text() == committed
    assert sorted(p.name for p in (copy / "mosquitto").iterdir()) == sorted(
        p.name for p in (DEPLOY / "mosquitto").iterdir()
    )
    users = copy / "data/mosquitto"
    assert (users / "agents.acl").read_text() == (
        "\nuser plant-a/gw-01\ntopic write greengauge/v1/plant-a/gw-01/#\n"
    )
    assert (users / "passwd").read_text().startswith("plant-a/gw-01:")
    assert users.stat().st_mode & 0o777 == 0o700
    for name in ("passwd", "agents.acl"):
        assert (users / name).stat().st_mode & 0o777 == 0o600


IMAGE_UID = 10001  # the greengauge image's user (Dockerfile), the collector's and agent's


def read_as(uid: int, path: Path) -> bool:
    """Whether a process of this uid and group (and no other) can read the file."""
    done = subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "cat", str(path)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A folder every user can reach, as deploy/pki/ is (pytest's tmp_path is not)."""
    folder = Path(tempfile.mkdtemp(prefix="greengauge-pki-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


def test_the_test_pki_is_readable_by_the_containers_and_keys_stay_private(
    open_folder: Path,
) -> None:
    assert os.geteuid() == 0, "runs as root, as CI does: chgrp and setpriv need it"
    out = open_folder / "pki"
    done = subprocess.run(
        [str(DEPLOY / "pki/make-test-pki.sh"), str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert out.stat().st_mode & 0o777 == 0o755
    others = 20000  # a uid that is nobody's here
    for pem in out.glob("*.pem"):
        assert pem.stat().st_mode & 0o777 == 0o644, pem.name
        assert read_as(IMAGE_UID, pem) and read_as(others, pem), pem.name
    for key in out.glob("*.key"):
        mode = key.stat().st_mode & 0o777
        assert mode & 0o007 == 0, f"{key.name} is world-readable"
        assert not read_as(others, key), key.name
        client = key.stem in ("collector", "agent")
        # The collector and agent containers (uid 10001) read their client keys; the
        # CAs' keys are no container's, the broker's is copied by its root entrypoint.
        assert read_as(IMAGE_UID, key) == client, key.name
        assert mode == (0o640 if client else 0o600), key.name


# --- the read-only InfluxDB token for Grafana ---------------------------------------------

FAKE_INFLUX = """#!/bin/sh
# The influx CLI as read-token.sh uses it: the operator token and the tokens it made are
# valid; calls are logged.
echo "$*" >> "$LOG"
valid=false
for token in operator-token $(cat "$ISSUED" 2>/dev/null); do
    [ "$INFLUX_TOKEN" = "$token" ] && valid=true
done
$valid || { echo "Error: unauthorized access" >&2; exit 1; }
case "$1 $2" in
    "bucket list") printf '0a1b2c3d4e5f6789\\t%s\\tinfinite\\n' "$INFLUX_BUCKET" ;;
    "auth create")
        token="read-$(wc -l < "$LOG" | tr -d ' ')"
        echo "$token" >> "$ISSUED"
        printf '{\\n\\t"id": "x",\\n\\t"token": "%s",\\n\\t"status": "active"\\n}\\n' "$token" ;;
esac
"""


def test_the_read_token_step_makes_one_read_only_token_and_keeps_it(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "influx").write_text(FAKE_INFLUX)
    (bin_dir / "influx").chmod(0o755)
    log, issued, token_file = tmp_path / "calls", tmp_path / "issued", tmp_path / "vol/read-token"
    token_file.parent.mkdir()
    data, _ = resolved(env_example())
    environment = data["services"]["influxdb-read-token"]["environment"]
    env = {
        **environment,
        "INFLUX_TOKEN": "operator-token",
        "TOKEN_FILE": str(token_file),
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "LOG": str(log),
        "ISSUED": str(issued),
    }

    def step() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["sh", str(DEPLOY / "influxdb/read-token.sh")],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )

    done = step()
    assert done.returncode == 0, done.stderr
    first = token_file.read_text()
    assert first.startswith("read-") and first in issued.read_text()
    assert token_file.stat().st_mode & 0o777 == 0o400
    assert token_file.stat().st_uid == int(environment["TOKEN_OWNER"])
    [create] = [c for c in log.read_text().splitlines() if c.startswith("auth create")]
    assert create.split()[2:4] == ["--read-bucket", "0a1b2c3d4e5f6789"]
    assert "--write" not in create and "--all-access" not in create and "operator" not in first
    # Restarted: the token still works, so it is kept.
    assert step().returncode == 0
    assert token_file.read_text() == first
    assert len([c for c in log.read_text().splitlines() if c.startswith("auth create")]) == 1
    # Deleted in InfluxDB (or a fresh database): a new one replaces it.
    issued.write_text("")
    assert step().returncode == 0
    assert token_file.read_text() not in ("", first)
