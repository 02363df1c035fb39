"""GreenGauge installed with pip into a fresh virtualenv, as a user installs it: shared by
tests/test_packaging.py and bench/install_footprint.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What the package is built from (as the Dockerfile and deploy/offline/make-bundle.sh).
PACKAGE_DIRS = ("greengauge", "agent", "collector")
PACKAGE_FILES = ("pyproject.toml", "README.md")


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without the checkout on Python's path; pip's index settings kept."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return env | {"PIP_DISABLE_PIP_VERSION_CHECK": "1"} | dict(extra or {})


def run(
    *args: str | Path, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """ARGS in CWD with clean_env(ENV), output captured."""
    return subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=clean_env(env),
        cwd=cwd,
    )


def install(work: Path, name: str, extras: str = "") -> Path:
    """A fresh virtualenv work/NAME with `pip install SRC[EXTRAS]`, SRC a copy of the package's
    sources under work/ (a build in the checkout would leave build/ and egg-info there).
    Raises RuntimeError with pip's output when a step fails."""
    src = work / "src"
    if not src.exists():
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        for folder in PACKAGE_DIRS:
            shutil.copytree(ROOT / folder, src / folder, ignore=ignore)
        for file in PACKAGE_FILES:
            shutil.copy2(ROOT / file, src / file)
    venv = work / name
    requirement = f"{src}[{extras}]" if extras else str(src)
    steps: list[list[str | Path]] = [
        [sys.executable, "-m", "venv", venv],
        [venv / "bin" / "python", "-m", "pip", "install", "--quiet", requirement],
    ]
    for step in steps:
        done = run(*step, cwd=work)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, step))}: {done.stdout}{done.stderr}")
    return venv
