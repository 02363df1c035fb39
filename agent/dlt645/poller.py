"""Polls one DL/T 645 meter: one request per data identifier of its profile, with the
health, offline detection and backoff every poller shares (agent.poller.PollerBase).

- An identifier the meter refuses (an error reply: 02 "no such data" for one its firmware
  lacks) is left out, reported once, and asked for again on a doubling backoff; the other
  values of the read are still delivered. So are they when one value is not valid BCD.
- A meter that does not answer (timeout, no connection, a corrupted reply) ends the read
  there: a dead meter costs its line one timeout per read, not one per identifier.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Protocol

from agent.config import Dlt645Settings, MeterSettings
from agent.dlt645.codec import NO_SUCH_DATA, FrameError, decode_bcd, identifier_text
from agent.dlt645.profile import Dlt645Profile, ValueSpec
from agent.dlt645.transport import ReadIdentifier
from agent.modbus.errors import ReadError
from agent.poller import BACKOFF_CEILING, BAD_VALUE, Clock, PollerBase, StateSink
from agent.reading import Read
from greengauge.common.backoff import doubled
from greengauge.common.logs import fields
from greengauge.contract import Quantity, QuantityName

log = logging.getLogger(__name__)

NO_DATA: Final = "no_data"
"""Error kind counted for an identifier the meter answers with error 02."""
REFUSED: Final = "refused"
"""Error kind counted for any other error reply."""


def decode_value(spec: ValueSpec, raw: bytes) -> float:
    """The canonical value of a reply's value bytes, or FrameError saying why there is none."""
    if len(raw) != spec.size:
        raise FrameError("value", f"{len(raw)} value bytes where {spec.format} has {spec.size}")
    return decode_bcd(raw, spec.decimals, spec.signed, spec.scale)


class Dlt645MeterBus(Protocol):
    """What the poller needs of its bus (agent.dlt645.transport.Dlt645Bus; tests fake it)."""

    @property
    def name(self) -> str: ...

    def session(self, meter: Dlt645Settings) -> AbstractAsyncContextManager[ReadIdentifier]: ...


@dataclass(slots=True)
class _Refused:
    times: int
    retry_at: float


class Dlt645Poller(PollerBase):
    def __init__(
        self,
        meter: MeterSettings,
        profile: Dlt645Profile,
        bus: Dlt645MeterBus,
        deliver: Callable[[Read], None],
        *,
        clock: Clock | None = None,
        on_state: StateSink | None = None,
    ) -> None:
        super().__init__(meter, bus.name, deliver, clock=clock, on_state=on_state)
        assert meter.dlt645 is not None  # a DL/T 645 meter
        self._settings = meter.dlt645
        self._profile = profile
        self._bus = bus
        self._refused: dict[Quantity, _Refused] = {}
        """Values the meter refused, and when each is asked for again."""
        self._failing: set[Quantity] = set()

    def _excluded_count(self) -> int:
        return len(self._refused)

    def _where(self) -> dict[str, object]:
        return {"address": self._settings.address}

    async def _read(self) -> Read | None:
        values: dict[QuantityName, float] = {}
        failure: ReadError | None = None
        tick = self._tick()
        async with self._bus.session(self._settings) as read:
            ts = datetime.fromtimestamp(self._clock.time(), UTC)
            for spec in self._profile.read_values:
                refused = self._refused.get(spec.quantity)
                if refused is not None and tick < refused.retry_at:
                    continue
                try:
                    raw = await read(spec.di)
                except ReadError as exc:
                    if exc.kind != "exception":
                        failure = exc
                        break
                    self._refuse(spec, exc, tick)
                    continue
                self._decoded(spec, raw, values)
        self.last_failure = failure
        if failure is not None:
            self.errors[failure.kind] += 1
        if values:
            self._answered(ts)
            return Read(self.meter.id, ts, values)
        self._read_failed(failure)
        return None

    def _decoded(self, spec: ValueSpec, raw: bytes, values: dict[QuantityName, float]) -> None:
        try:
            values[spec.quantity] = decode_value(spec, raw)
        except FrameError as exc:
            self.errors[BAD_VALUE] += 1
            self._value_failing(spec, str(exc))
            return
        self._failing.discard(spec.quantity)
        if self._refused.pop(spec.quantity, None) is not None:
            log.info("value answered again", extra=fields(**self._value_fields(spec)))

    def _refuse(self, spec: ValueSpec, error: ReadError, tick: float) -> None:
        self.errors[NO_DATA if error.exception_code == NO_SUCH_DATA else REFUSED] += 1
        before = self._refused.get(spec.quantity)
        times = 0 if before is None else before.times + 1
        interval = self.meter.interval
        delay = doubled(interval, max(interval, BACKOFF_CEILING), times)
        self._refused[spec.quantity] = _Refused(times, tick + delay)
        if before is None:
            log.warning(
                "value refused, left out",
                extra=fields(**self._value_fields(spec), reason=error.detail, retry_in=delay),
            )

    def _value_failing(self, spec: ValueSpec, reason: str) -> None:
        # One line when a value starts failing, not one per tick while it stays bad.
        if spec.quantity not in self._failing:
            self._failing.add(spec.quantity)
            log.warning("value dropped", extra=fields(**self._value_fields(spec), reason=reason))

    def _value_fields(self, spec: ValueSpec) -> dict[str, object]:
        return {
            "meter": self.meter.id,
            "quantity": spec.quantity.value,
            "identifier": identifier_text(spec.di),
        }
