"""Per-agent sequence tracking: gaps, late backlog, repeats, and a restart."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from collector import sequences
from collector.sequences import MAX_RANGES, AgentSeqs, Seen, SequenceTracker


def see_all(seqs: AgentSeqs, values: list[int]) -> None:
    for value in values:
        seqs.see(value)


def test_in_order_sequence_has_no_gap_and_no_repeat() -> None:
    seqs = AgentSeqs()
    see_all(seqs, list(range(5, 20)))
    assert (seqs.gaps, seqs.repeats, seqs.missing()) == (0, 0, 0)
    assert seqs.ranges == [[5, 19]]


def test_a_jump_opens_a_gap_and_the_backlog_fills_it() -> None:
    seqs = AgentSeqs()
    see_all(seqs, [0, 1, 2])
    seen = seqs.see(6)  # live batch after an outage; 3..5 are in the agent's backlog
    assert seen.gap == 3
    assert seqs.missing() == 3
    see_all(seqs, [7, 3, 8, 4])
    assert seqs.missing() == 1
    assert seqs.see(5).filled
    assert seqs.missing() == 0
    assert seqs.ranges == [[0, 8]]
    assert (seqs.gaps, seqs.filled, seqs.repeats) == (3, 3, 0)


def test_a_redelivered_batch_is_a_repeat() -> None:
    seqs = AgentSeqs()
    see_all(seqs, [0, 1, 2, 3])
    assert seqs.see(2).repeat
    assert seqs.see(3).repeat
    assert (seqs.repeats, seqs.missing()) == (2, 0)


def test_dropped_batches_stay_missing() -> None:
    seqs = AgentSeqs()
    see_all(seqs, [0, 1, *range(12, 20)])  # an agent's full outbox dropped 2..11
    assert seqs.missing() == 10


def test_ranges_stay_bounded_and_give_up_the_oldest_gaps() -> None:
    seqs = AgentSeqs()
    see_all(seqs, [2 * i for i in range(MAX_RANGES + 10)])
    assert len(seqs.ranges) == MAX_RANGES
    assert seqs.given_up == 10
    assert seqs.missing() == MAX_RANGES - 1


def test_state_survives_a_restart_without_false_gaps(tmp_path: Path) -> None:
    path = tmp_path / "sequences.json"
    tracker = SequenceTracker()
    for seq in (0, 1, 2, 5):
        tracker.see("site", "gw", seq)
    tracker.see("site", "other", 40)
    sequences.save(tracker, path)
    restarted = sequences.load(path)
    assert restarted.see("site", "gw", 6).gap == 0
    assert restarted.see("site", "gw", 2).repeat
    assert restarted.see("site", "other", 41).gap == 0
    assert restarted.missing == 2  # 3 and 4
    assert sequences.load(tmp_path / "absent.json").agents == {}


def test_a_seq_beyond_the_jump_limit_starts_a_new_epoch_either_way() -> None:
    tracker = SequenceTracker(max_jump=100)
    for seq in (0, 1, 5):
        tracker.see("s", "a", seq)
    assert tracker.missing == 3
    assert tracker.see("s", "a", 10**19) == Seen(epoch=True)
    assert tracker.missing == 0  # not 10**19 batches missing
    seqs = tracker.agents[("s", "a")]
    assert (seqs.epochs, seqs.given_up) == (1, 3)
    assert tracker.see("s", "a", 10**19 + 2).gap == 1
    assert tracker.see("s", "a", 7) == Seen(epoch=True)  # an agent numbering from scratch
    assert tracker.missing == 0 and seqs.epochs == 2
    assert tracker.see("s", "a", 7 + 100).gap == 99  # within the limit: a gap as before


def test_at_most_max_agents_are_tracked_the_least_recently_seen_forgotten(tmp_path: Path) -> None:
    tracker = SequenceTracker(max_agents=2)
    for agent in ("a", "b", "a", "c"):
        tracker.see("s", agent, 0)
    assert list(tracker.agents) == [("s", "a"), ("s", "c")]
    assert tracker.forgotten == 1
    path = tmp_path / "sequences.json"
    sequences.save(tracker, path)
    restarted = sequences.load(path, max_agents=1)
    assert list(restarted.agents) == [("s", "c")]  # the most recently seen survive


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["site", "agent", "ranges", "x"]), inner, max_size=4)
    ),
    max_leaves=16,
)


@given(st.one_of(json_values.map(json.dumps), st.binary(max_size=64)))
def test_any_state_text_is_a_tracker_or_a_value_error(text: str | bytes) -> None:
    try:
        tracker = SequenceTracker.from_json(text)
    except ValueError:
        return
    # what loads is what to_json would write: the same ranges come back
    assert SequenceTracker.from_json(tracker.to_json()).agents == tracker.agents


@given(
    st.dictionaries(
        st.tuples(st.text(max_size=3), st.text(max_size=3)),
        st.lists(st.integers(0, 10_000), max_size=50),
        max_size=4,
    )
)
def test_the_state_round_trips(seen: dict[tuple[str, str], list[int]]) -> None:
    tracker = SequenceTracker()
    for (site, agent), seqs in seen.items():
        for seq in seqs:
            tracker.see(site, agent, seq)
    restored = SequenceTracker.from_json(tracker.to_json())
    assert {k: v.ranges for k, v in restored.agents.items()} == {
        k: v.ranges for k, v in tracker.agents.items()
    }


@settings(max_examples=200, deadline=None)
@given(
    seen=st.lists(
        st.tuples(st.sampled_from(["a", "b", "c", 'q"\\']), st.integers(0, 30)), max_size=60
    ),
    every=st.integers(1, 7),
)
def test_the_state_written_is_what_json_makes_of_it_whenever_it_is_written(
    seen: list[tuple[str, int]], every: int
) -> None:
    """The state file reuses the entries of agents that did not change since the last
    write: written at any moment, it is what encoding every agent anew gives."""
    tracker = SequenceTracker(max_jump=10, max_agents=3)
    for index, (agent, seq) in enumerate(seen):
        tracker.see("s", agent, seq)
        if index % every == 0:
            fresh = [
                {"site": site, "agent": name, "ranges": seqs.ranges}
                for (site, name), seqs in tracker.agents.items()
            ]
            assert tracker.to_json() == json.dumps(fresh)
