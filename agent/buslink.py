"""What every bus does whatever its protocol (agent.modbus.transport.bus, agent.dlt645.transport):
one request at a time (`lock`), reconnection on demand with exponential backoff and
jitter between failed attempts (reads fail at once with kind "connect" while it waits),
and a quiet line between frames.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Generic, Protocol, TypeVar

from agent.modbus.errors import ReadError
from greengauge.common.backoff import Backoff
from greengauge.common.logs import fields


class Connection(Protocol):
    """What a bus needs of its link to keep it connected."""

    @property
    def connected(self) -> bool: ...

    async def connect(self, within: float) -> None:
        """Raises ReadError when no connection is made within `within` seconds."""
        ...

    def close(self) -> None: ...


LinkT = TypeVar("LinkT", bound=Connection)


class LinkedBus(Generic[LinkT]):
    """A bus over one link: its connection, its lock and the pause between its frames."""

    def __init__(
        self,
        name: str,
        link: LinkT,
        silence: float,
        log: logging.Logger,
        backoff: Backoff | None = None,
        log_fields: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self._link = link
        self._silence = silence
        self._lock = asyncio.Lock()
        self._backoff = backoff or Backoff(start=0.5, ceiling=30.0)
        self._connect_after = 0.0
        self._quiet_since = 0.0
        # The protocol's own logger, and its fields: the lines read as the bus's own.
        self._log = log
        self._log_fields = {"bus": name, **(log_fields or {})}
        self.requests = 0

    async def _connect(self, within: float) -> None:
        if self._link.connected:
            return
        now = time.monotonic()
        if now < self._connect_after:
            raise ReadError(
                "connect",
                f"no connection to {self.name}, next attempt in {self._connect_after - now:.1f}s",
            )
        try:
            await self._link.connect(within)
        except ReadError as exc:
            delay = self._backoff.next_delay()
            self._connect_after = time.monotonic() + delay
            detail = f"no connection to {self.name} ({exc.detail}), retry in {delay:.1f}s"
            raise ReadError("connect", detail) from exc
        self._backoff.reset()
        self._log.info("bus connected", extra=fields(**self._log_fields))

    async def _keep_silence(self) -> None:
        wait = self._quiet_since + self._silence - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)

    def close(self) -> None:
        self._link.close()
        self._log.debug("closed", extra=fields(**self._log_fields))
