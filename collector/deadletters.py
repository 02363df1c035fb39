"""Dead letters: messages the collector could not use, kept on disk with the reason.

A JSON-lines file an operator can read: per entry the time, topic, reason, the payload's
size and sha256, and at most `payload_prefix` bytes of it (a hostile 10 MB payload must
not become a 13 MB line). The file rotates at `max_file_bytes` and at most `max_files`
files are kept (`dead-letters.jsonl.1` the newest rotated one), so the total on disk is
bounded.

An entry is written as whole lines and fsynced before the message's ack is called. When
the write fails (disk full, read-only), whatever was half-written is cut off again, the
entry waits in memory (its line only: bounded by the prefix, and the broker sends no more
unacknowledged messages than its receive maximum) and is retried on a backoff, and later
entries queue behind it in order. A file whose last line was cut off anyway (a crash in
the middle of a write) is repaired when it is opened: the partial line never got an ack,
so the broker delivers that message again.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import os
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from collector.config import DeadLetterSettings
from collector.ingest import Message
from greengauge.common.backoff import Backoff
from greengauge.common.files import DiskFault
from greengauge.common.logs import fields

log = logging.getLogger(__name__)

# A reason quotes what was wrong, sometimes with the input: kept readable, not unbounded.
MAX_REASON: Final = 2000
# Recent entries remembered (topic and sha256, about 150 bytes each) to keep a message the
# broker delivers again once: one whose entry was durable but whose ack was lost in a crash.
SEEN: Final = 20_000
_TAIL_BLOCK: Final = 64 * 1024


def entry_line(
    topic: str, payload: bytes, reason: str, received: datetime, prefix: int, digest: str = ""
) -> bytes:
    """One dead letter as a JSON line (`digest`: the payload's sha256 if known). Pure."""
    kept = payload[:prefix]
    entry: dict[str, str | int | bool] = {
        "received": received.isoformat(timespec="milliseconds"),
        "topic": topic[:MAX_REASON],
        "reason": reason[:MAX_REASON],
        "size": len(payload),
        "sha256": digest or hashlib.sha256(payload).hexdigest(),
        "truncated": len(kept) < len(payload),
    }
    try:
        entry["payload"] = kept.decode("utf-8")
    except UnicodeDecodeError:
        entry["payload_base64"] = base64.b64encode(kept).decode("ascii")
    return (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")


def rotated(path: Path, index: int) -> Path:
    return path if index == 0 else path.with_name(f"{path.name}.{index}")


def files_of(path: Path, max_files: int) -> list[Path]:
    """The dead-letter files that exist, newest first."""
    return [p for p in (rotated(path, i) for i in range(max_files)) if p.exists()]


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def recent_keys(files: Sequence[Path]) -> list[tuple[str, str]]:
    """(topic, sha256) of the entries in `files` (oldest file first); bad lines skipped."""
    keys: list[tuple[str, str]] = []
    for file in files:
        with file.open("rb") as lines:
            for line in lines:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    entry = json.loads(line)
                    keys.append((str(entry["topic"]), str(entry["sha256"])))
    return keys[-SEEN:]


def repair(path: Path) -> int:
    """Cut a partial last line off the file; return the bytes removed (0: it was whole)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    if size == 0:
        return 0
    with path.open("rb+") as file:
        end = size
        while end > 0:
            start = max(0, end - _TAIL_BLOCK)
            file.seek(start)
            block = file.read(end - start)
            if end == size and block.endswith(b"\n"):
                return 0
            newline = block.rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            end = start
        else:
            keep = 0
        file.truncate(keep)
        file.flush()
        os.fsync(file.fileno())
    return size - keep


@dataclass(slots=True)
class _Waiting:
    line: bytes
    ack: Callable[[], None] | None


class DeadLetters:
    def __init__(self, path: Path, settings: DeadLetterSettings | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.settings = settings or DeadLetterSettings()
        self.fault = DiskFault("dead letters", path)
        self.count = 0  # entries durable on disk (this run)
        self.bytes_written = 0
        self.truncated = 0  # entries whose payload was cut to the prefix
        self.files_deleted = 0  # oldest files removed by rotation
        self.repaired_bytes = repair(path)
        if self.repaired_bytes:
            log.warning(
                "dead-letter file ended in a partial line: cut off (its message was never "
                "acknowledged, so the broker delivers it again)",
                extra=fields(file=str(path), bytes=self.repaired_bytes),
            )
        self._size = path.stat().st_size if path.exists() else 0
        self.repeats = 0  # messages delivered again whose entry was already written
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict.fromkeys(
            recent_keys(files_of(path, min(2, self.settings.max_files))[::-1])
        )
        self._waiting: deque[_Waiting] = deque()
        self._backoff = Backoff(start=0.2, ceiling=10.0)
        self._retry_at = 0.0
        self._retry: asyncio.Handle | None = None  # the next write, when scheduled

    @property
    def pending(self) -> int:
        """Entries not yet durable (their messages not acknowledged)."""
        return len(self._waiting)

    def add(
        self, topic: str, payload: bytes, reason: str, ack: Callable[[], None] | None = None
    ) -> None:
        """Keep the message with its reason; `ack` is called once the entry is durable.

        The same topic and payload again (the broker delivering a message again after a
        crash lost its ack) is kept once: acknowledged once the first entry is durable.
        """
        digest = hashlib.sha256(payload).hexdigest()
        key = (topic[:MAX_REASON], digest)
        if key in self._seen:
            self.repeats += 1
            self._seen.move_to_end(key)
            self._waiting.append(_Waiting(b"", ack))
        else:
            self._seen[key] = None
            if len(self._seen) > SEEN:
                self._seen.popitem(last=False)
            line = entry_line(
                topic, payload, reason, datetime.now(UTC), self.settings.payload_prefix, digest
            )
            if len(payload) > self.settings.payload_prefix:
                self.truncated += 1
            self._waiting.append(_Waiting(line, ack))
            log.warning(
                "message dead-lettered",
                extra=fields(topic=topic[:200], reason=reason[:200], bytes=len(payload)),
            )
        if time.monotonic() >= self._retry_at:
            self._write_soon()

    def _write_soon(self) -> None:
        """On the event loop, write once the messages that arrived with this one were added:
        a flood of bad messages then costs one fsync per turn of the loop, not per message.
        Without a loop (tools, tests), write now."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.write_waiting()
            return
        if self._retry is None:
            self._retry = loop.call_soon(self.write_waiting)

    def write_waiting(self) -> None:
        """Write what waits, oldest first, acknowledging each part once it is durable."""
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        while self._waiting:
            part = self._part()
            try:
                self._append([w.line for w in part])
            except OSError as exc:
                delay = self._backoff.next_delay()
                self._retry_at = time.monotonic() + delay
                self.fault.failed(exc, delay)
                self._schedule(delay)
                return
            for _ in part:
                waiting = self._waiting.popleft()
                if waiting.line:
                    self.count += 1
                if waiting.ack is not None:
                    waiting.ack()
        self._backoff.reset()
        self._retry_at = 0.0
        self.fault.ok()

    def _part(self) -> list[_Waiting]:
        """The oldest entries that fit in the current file (at least one)."""
        room = self.settings.max_file_bytes - self._size
        part: list[_Waiting] = []
        for waiting in self._waiting:
            if part and len(waiting.line) > room:
                break
            part.append(waiting)
            room -= len(waiting.line)
        return part

    def _append(self, lines: Sequence[bytes]) -> None:
        data = b"".join(lines)
        if not data:  # repeats only
            return
        if self._size and self._size + len(data) > self.settings.max_file_bytes:
            self._rotate()
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            before = os.fstat(descriptor).st_size
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(descriptor, view) :]
                os.fsync(descriptor)
            except OSError:
                # No half line may stay: the next entry would be glued onto it.
                with contextlib.suppress(OSError):
                    os.ftruncate(descriptor, before)
                raise
        finally:
            os.close(descriptor)
        self._size = before + len(data)
        self.bytes_written += len(data)

    def _rotate(self) -> None:
        """dead-letters.jsonl becomes .1, .1 becomes .2, ...; the oldest beyond the limit goes."""
        last = self.settings.max_files - 1
        oldest = rotated(self.path, last)
        if oldest.exists():
            oldest.unlink()
            self.files_deleted += 1
            log.warning(
                "dead letters: oldest file deleted (max_files reached)",
                extra=fields(file=str(oldest), max_files=self.settings.max_files),
            )
        if last == 0:
            self._size = 0
            return
        for index in range(last - 1, -1, -1):
            source = rotated(self.path, index)
            if source.exists():
                source.replace(rotated(self.path, index + 1))
        _fsync_folder(self.path.parent)
        self._size = 0

    def size_limited(
        self, deliver: Callable[[Message], None], max_payload: int
    ) -> Callable[[Message], None]:
        """`deliver`, but a payload over `max_payload` bytes is dead-lettered instead: the
        broker's max_packet_size should stop it first, but not every broker sets one."""

        def receive(message: Message) -> None:
            size = len(message.payload)
            if size > max_payload:
                reason = f"payload of {size} bytes is over the limit of {max_payload} bytes"
                self.add(message.topic, message.payload, reason, message.ack)
            else:
                deliver(message)

        return receive

    def _schedule(self, delay: float) -> None:
        """Retry from the event loop when there is one; without, the next add retries."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._retry = loop.call_later(delay, self.write_waiting)
