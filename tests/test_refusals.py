"""Refused reads over time (agent.modbus.codec.refusals), without a server: a device whose refusals
come and go, polled on a fixed grid through the same read_block/settle the poller uses.

For any history of refusals the properties the agent promises hold: nothing refused is
asked for before its retry time, every register the device answers is read again within
the backoff ceiling of the device settling, and a block the device answers whole is back
to one request per poll."""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from test_plan_split import check_block, profile

from agent.modbus.codec.plan import ReadBlock, plan_reads
from agent.modbus.codec.refusals import (
    Outcome,
    Retry,
    Split,
    read_block,
    reads,
    settle,
)
from agent.modbus.errors import ReadError
from agent.profiles.model import Function

INTERVAL = 1.0
RETRY = Retry(start=INTERVAL, ceiling=8.0)


def run(coroutine: Coroutine[Any, Any, Outcome]) -> Outcome:
    """Run a coroutine that never waits (the fake device answers at once)."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        result: Outcome = stop.value
        return result
    raise AssertionError("the fake device never waits")


@dataclass(frozen=True)
class Device:
    """Refuses a read that touches `refused` (exception 2) or is longer than `longest`
    registers (exception 3, a device that takes fewer per read than its profile says);
    is busy (exception 6) for reads that touch `busy`."""

    refused: frozenset[int] = frozenset()
    longest: int = 125
    busy: frozenset[int] = frozenset()

    def answers(self, address: int, count: int) -> bool:
        return count <= self.longest and not set(range(address, address + count)) & self.refused

    def code(self, address: int, count: int) -> int:
        return 3 if count > self.longest else 2


@dataclass
class Poll:
    time: float
    requests: list[tuple[int, int]] = field(default_factory=list)
    fields_read: set[int] = field(default_factory=set)
    refusals: dict[int, int] = field(default_factory=dict)
    """block index -> refused requests"""
    before: dict[int, Split | None] = field(default_factory=dict)
    after: dict[int, Split | None] = field(default_factory=dict)


def poll(plan: Sequence[ReadBlock], splits: dict[int, Split], device: Device, now: float) -> Poll:
    """One poll of every block, as the poller makes it; `splits` is updated."""
    record = Poll(now)

    async def read(function: Function, address: int, count: int) -> Sequence[int]:
        record.requests.append((address, count))
        if not device.answers(address, count):
            code = device.code(address, count)
            raise ReadError("exception", f"exception code {code}", code)
        if set(range(address, address + count)) & device.busy:
            raise ReadError("exception", "exception code 6", 6)
        return [0] * count

    for index, block in enumerate(plan):
        before = splits.get(index)
        outcome = run(read_block(block, before, now, read))
        assert outcome.failure is None
        for part, _ in outcome.replies:
            check_block(part)
            record.fields_read |= {f.address for f in part.fields}
        record.refusals[index] = len(outcome.refused)
        after = settle(block, before, outcome, now, RETRY)
        record.before[index], record.after[index] = before, after
        if after is None:
            splits.pop(index, None)
        else:
            splits[index] = after
    return record


def answerable(plan: Sequence[ReadBlock], device: Device) -> set[int]:
    return {
        f.address
        for block in plan
        for f in block.fields
        if device.answers(f.span[0], f.span[1] - f.span[0])
    }


addresses = st.lists(st.integers(0, 40), min_size=1, max_size=14, unique=True).map(
    lambda xs: [2 * x for x in sorted(xs)]
)


@st.composite
def devices(draw: st.DrawFn, busy: bool = False, plan_span: int = 82) -> Device:
    refused = draw(st.frozensets(st.integers(0, plan_span), max_size=4))
    longest = draw(st.sampled_from([125, 125, 8, 4]))
    sometimes_busy = st.frozensets(st.integers(0, plan_span), max_size=1 if busy else 0)
    return Device(refused, longest, draw(sometimes_busy))


@settings(max_examples=300, deadline=None)
@given(
    addresses,
    st.sampled_from([0, 10]),
    st.lists(st.tuples(devices(busy=True), st.integers(1, 12)), min_size=1, max_size=6),
    devices(),
)
def test_any_history_of_refusals_settles_on_what_the_device_answers(
    addresses: list[int],
    max_gap: int,
    history: list[tuple[Device, int]],
    final: Device,
) -> None:
    plan = plan_reads(profile(addresses, max_gap=max_gap))
    splits: dict[int, Split] = {}
    polls: list[Poll] = []
    now = 0.0
    for device, length in history:
        for _ in range(length):
            polls.append(poll(plan, splits, device, now))
            now += INTERVAL
    settled = now
    settle_by = settled + RETRY.ceiling + INTERVAL
    final_polls: list[Poll] = []
    while now <= settle_by + 4 * RETRY.ceiling:
        final_polls.append(poll(plan, splits, final, now))
        now += INTERVAL
    polls += final_polls

    check_backoff(plan, polls)
    check_settled(plan, splits, final, [r for r in final_polls if r.time >= settle_by])
    check_steady(plan, final_polls)


def check_backoff(plan: Sequence[ReadBlock], polls: list[Poll]) -> None:
    # Nothing left out is asked for before its retry time, and each wait is the backoff's.
    for record in polls:
        for index, before in record.before.items():
            after = record.after[index]
            whole = reads(plan[index], before, record.time) == (plan[index],)
            if before is not None and not whole:
                asked = {r for a, c in record.requests for r in range(a, a + c)}
                for f in plan[index].fields:
                    if f.address in before.excluded:
                        assert not asked & set(range(*f.span))
                assert after is not None and after.retry_at == before.retry_at
            if after is not None and after is not before and whole:
                assert after.retry_at == record.time + RETRY.delay(after.retries)


def check_settled(
    plan: Sequence[ReadBlock], splits: dict[int, Split], final: Device, late: list[Poll]
) -> None:
    # Within the ceiling of the device settling, every register it answers is read in
    # every poll, and nothing else is left out.
    wanted = answerable(plan, final)
    assert late
    for record in late:
        assert record.fields_read == wanted
    excluded = {a for s in splits.values() for a in s.excluded}
    assert excluded == {f.address for b in plan for f in b.fields} - wanted

    # A block the device answers whole is read in one request again.
    for index, block in enumerate(plan):
        if final.answers(block.address, block.count):
            for record in late:
                state = record.after[index]
                assert record.refusals[index] == 0
                assert state is None or state.parts == (block,)
            # ... and clean (no probation) once a full wait has passed too.
            assert index not in splits
    if all(final.answers(b.address, b.count) for b in plan):
        assert all(len(r.requests) == len(plan) for r in late)
        assert splits == {}


def check_steady(plan: Sequence[ReadBlock], final_polls: list[Poll]) -> None:
    # A device that stays as it is is asked to refuse between two requests for a whole
    # block at most once (a merged read over a gap it does not bridge), and while it
    # refuses the whole block the waits double.
    for index in range(len(plan)):
        between = 0
        for record in final_polls:
            before, after = record.before[index], record.after[index]
            if reads(plan[index], before, record.time) == (plan[index],):
                between = 0
                if before is not None and record.refusals[index]:
                    assert after is not None and after.retries == before.retries + 1
            elif record.refusals[index]:
                between += 1
                assert between <= 1


@given(
    st.lists(st.integers(0, 60), min_size=1, max_size=20, unique=True).map(
        lambda xs: [2 * x for x in sorted(xs)]
    ),
    st.data(),
)
def test_bisection_finds_exactly_the_refused_registers(
    addresses: list[int], data: st.DataObject
) -> None:
    refused_fields = data.draw(st.sets(st.sampled_from(addresses)))
    device = Device(frozenset(a + w for a in refused_fields for w in (0, 1)))
    plan = plan_reads(profile(addresses, max_gap=0 if len(addresses) % 2 else 10))
    splits: dict[int, Split] = {}
    record = poll(plan, splits, device, 0.0)
    assert record.fields_read == set(addresses) - refused_fields
    assert {a for s in splits.values() for a in s.excluded} == refused_fields
    for index, block in enumerate(plan):
        in_block = {f.address for f in block.fields}
        bad = len(refused_fields & in_block)
        # bisection costs at most two reads per bad register per level
        assert record.refusals[index] <= 2 * bad * max(1, len(in_block).bit_length()) + 1
        # and the next poll reads the rest in as many reads as there are runs between them
        if index in splits:
            for part in splits[index].parts:
                check_block(part)
            assert len(splits[index].parts) <= bad + 1
    again = poll(plan, splits, device, 0.5)
    assert again.fields_read == record.fields_read
    assert sum(again.refusals.values()) == 0
