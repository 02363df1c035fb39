"""Real small filesystems for disk-full and read-only tests: a tmpfs mounted for the test.

Mounting needs root, which this machine and CI have. Without root the test fails (it
never skips): a disk-full test that does not fill a disk proves nothing.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_filesystem(folder: Path, size: int, read_only: bool = False) -> Iterator[Path]:
    """A tmpfs of `size` bytes mounted on `folder` (created) for the block; unmounted after."""
    if os.geteuid() != 0:
        pytest.fail("disk-full tests mount a tmpfs: run them as root", pytrace=False)
    folder.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def fill(folder: Path, leave: int = 0) -> Path:
    """Fill the filesystem of `folder` up to `leave` free bytes with one filler file."""
    filler = folder / "filler"
    with filler.open("ab") as file:
        block = b"\0" * 65536
        with contextlib.suppress(OSError):
            while True:
                stat = os.statvfs(folder)
                free = stat.f_bavail * stat.f_frsize - leave
                if free <= 0:
                    break
                file.write(block[: min(len(block), free)])
                file.flush()
    return filler


def free_space(folder: Path) -> int:
    stat = os.statvfs(folder)
    return stat.f_bavail * stat.f_frsize
