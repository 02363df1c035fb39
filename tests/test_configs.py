"""Every example config is valid, as `energy-agent check` / `energy-collector check` say.

One example per deployment shape (configs/): single-plant embedded, central with
InfluxDB and TLS, gateway with TLS and password, serial gateway, plus the reference
examples and the compose demo's agent. Their TLS files live under /etc/greengauge/pki/ on
a real machine; here that path is pointed at a test PKI from deploy/pki/make-test-pki.sh,
and the secrets come from the environment. No secret appears in the output.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from processes import BIN

ROOT = Path(__file__).resolve().parent.parent
SECRET = "example-secret-0c9e1f"  # noqa: S105 - a test secret
AGENTS = [
    "configs/agent.example.yaml",
    "configs/agent.serial.example.yaml",
    "configs/agent.gateway-tls.example.yaml",
    "deploy/demo-agent.yaml",
]
COLLECTORS = [
    "configs/collector.example.yaml",
    "configs/collector.central.example.yaml",
    "configs/collector.single-plant.example.yaml",
    "configs/collector.replicas.example.yaml",
]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pki")
    script = ROOT / "deploy/pki/make-test-pki.sh"
    subprocess.run([str(script), str(out)], check=True, capture_output=True)
    return out


def check(
    program: str, example: str, pki: Path, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    source = ROOT / example
    config = tmp_path / source.name
    config.write_text(source.read_text().replace("/etc/greengauge/pki/", f"{pki}/"))
    env = {"PATH": "/usr/bin:/bin", "MQTT_PASSWORD": SECRET, "INFLUX_TOKEN": SECRET}
    # The central example's API listens on every address: tokens required (compose's).
    env |= {"GREENGAUGE_API_READ_TOKEN": SECRET + "-read", "GREENGAUGE_API_WRITE_TOKEN": SECRET}
    return subprocess.run(
        [str(BIN / program), "check", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def test_every_deployment_shape_has_an_example() -> None:
    names = {p.name for p in (ROOT / "configs").glob("*.example.yaml")}
    assert {Path(p).name for p in AGENTS + COLLECTORS if p.startswith("configs/")} == names


@pytest.mark.parametrize("example", AGENTS)
def test_agent_example_passes_check(example: str, pki: Path, tmp_path: Path) -> None:
    done = check("energy-agent", example, pki, tmp_path)
    assert done.returncode == 0, done.stderr
    assert ": OK" in done.stdout
    assert SECRET not in done.stdout + done.stderr
    if "password" in (ROOT / example).read_text():
        assert "(password set)" in done.stdout


@pytest.mark.parametrize("example", COLLECTORS)
def test_collector_example_passes_check(example: str, pki: Path, tmp_path: Path) -> None:
    done = check("energy-collector", example, pki, tmp_path)
    assert done.returncode == 0, done.stderr
    assert ": OK" in done.stdout
    assert SECRET not in done.stdout + done.stderr


def test_tls_examples_verify_against_a_ca_file(pki: Path, tmp_path: Path) -> None:
    for program, example in (
        ("energy-agent", "configs/agent.gateway-tls.example.yaml"),
        ("energy-agent", "configs/agent.serial.example.yaml"),
        ("energy-collector", "configs/collector.central.example.yaml"),
    ):
        done = check(program, example, pki, tmp_path)
        assert f"CA {pki}/ca.pem" in done.stdout, (example, done.stdout)
