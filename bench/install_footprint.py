"""Issue 14: what installing the agent costs a gateway, agent alone vs everything.

Installs this checkout twice into fresh virtualenvs from the package index pip is set up
with: `pip install SRC` (the agent alone, as a gateway does now) and `pip install
SRC[collector]` (everything: what `pip install greengauge` brought before the collector's
dependencies moved to an extra). For each: pip's wall time, the distributions installed,
the size of site-packages (apparent bytes, with and without the pip and setuptools that
`venv` puts in every environment), and the max RSS and wall time of `energy-agent
--help` and of importing every agent and greengauge module (what `run` may load), median
of --repeat runs, each a fresh process. Prints a table; appends the figures to
bench/results/install_footprint.jsonl.

    .venv/bin/python bench/install_footprint.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import machine, save_result  # puts tests/ on the path, for venvs
from venvs import clean_env, install

VARIANTS = {"agent alone": "", "everything": "collector"}
# Put in every venv by `python -m venv`, the same in both: left out of the second size.
SEEDED = ("pip", "setuptools", "_distutils_hack", "distutils-precedence.pth")
IMPORT_ALL = (
    "import importlib, pkgutil, agent, greengauge\n"
    "for p in (agent, greengauge):\n"
    "    for m in pkgutil.walk_packages(p.__path__, p.__name__ + '.'):\n"
    "        importlib.import_module(m.name)\n"
)
# Runs ARGS and prints their max RSS (KiB on Linux): RUSAGE_CHILDREN counts only them.
RSS_PROBE = (
    "import resource, subprocess, sys\n"
    "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def tree_bytes(path: Path) -> int:
    files = [path] if path.is_file() else path.rglob("*")
    return sum(f.stat().st_size for f in files if f.is_file() and not f.is_symlink())


def site_packages(venv: Path) -> Path:
    (found,) = venv.glob("lib/python3*/site-packages")
    return found


def footprint(venv: Path) -> dict[str, Any]:
    site = site_packages(venv)
    seeded = sum(tree_bytes(e) for e in site.iterdir() if e.name.startswith(SEEDED))
    total = tree_bytes(site)
    return {
        "distributions": len(list(site.glob("*.dist-info"))),
        "site_packages_mib": total / 2**20,
        "site_packages_without_pip_mib": (total - seeded) / 2**20,
    }


def rss_and_wall(args: list[str], cwd: Path, repeat: int) -> dict[str, float]:
    """Median max RSS (MiB) and wall time (s) of ARGS, each run a fresh process."""
    rss, wall = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", RSS_PROBE, *args],
            capture_output=True,
            text=True,
            check=True,
            env=clean_env(),
            cwd=cwd,
        )
        wall.append(time.perf_counter() - start)
        rss.append(int(done.stdout) / 1024)
    return {"rss_mib": statistics.median(rss), "wall_s": statistics.median(wall)}


def measure(work: Path, name: str, extras: str, repeat: int) -> dict[str, Any]:
    start = time.perf_counter()
    venv = install(work, name.replace(" ", "-"), extras)
    row: dict[str, Any] = {"variant": name, "pip_install_s": time.perf_counter() - start}
    row |= footprint(venv)
    help_run = rss_and_wall([str(venv / "bin" / "energy-agent"), "--help"], work, repeat)
    all_run = rss_and_wall([str(venv / "bin" / "python"), "-c", IMPORT_ALL], work, repeat)
    row |= {f"help_{k}": v for k, v in help_run.items()}
    row |= {f"import_all_{k}": v for k, v in all_run.items()}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs per RSS figure (median)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="gg-footprint-") as tmp:
        for name, extras in VARIANTS.items():
            rows.append(measure(Path(tmp), name, extras, args.repeat))
    header = (
        f"{'':<12} {'dists':>5} {'site-pkgs MiB':>13} {'w/o pip MiB':>11} {'pip s':>6} "
        f"{'--help RSS MiB':>14} {'--help s':>8} {'all-import RSS MiB':>18} {'all-import s':>12}"
    )
    print(header)
    for r in rows:
        print(
            f"{r['variant']:<12} {r['distributions']:>5} {r['site_packages_mib']:>13.1f} "
            f"{r['site_packages_without_pip_mib']:>11.1f} {r['pip_install_s']:>6.1f} "
            f"{r['help_rss_mib']:>14.1f} {r['help_wall_s']:>8.2f} "
            f"{r['import_all_rss_mib']:>18.1f} {r['import_all_wall_s']:>12.2f}"
        )
    conditions = machine() | {"repeat": args.repeat}
    print(
        f"\n{conditions['date']}, commit {conditions['commit']}, Python {conditions['python']}, "
        f"{conditions['nproc']} cores, loadavg {conditions['loadavg']}; pip's cache as found"
    )
    save_result("install_footprint", conditions | {"rows": rows})


if __name__ == "__main__":
    main()
