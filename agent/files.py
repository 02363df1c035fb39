"""Small state files (counters, sequence ranges) replaced atomically, and one log line per
disk fault. Shared by the agent and the collector: infrastructure, no domain."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from pathlib import Path

from agent.logs import fields

log = logging.getLogger(__name__)

# What an operator should read for the errors a full or read-only disk gives.
_CONDITIONS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only filesystem",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


def condition(exc: BaseException) -> str:
    """A short name for why a write failed ("disk full"), the same for every message."""
    if isinstance(exc, OSError) and exc.errno in _CONDITIONS:
        return _CONDITIONS[exc.errno]
    text = str(exc).lower()  # sqlite3 errors carry no errno, only SQLite's own text
    if "full" in text:
        return "disk full"
    if "readonly" in text or "read-only" in text:
        return "read-only filesystem"
    return str(exc) or type(exc).__name__


class DiskFault:
    """Whether one file can be written now: one warning when a condition starts (not one
    per message), one line when writes succeed again, and counts for the metrics."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        self.condition: str | None = None
        self.failures = 0

    @property
    def failing(self) -> bool:
        return self.condition is not None

    def failed(self, exc: BaseException, retry_in: float | None = None) -> None:
        self.failures += 1
        now = condition(exc)
        if now == self.condition:
            return
        self.condition = now
        log.error(
            "cannot write: holding back, retrying",
            extra=fields(
                file=self.name,
                path=str(self.path),
                condition=now,
                error=str(exc),
                retry_in=None if retry_in is None else f"{retry_in:.1f}s",
            ),
        )

    def ok(self) -> None:
        if self.condition is None:
            return
        log.warning(
            "writable again: resuming",
            extra=fields(file=self.name, path=str(self.path), after=self.condition),
        )
        self.condition = None


def write_atomically(path: Path, text: str) -> None:
    """Replace the file: a crash or power cut leaves the old content or the new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    try:
        with temporary.open("w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        temporary.replace(path)
    except OSError:
        # A half-written temporary would hold space a full disk needs back.
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def check_writable(folder: Path) -> None:
    """Raise OSError unless a file can be created, written, synced and removed in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / f".write-test-{os.getpid()}"
    try:
        descriptor = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(descriptor, b"\n")
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
