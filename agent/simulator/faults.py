"""Faults the simulator can play per unit id, for commissioning drills and tests.

    UNIT:timeout              never answers (a dead or unpowered meter)
    UNIT:drop                 answers every other request only (a marginal line)
    UNIT:garbage              answers with corrupted bytes (noise; a bad CRC on RTU)
    UNIT:short                answers one register fewer than asked (wrong byte count)
    UNIT:nan[=LOW-HIGH]       float registers (in LOW..HIGH) read NaN (a meter booting)
    UNIT:exception[=LOW-HIGH] refuses reads touching registers LOW..HIGH (both included,
                              decimal or 0x hex) with exception 2, illegal data address
    UNIT:flaky[=LOW-HIGH]     refuses every other read touching them (a meter busy half
                              the time that says so with exception 2)

Faults are switched off and on again with SIGUSR1 (`--faults-off` starts with them off),
so a test shows a meter failing and recovering without restarting the simulator.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from pymodbus.pdu import ModbusPDU

from greengauge.common.logs import fields

log = logging.getLogger(__name__)


class FaultMode(StrEnum):
    TIMEOUT = "timeout"
    DROP = "drop"
    GARBAGE = "garbage"
    SHORT = "short"
    NAN = "nan"
    EXCEPTION = "exception"
    FLAKY = "flaky"


@dataclass(frozen=True, slots=True)
class Fault:
    unit_id: int
    mode: FaultMode
    low: int = 0
    high: int = 0xFFFF
    """Registers a ranged fault (exception, flaky, nan) touches, both included."""

    def touches(self, address: int, count: int) -> bool:
        return address <= self.high and self.low < address + count


_RANGED: Final = {FaultMode.EXCEPTION, FaultMode.FLAKY, FaultMode.NAN}
_FAULT: Final = re.compile(r"(\d+):([a-z]+)(?:=(\w+)-(\w+))?")


def parse_fault(text: str) -> Fault:
    """A fault from "2:timeout" or "3:exception=0x3000-0x3010"; ValueError naming the problem."""
    match = _FAULT.fullmatch(text.strip())
    modes = ", ".join(m.value for m in FaultMode)
    if match is None:
        raise ValueError(
            f"fault {text!r}: give UNIT:MODE (MODE one of {modes}) or UNIT:exception=LOW-HIGH"
        )
    unit_id = int(match[1])
    if not 1 <= unit_id <= 247:
        raise ValueError(f"fault {text!r}: unit id {unit_id} is outside 1..247")
    try:
        mode = FaultMode(match[2])
    except ValueError:
        raise ValueError(f"fault {text!r}: unknown mode {match[2]!r} (one of {modes})") from None
    if mode not in _RANGED:
        if match[3] is not None:
            raise ValueError(f"fault {text!r}: only exception, flaky and nan take a register range")
        return Fault(unit_id, mode)
    if match[3] is None:
        return Fault(unit_id, mode)
    try:
        low, high = int(match[3], 0), int(match[4], 0)
    except ValueError:
        raise ValueError(f"fault {text!r}: the range must be numbers, e.g. 0x3000-0x3010") from None
    if not 0 <= low <= high <= 0xFFFF:
        raise ValueError(f"fault {text!r}: the range must run upwards within 0..65535")
    return Fault(unit_id, mode, low, high)


class FaultInjector:
    """Plays the faults through pymodbus' server hooks (trace_pdu, trace_packet) and the
    simulated units' request callback. `silence_others`: units not simulated do not
    answer at all, as on a serial line (a TCP gateway answers them with exception 11)."""

    def __init__(
        self,
        faults: Sequence[Fault],
        unit_ids: Collection[int],
        *,
        silence_others: bool = False,
        active: bool = True,
    ) -> None:
        self._faults: dict[int, list[Fault]] = {}
        for fault in faults:
            self._faults.setdefault(fault.unit_id, []).append(fault)
        self._unit_ids = frozenset(unit_ids)
        self._silence_others = silence_others
        self.active = active
        self._replies: Counter[int] = Counter()
        self._flaky_reads: Counter[int] = Counter()
        self._mute_next = False
        self._garble_next = False

    def toggle(self) -> None:
        self.active = not self.active
        log.info(
            "faults on" if self.active else "faults off",
            extra=fields(faults=" ".join(self.describe()) or "none"),
        )

    def describe(self) -> list[str]:
        return [
            f"{f.unit_id}:{f.mode.value}"
            + (f"={f.low:#06x}-{f.high:#06x}" if f.mode in _RANGED else "")
            for faults in self._faults.values()
            for f in faults
        ]

    def _modes(self, unit_id: int) -> list[Fault]:
        return self._faults.get(unit_id, []) if self.active else []

    def has(self, unit_id: int, mode: FaultMode) -> bool:
        return any(f.mode is mode for f in self._modes(unit_id))

    def refuses(self, unit_id: int, address: int, count: int) -> bool:
        """Whether a read of `count` registers at `address` is refused (asked once per read:
        a flaky fault refuses every other read that touches its range)."""
        touched = {f.mode for f in self._modes(unit_id) if f.touches(address, count)}
        if FaultMode.FLAKY in touched:
            self._flaky_reads[unit_id] += 1
            if self._flaky_reads[unit_id] % 2:
                return True
        return FaultMode.EXCEPTION in touched

    def nan(self, unit_id: int, address: int, count: int) -> bool:
        """Whether the register(s) at `address` read NaN now."""
        return any(
            f.mode is FaultMode.NAN and f.touches(address, count) for f in self._modes(unit_id)
        )

    def trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        """Before a reply is framed: decide whether it goes out, and shorten it."""
        if not sending:
            return pdu
        unit_id = pdu.dev_id
        self._replies[unit_id] += 1
        self._mute_next = (
            (self._silence_others and unit_id not in self._unit_ids)
            or self.has(unit_id, FaultMode.TIMEOUT)
            or (self.has(unit_id, FaultMode.DROP) and self._replies[unit_id] % 2 == 0)
        )
        self._garble_next = self.has(unit_id, FaultMode.GARBAGE)
        registers = getattr(pdu, "registers", None)
        if self.has(unit_id, FaultMode.SHORT) and isinstance(registers, list) and registers:
            pdu.registers = registers[:-1]
        return pdu

    def trace_packet(self, sending: bool, packet: bytes) -> bytes:
        """The framed reply as it goes out: nothing, garbage, or as it is."""
        if not sending:
            return packet
        mute, garble = self._mute_next, self._garble_next
        self._mute_next = self._garble_next = False
        if mute:
            return b""
        if garble:
            return bytes(b ^ 0x5A for b in packet)
        return packet
