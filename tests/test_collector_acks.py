"""Acknowledgements leave in arrival order, whatever order the messages finish in."""

from __future__ import annotations

from collector.acks import OrderedAcks, Progress


def test_acks_wait_for_every_earlier_message() -> None:
    acks = OrderedAcks()
    tickets = [acks.received(mid) for mid in (11, 12, 13, 14)]
    assert acks.done(tickets[2]) == []
    assert acks.done(tickets[1]) == []
    assert acks.done(tickets[0]) == [11, 12, 13]
    assert acks.waiting == 1
    assert acks.done(tickets[3]) == [14]
    assert acks.waiting == 0


def test_a_ticket_done_twice_or_unknown_releases_nothing() -> None:
    acks = OrderedAcks()
    first = acks.received(1)
    assert acks.done(first) == [1]
    assert acks.done(first) == []
    assert acks.done(99) == []


def test_packet_ids_may_repeat_once_released() -> None:
    acks = OrderedAcks()
    a = acks.received(1)
    assert acks.done(a) == [1]
    b = acks.received(1)
    assert acks.done(b) == [1]


def test_a_message_not_finished_within_the_bound_is_named_once_with_its_stage() -> None:
    acks = OrderedAcks()
    stuck = Progress("store")
    first = acks.received(1, "greengauge/v1/s/a/readings", stuck, now=100.0)
    second = acks.received(2, "greengauge/v1/s/a/status", Progress("keep"), now=101.0)
    acks.done(second)  # finished, only held back by the first
    assert acks.overdue(now=159.9, bound=60.0) == []
    [held] = acks.overdue(now=161.5, bound=60.0)
    assert (held.mid, held.topic, held.progress.stage) == (1, "greengauge/v1/s/a/readings", "store")
    assert acks.overdue(now=500.0, bound=60.0) == []  # named once, not on every check
    assert acks.done(first) == [1, 2]
    assert acks.waiting == 0
