"""One message can never stop ingest: whatever handling it raises, it is dead-lettered.

Every subscription (readings, agent status, MES production) hands each message to
`Guard.run` with the function that uses it. A `Rejected` message is dead-lettered with
its reason; any other exception, at any stage, is a fault of the collector's for that
one message: logged as an error with the stage it reached, counted by topic and stage,
and the message dead-lettered with that reason. Either way the dead letters acknowledge
it once the entry is durable, so the acknowledgements that follow it are never held back.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import TypeVar

from collector.deadletters import DeadLetters
from collector.ingest import Message
from collector.validate import Rejected
from greengauge.common.logs import fields

log = logging.getLogger(__name__)

T = TypeVar("T")


class Guard:
    def __init__(self, dead_letters: DeadLetters) -> None:
        self.dead_letters = dead_letters
        self.rejected: Counter[str] = Counter()
        """messages refused as invalid, by topic kind"""
        self.failed: Counter[tuple[str, str]] = Counter()
        """messages whose handling raised, by (topic kind, stage)"""

    def run(
        self,
        kind: str,
        message: Message,
        use: Callable[[], T],
        transient: type[Exception] | tuple[type[Exception], ...] = (),
    ) -> T | None:
        """`use()`'s result, or None once the message is dead-lettered (and so acked).

        `use` sets `message.progress.stage` as it goes and must not have passed the ack
        on when it raises: on success the caller acknowledges or hands the ack over.
        `transient` errors (a full disk) are no fault of the message: they are raised to
        the caller, which keeps the message unacknowledged and tries it again."""
        try:
            return use()
        except transient:
            raise
        except Rejected as exc:
            self.rejected[kind] += 1
            reason = str(exc)
        except Exception as exc:
            stage = message.progress.stage
            self.failed[(kind, stage)] += 1
            reason = f"failed at stage {stage}: {type(exc).__name__}: {exc}"
            log.exception(
                "message handling failed: dead-lettered",
                extra=fields(topic=message.topic, stage=stage, error=type(exc).__name__),
            )
        self.dead_letters.add(message.topic, message.payload, reason, message.ack)
        return None
