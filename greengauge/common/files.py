"""Small files: state (counters, sequence ranges) replaced atomically, files read with a
size limit, state databases set aside when corrupt, and one log line per disk fault.
Shared by the agent and the collector: infrastructure, no domain."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final, TypeVar

from greengauge.common.logs import fields

log = logging.getLogger(__name__)
T = TypeVar("T")
# SQLite's "database disk image is malformed" and "file is not a database".
_CORRUPT: Final = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})

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


def read_limited(path: Path, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes.

    Files given to the tools (configs, secrets, state) may be anything: a FIFO would block
    the open and /dev/zero never ends, so neither is read, and no more than `limit` + 1
    bytes are. Raises OSError, its strerror the reason (for a refusal too).
    """
    # O_NONBLOCK: opening a FIFO for reading otherwise waits for a writer.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as file:
        _refuse_unless_regular(os.fstat(fd), path, limit)
        data = file.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {_size(limit)}", str(path))
    return data


def require_regular(path: Path, limit: int) -> None:
    """OSError unless `path` is a regular file of at most `limit` bytes: for a file that a
    library opens itself (OpenSSL), which would block on a FIFO or never finish /dev/zero."""
    _refuse_unless_regular(path.stat(), path, limit)


def _refuse_unless_regular(status: os.stat_result, path: Path, limit: int) -> None:
    if not stat.S_ISREG(status.st_mode):
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    if status.st_size > limit:
        raise OSError(errno.EFBIG, f"larger than {_size(limit)}", str(path))


def _size(limit: int) -> str:
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if limit >= size and limit % size == 0:
            return f"{limit // size} {unit}"
    return f"{limit} bytes"


def open_state(path: Path, open_: Callable[[], T], what: str) -> T:
    """`open_()` a state database at `path`; if its file is corrupt, set the file aside
    (with its -wal and -shm) as `NAME.bad-<UTC time>` and open a new one in its place.

    A corrupt outbox or spool would otherwise stop the tool at every start; its content
    stays on disk beside the new file for whoever can recover it, and an error says where.
    """
    try:
        return open_()
    except Exception as exc:
        cause = exc if isinstance(exc, sqlite3.Error) else exc.__cause__
        if getattr(cause, "sqlite_errorcode", None) not in _CORRUPT:
            raise
        reason = str(cause)
    aside = set_aside(path, "-wal", "-shm")
    log.error(
        f"{what} file corrupt: set aside, starting a new one",
        extra=fields(file=str(path), moved_to=str(aside), reason=reason),
    )
    return open_()


def set_aside(path: Path, *companions: str) -> Path:
    """Move a state file that cannot be used, and its companion files (NAME + suffix), to
    `NAME.bad-<UTC time>` beside it: kept for whoever can recover it, out of the way of a
    new one. Returns the new name."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = path.with_name(f"{path.name}.bad-{stamp}")
    for suffix in ("", *companions):
        source = path.with_name(path.name + suffix)
        if source.exists():
            source.replace(aside.with_name(aside.name + suffix))
    return aside
