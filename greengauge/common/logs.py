"""Structured logging: one logfmt line per event, `key=value` pairs a machine can parse.

Shared by the agent and the collector. Secrets never reach a log line: fields are
passed explicitly with `fields(...)`, and configs hand over redacted URLs only.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any


def fields(**values: Any) -> dict[str, Any]:
    """Pass as `extra=` to a logging call: `log.info("meter read", extra=fields(meter=m))`."""
    return {"kv": values}


def _quote(value: object) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' ="\\') or not text.isprintable():
        escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    return text


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        parts = [
            f"ts={stamp}.{int(record.msecs):03d}Z",
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"msg={_quote(record.getMessage())}",
        ]
        for key, value in getattr(record, "kv", {}).items():
            parts.append(f"{key}={_quote(value)}")
        if record.exc_info:
            parts.append(f"error={_quote(self.formatException(record.exc_info))}")
        return " ".join(parts)


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library chatter (connection retries) is reported by our own log lines instead.
    for noisy in ("pymodbus", "aiomqtt", "urllib3", "influxdb_client"):
        logging.getLogger(noisy).setLevel(logging.WARNING if level != "DEBUG" else logging.INFO)
