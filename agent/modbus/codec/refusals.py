"""Reads a device refuses, and when to ask for them again. Pure but for the injected read.

A device answers a read it cannot serve whole with an exception reply: 2 (illegal data
address) when the block touches a register this unit lacks or a gap it does not bridge,
3 (illegal data value) from devices that take fewer registers per read than their
profile says. The block is then bisected by its fields (`split_block`) until every part
is either read or a single field the device refuses on its own.

Refusals are often transient (a meter booting, a firmware busy with a measurement, a
converter that glitches), so nothing is left out for good. A block of the minimal plan
that had to be split is read in parts, without the refused fields, until its retry time;
then the whole block is asked for again. Answered whole, it is read in one request again
and every field comes back; it stays on probation for as long again (read whole, but a
refusal then counts as one at the retry time), so a device that refuses every other read
backs off instead of splitting and merging on every tick. Refused again, the block is
split anew and the wait doubles, up to a ceiling. So a register is asked for again within
the ceiling of the device answering it, and never before its retry time. A busy or
failing reply at the retry time is no news: the block stays split and the wait doubles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from agent.modbus.codec.plan import ReadBlock, split_block, without_registers
from agent.modbus.codec.resolve import ReadRegisters
from agent.modbus.errors import ReadError
from greengauge.common.backoff import doubled

ILLEGAL_DATA_ADDRESS: Final = 2
ILLEGAL_DATA_VALUE: Final = 3
REFUSALS: Final = frozenset({ILLEGAL_DATA_ADDRESS, ILLEGAL_DATA_VALUE})
"""Exception codes that say "not this read", so a smaller one may be answered. Other
codes (4 device failure, 6 busy, 0x0A/0x0B gateway) drop the block for this read only."""


@dataclass(frozen=True, slots=True)
class Retry:
    """Waits before a split block is asked for whole again: `start` doubling up to `ceiling`.

    No jitter: a meter's reads fall on its ticks anyway, and a fixed schedule is one a
    test can check exactly.
    """

    start: float
    ceiling: float

    def delay(self, retries: int) -> float:
        return doubled(self.start, self.ceiling, retries)


@dataclass(frozen=True, slots=True)
class Split:
    """A block of the minimal plan the device refused whole, and what is read instead."""

    parts: tuple[ReadBlock, ...]
    """The reads until `retry_at`: the block without `excluded`, in as few requests as the
    device is known or hoped to answer; the block itself while on probation."""
    excluded: frozenset[int]
    """Addresses of the block's fields the device refused on their own."""
    retries: int
    """Refusals of the whole block at its retry times since it was last clean: sets the wait."""
    retry_at: float
    """When the whole block is asked for again (a time of the poller's clock)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one poll's reads of one block of the minimal plan gave."""

    replies: tuple[tuple[ReadBlock, Sequence[int]], ...] = ()
    """Reads the device answered, with their registers, in the order made."""
    failed: tuple[tuple[ReadBlock, ReadError], ...] = ()
    """Reads answered with an exception that is not a refusal: dropped this time only."""
    refused: tuple[ReadBlock, ...] = ()
    """Reads refused (and bisected, when they had more than one field)."""
    bad: tuple[tuple[int, int], ...] = ()
    """(address, exception code) of each field refused on its own."""
    failure: ReadError | None = None
    """No answer (timeout, connection, garbled reply): the poll stopped here."""

    @property
    def kept(self) -> tuple[ReadBlock, ...]:
        """The reads that were not refused, in address order."""
        made = [block for block, _ in self.replies] + [block for block, _ in self.failed]
        return tuple(sorted(made, key=lambda b: b.address))


def due(split: Split | None, now: float) -> bool:
    """Whether a poll at `now` asks for the whole block."""
    return split is None or now >= split.retry_at


def reads(block: ReadBlock, split: Split | None, now: float) -> tuple[ReadBlock, ...]:
    """What to ask for of `block` in a poll at `now`."""
    return (block,) if split is None or due(split, now) else split.parts


async def read_block(
    block: ReadBlock,
    split: Split | None,
    now: float,
    read: ReadRegisters,
    first: ReadError | None = None,
) -> Outcome:
    """Read `block` as its state says, bisecting what the device refuses. `first`: the
    error the first of these reads already met (the caller made it)."""
    queue = list(reads(block, split, now))
    replies: list[tuple[ReadBlock, Sequence[int]]] = []
    failed: list[tuple[ReadBlock, ReadError]] = []
    refused: list[ReadBlock] = []
    bad: list[tuple[int, int]] = []
    while queue:
        part = queue.pop(0)
        try:
            if first is not None:
                error, first = first, None
                raise error
            registers = await read(part.function, part.address, part.count)
        except ReadError as exc:
            if exc.kind != "exception":
                return Outcome(tuple(replies), tuple(failed), tuple(refused), tuple(bad), exc)
            if exc.exception_code not in REFUSALS:
                failed.append((part, exc))
                continue
            refused.append(part)
            halves = split_block(part)
            if halves is None:
                bad.append((part.fields[0].address, exc.exception_code))
            else:
                queue[0:0] = halves
            continue
        replies.append((part, registers))
    return Outcome(tuple(replies), tuple(failed), tuple(refused), tuple(bad))


def settle(
    block: ReadBlock, split: Split | None, outcome: Outcome, now: float, retry: Retry
) -> Split | None:
    """The block's state after a poll at `now` that was not cut short."""
    if split is None:
        return _split(block, outcome, 0, now, retry) if outcome.refused else None
    if due(split, now):
        return _retried(block, split, outcome, now, retry)
    if not outcome.refused:
        return split
    if split.parts == (block,):
        # Refused on probation: as if at the retry time, so the wait grows.
        return _split(block, outcome, split.retries + 1, now, retry)
    # A part refused between retries: its answered halves stand in for it. Not merged
    # into longer reads, which the device may refuse too: that waits for the retry.
    bad = frozenset(address for address, _ in outcome.bad)
    return Split(outcome.kept, split.excluded | bad, split.retries, split.retry_at)


def _retried(
    block: ReadBlock, split: Split, outcome: Outcome, now: float, retry: Retry
) -> Split | None:
    """The state after the whole block was asked for again."""
    if outcome.refused:
        return _split(block, outcome, split.retries + 1, now, retry)
    if outcome.failed:
        # Neither answered nor refused (busy, device failure): no news, ask again later.
        retries = split.retries + 1
        return Split(split.parts, split.excluded, retries, now + retry.delay(retries))
    if split.parts == (block,):
        return None  # read whole for a full wait: clean
    # Answered whole: read whole again, on probation for as long as it last waited.
    return Split((block,), frozenset(), split.retries, now + retry.delay(split.retries))


def _split(block: ReadBlock, outcome: Outcome, retries: int, now: float, retry: Retry) -> Split:
    """The whole block refused: read without what was refused alone until the next retry."""
    bad = frozenset(address for address, _ in outcome.bad)
    return Split(_compact(block, outcome, bad), bad, retries, now + retry.delay(retries))


def _compact(block: ReadBlock, outcome: Outcome, bad: frozenset[int]) -> tuple[ReadBlock, ...]:
    """The block without `bad` in the fewest reads not refused in this poll: each run of
    fields between bad ones in one read, unless that very read was refused (a gap the
    device does not bridge), then in the reads that were answered."""
    refused = {(r.address, r.count) for r in outcome.refused}
    kept = outcome.kept
    parts: list[ReadBlock] = []
    for run in without_registers((block,), {(block.function, a) for a in bad}):
        if (run.address, run.count) not in refused:
            parts.append(run)
            continue
        inside = {f.address for f in run.fields}
        parts += [k for k in kept if k.fields[0].address in inside]
    return tuple(parts)
