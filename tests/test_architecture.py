"""The boundaries the design promises, checked on the source: one-way flow, pure cores."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

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
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "greengauge/contract").glob("*.py")),
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "agent/modbus/codec").glob("*.py")),
    "agent/dlt645/codec.py",
    "agent/schedule.py",
    "agent/profiles/model.py",
    "agent/simulator/values.py",
    "collector/validate.py",
    "collector/fastpath.py",
    "collector/state/latest.py",
    "collector/stores/lineprotocol.py",
    "collector/stats.py",
    "collector/guard.py",
    "agent/publish/status.py",
    *(
        f"collector/reports/{name}.py"
        for name in ("build", "numbers", "table", "csvfile", "render", "period")
    ),
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "collector/accounting/core").glob("*.py")),
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


def top_level_imports(package: str) -> dict[str, set[str]]:
    """The first-party top-level packages each file of `package` imports."""
    first_party = {"agent", "collector", "greengauge"}
    return {
        str(p.relative_to(ROOT)): {n.split(".")[0] for n in imports(p)} & first_party
        for p in sources(package)
    }


@pytest.mark.parametrize(
    ("package", "may_use"),
    [
        ("greengauge", {"greengauge"}),
        ("agent", {"agent", "greengauge"}),
        ("collector", {"collector", "greengauge"}),
    ],
)
def test_agent_and_collector_share_only_the_greengauge_package(
    package: str, may_use: set[str]
) -> None:
    offenders = {f: sorted(used - may_use) for f, used in top_level_imports(package).items()}
    assert {f: used for f, used in offenders.items() if used} == {}


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_modules_do_no_io(module: str) -> None:
    used = imports(ROOT / module)
    doing_io = {n for n in used for lib in IO_LIBRARIES if n == lib or n.startswith(lib + ".")}
    assert doing_io == set()


@pytest.mark.parametrize("module", sources("greengauge/contract"), ids=lambda p: p.name)
def test_the_wire_contract_needs_nothing_but_pydantic(module: Path) -> None:
    third_party = {name.split(".")[0] for name in imports(module)} - {
        "greengauge",
        "__future__",
        "collections",
        "re",
        "datetime",
        "enum",
        "typing",
        "urllib",
    }
    assert third_party <= {"pydantic"}
    (
        *(
            f"collector/reports/{name}.py"
            for name in ("build", "numbers", "table", "csvfile", "render", "period")
        ),
    )


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every first-party import, at module level or inside functions (TYPE_CHECKING ones
    too: a cycle hidden behind them is still a cycle of the design)."""
    files = [p for package in ("greengauge", "agent", "collector") for p in sources(package)]
    modules = {module_name(p) for p in files}
    graph: dict[str, set[str]] = {}
    for path in files:
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name in modules)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    if sub in modules:
                        edges.add(sub)
                    elif node.module in modules:
                        edges.add(node.module)
        graph[module_name(path)] = edges - {module_name(path)}
    return graph


def test_no_import_cycles_anywhere() -> None:
    graph = import_graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert [" -> ".join(c) for c in cycles] == []
