"""Dead letters: messages the collector could not use, kept on disk with the reason.

A JSON-lines file, appended and flushed to disk per entry, so an operator can read,
fix and replay what was refused. Nothing is ever dropped without landing here.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from agent.logs import fields

log = logging.getLogger(__name__)


class DeadLetters:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.count = 0

    def add(
        self, topic: str, payload: bytes, reason: str, ack: Callable[[], None] | None = None
    ) -> None:
        """Keep the message with its reason; `ack` is called once the entry is durable."""
        entry: dict[str, str] = {
            "received": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "topic": topic,
            "reason": reason,
        }
        try:
            entry["payload"] = payload.decode("utf-8")
        except UnicodeDecodeError:
            entry["payload_base64"] = base64.b64encode(payload).decode("ascii")
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self.path.open("a", encoding="utf-8") as file:
            file.write(line)
            file.flush()
            os.fsync(file.fileno())
        self.count += 1
        if ack is not None:
            ack()
        log.warning(
            "message dead-lettered",
            extra=fields(topic=topic, reason=reason, bytes=len(payload), file=str(self.path)),
        )
