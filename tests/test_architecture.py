"""The boundaries the design promises, checked on the source: one-way flow, pure cores."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The wire contract, plus infrastructure that carries no domain and no data.
COLLECTOR_MAY_USE_FROM_AGENT = {
    "agent.wire",
    "agent.configfile",
    "agent.logs",
    "agent.backoff",
    "agent.tls",
    "agent.secrets",
    "agent.files",
}
IO_LIBRARIES = {
    "asyncio",
    "socket",
    "sqlite3",
    "ssl",
    "http",
    "urllib.request",
    "pymodbus",
    "serial",
    "aiomqtt",
    "paho",
    "influxdb_client",
    "subprocess",
    "os",
}
PURE_MODULES = [
    "agent/wire.py",
    "agent/modbus/decode.py",
    "agent/modbus/plan.py",
    "agent/dlt645/codec.py",
    "agent/schedule.py",
    "agent/profiles/model.py",
    "agent/simulator/values.py",
    "collector/validate.py",
    "collector/livetable.py",
    "collector/stores/lineprotocol.py",
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "collector/ledger").glob("*.py")),
]


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_the_agent_never_imports_the_collector() -> None:
    offenders = {
        str(p.relative_to(ROOT)): sorted(n for n in imports(p) if n.split(".")[0] == "collector")
        for p in sources("agent")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_collector_uses_only_the_wire_contract_of_the_agent() -> None:
    offenders = {
        str(p.relative_to(ROOT)): sorted(
            n
            for n in imports(p)
            if n.split(".")[0] == "agent" and n not in COLLECTOR_MAY_USE_FROM_AGENT
        )
        for p in sources("collector")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_modules_do_no_io(module: str) -> None:
    used = imports(ROOT / module)
    doing_io = {n for n in used for lib in IO_LIBRARIES if n == lib or n.startswith(lib + ".")}
    assert doing_io == set()


def test_the_wire_contract_needs_nothing_but_pydantic() -> None:
    third_party = {name.split(".")[0] for name in imports(ROOT / "agent/wire.py")} - {
        "__future__",
        "collections",
        "re",
        "datetime",
        "enum",
        "typing",
        "urllib",
    }
    assert third_party == {"pydantic"}
