"""Which of an agent's statuses the collector keeps: the latest, the last will included,
in whatever order they arrive; older agents (no `connected`) by ts, as before."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.state.statuses import AgentStatuses, StatusRejected
from greengauge.contract import AgentState, AgentStatus

START = datetime(2026, 1, 1, tzinfo=UTC)
MS = timedelta(milliseconds=1)


def status(state: AgentState, ts: datetime, connected: datetime | None = None) -> AgentStatus:
    return AgentStatus(site="s", agent="a", state=state, ts=ts, connected=connected)


@st.composite
def connections(draw: st.DrawFn) -> list[AgentStatus]:
    """An agent's statuses in the order it made them: connections one after the other,
    each with updates after it opened, and maybe its last will (made when it opened)."""
    made: list[AgentStatus] = []
    now = START
    for _ in range(draw(st.integers(1, 4))):
        connected = now = now + draw(st.integers(1, 10**6)) * MS
        updates = []
        for _ in range(draw(st.integers(0, 5))):
            now += draw(st.integers(1, 10**6)) * MS
            updates.append(status(AgentState.ONLINE, now, connected))
        made += updates
        if draw(st.booleans()):
            made.append(status(AgentState.OFFLINE, connected, connected))
    return made


@given(made=connections().filter(bool), data=st.data())
def test_the_latest_status_is_kept_whatever_the_arrival_order(
    made: list[AgentStatus], data: st.DataObject
) -> None:
    statuses = AgentStatuses()
    for received in data.draw(st.permutations(made)):
        statuses.update(received)
    assert statuses.agents[("s", "a")] == made[-1]


def kept(statuses: AgentStatuses) -> AgentState:
    return statuses.agents[("s", "a")].state


def test_the_will_ends_its_connection_though_its_ts_is_older() -> None:
    statuses = AgentStatuses()
    statuses.update(status(AgentState.ONLINE, START + 60 * MS, START))
    statuses.update(status(AgentState.OFFLINE, START, START))
    assert kept(statuses) is AgentState.OFFLINE


def test_statuses_of_agents_without_connected_are_ordered_by_ts() -> None:
    statuses = AgentStatuses()
    statuses.update(status(AgentState.ONLINE, START + MS))
    statuses.update(status(AgentState.OFFLINE, START))
    assert kept(statuses) is AgentState.ONLINE
    statuses.update(status(AgentState.OFFLINE, START + 2 * MS))
    assert kept(statuses) is AgentState.OFFLINE


def test_a_connection_ahead_of_the_clock_is_refused() -> None:
    now = datetime.now(UTC)
    statuses = AgentStatuses()
    statuses.check(status(AgentState.ONLINE, now, now - timedelta(days=30)), now)
    with pytest.raises(StatusRejected, match=r"status connected .* ahead of the collector's"):
        statuses.check(status(AgentState.OFFLINE, now, now + timedelta(days=1)), now)
