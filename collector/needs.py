"""The collector's own dependencies (FastAPI, uvicorn, influxdb-client, matplotlib) come
with the `collector` extra, so that `pip install greengauge` on a gateway brings the agent
alone. `energy-collector` (`main` here, its entry point) checks for them before doing anything,
and names the extra to install instead of failing on an ImportError: the collector's
modules import them as soon as the command line is read.

The list is read from the installed package's metadata (pyproject.toml's
`[project.optional-dependencies] collector`), so it is written in one place only."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Sequence
from importlib import metadata

DISTRIBUTION = "greengauge"
EXTRA = "collector"

# A Requires-Dist line: a name, then optional extras/versions, then `; marker`.
_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_ONLY_EXTRA = re.compile(r"""^\s*extra\s*==\s*["']([A-Za-z0-9._-]+)["']\s*$""")


def extra_requirements(requires: Iterable[str], extra: str) -> list[str]:
    """The distribution names that `extra` adds, from a package's Requires-Dist lines."""
    names = []
    for line in requires:
        requirement, _, marker = line.partition(";")
        only = _ONLY_EXTRA.match(marker)
        name = _NAME.match(requirement)
        if only and only.group(1) == extra and name:
            names.append(name.group(1))
    return names


def _installed(name: str) -> bool:
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def missing_collector_dependencies() -> list[str]:
    """The collector extra's distributions not installed here; none when greengauge itself
    is not installed (run from a checkout: nothing says what it needs)."""
    try:
        requires = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        return []
    return [name for name in extra_requirements(requires, EXTRA) if not _installed(name)]


def missing_message(missing: Sequence[str]) -> str:
    return (
        f"energy-collector: the collector's dependencies are not installed here "
        f"({', '.join(missing)}): this is an agent-only install. Install the collector with "
        f"pip install 'greengauge[{EXTRA}]'"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """`energy-collector`: the collector's command line once its dependencies are here."""
    missing = missing_collector_dependencies()
    if missing:
        print(missing_message(missing), file=sys.stderr)
        return 2
    from collector import cli  # noqa: PLC0415 - only once its dependencies are known present

    return cli.main(argv)
