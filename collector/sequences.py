"""Each agent's batch sequence numbers as the collector has stored them: gaps and repeats.

An agent numbers its batches 0, 1, 2... and sends its backlog beside its live batches
after an outage, so batches arrive out of order by design. The tracker keeps, per
agent, the ranges of seqs stored so far: a seq already in a range is a repeat (a
re-delivery, harmless), a seq above the highest one seen opens a gap, and a seq inside
a gap fills it (a late backlog batch). Whatever stays in a gap is lost, e.g. batches an
agent's full outbox dropped. Pure; `load` and `save` keep it in a JSON file so that a
restarted collector does not report false gaps. A state file that cannot be used (corrupt,
hostile, not a file) is moved aside with a warning: the collector starts with no ranges,
which costs at most gaps it cannot report, never a start-up.
"""

from __future__ import annotations

import bisect
import itertools
import json
import logging
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from greengauge.common.files import read_limited, set_aside, write_atomically
from greengauge.common.logs import fields

log = logging.getLogger(__name__)

# Beyond this many disjoint ranges per agent the oldest gaps are given up as lost:
# memory and the state file stay bounded whatever an agent sends.
MAX_RANGES: Final = 1000
# A seq this far from every seq seen of its agent is not a gap but a new numbering (an
# agent that lost its state, or a hostile one): counting it as missing batches would
# report up to 2**64 of them.
DEFAULT_MAX_JUMP: Final = 10_000_000
# ~25 bytes a range: MAX_RANGES for a few thousand agents.
MAX_STATE_BYTES: Final = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Seen:
    """What one seq meant."""

    repeat: bool = False
    gap: int = 0
    """seqs skipped over by this one (a new gap)"""
    filled: bool = False
    """it arrived late, into an earlier gap"""
    epoch: bool = False
    """it was too far from every earlier seq: they are forgotten, it starts anew"""


@dataclass(slots=True)
class AgentSeqs:
    ranges: list[list[int]] = field(default_factory=list)
    """disjoint [low, high] ranges of seqs seen, sorted"""
    repeats: int = 0
    gaps: int = 0
    """seqs skipped over when they opened, whether later filled or not"""
    filled: int = 0
    given_up: int = 0
    epochs: int = 0

    def missing(self) -> int:
        """Seqs inside gaps now: lost, unless a backlog still brings them."""
        return sum(b[0] - a[1] - 1 for a, b in zip(self.ranges, self.ranges[1:], strict=False))

    def see(self, seq: int, max_jump: int = DEFAULT_MAX_JUMP) -> Seen:
        ranges = self.ranges
        if not ranges:
            ranges.append([seq, seq])
            return Seen()
        if seq > ranges[-1][1] + max_jump or seq < ranges[0][0] - max_jump:
            self.given_up += self.missing()
            self.epochs += 1
            ranges[:] = [[seq, seq]]
            return Seen(epoch=True)
        index = bisect.bisect_right(ranges, seq, key=lambda r: r[0]) - 1
        if index >= 0 and ranges[index][0] <= seq <= ranges[index][1]:
            self.repeats += 1
            return Seen(repeat=True)
        highest = ranges[-1][1]
        gap = seq - highest - 1 if seq > highest else 0
        filled = index >= 0 and seq < highest
        # Insert and merge with the neighbours it touches.
        ranges.insert(index + 1, [seq, seq])
        at = index + 1
        if at + 1 < len(ranges) and ranges[at + 1][0] == seq + 1:
            ranges[at][1] = ranges[at + 1][1]
            del ranges[at + 1]
        if at > 0 and ranges[at - 1][1] == seq - 1:
            ranges[at - 1][1] = ranges[at][1]
            del ranges[at]
        self.gaps += gap
        self.filled += int(filled)
        while len(ranges) > MAX_RANGES:
            self.given_up += ranges[1][0] - ranges[0][1] - 1
            ranges[1][0] = ranges[0][0]
            del ranges[0]
        return Seen(gap=gap, filled=filled)


class SequenceTracker:
    """Every agent's seqs; at most `max_agents` agents, the least recently seen forgotten
    (it starts afresh if it comes back), so invented agent ids cannot exhaust memory."""

    def __init__(self, max_jump: int = DEFAULT_MAX_JUMP, max_agents: int = 10_000) -> None:
        # Least recently seen first, in memory and in the state file.
        self.agents: OrderedDict[tuple[str, str], AgentSeqs] = OrderedDict()
        self.max_jump = max_jump
        self.max_agents = max_agents
        self.forgotten = 0
        # Each agent's entry of the state file as last written: the file is written after
        # every store write, and re-encoding only the agents that changed keeps that cheap
        # with thousands of agents.
        self._entries: dict[tuple[str, str], str] = {}

    def see(self, site: str, agent: str, seq: int) -> Seen:
        key = (site, agent)
        seqs = self.agents.get(key)
        if seqs is None:
            seqs = self.agents[key] = AgentSeqs()
            if len(self.agents) > self.max_agents:
                gone, _ = self.agents.popitem(last=False)
                self._entries.pop(gone, None)
                self.forgotten += 1
        else:
            self.agents.move_to_end(key)
        seen = seqs.see(seq, self.max_jump)
        if not seen.repeat:
            self._entries.pop(key, None)
        return seen

    @property
    def repeats(self) -> int:
        return sum(a.repeats for a in self.agents.values())

    @property
    def missing(self) -> int:
        return sum(a.missing() for a in self.agents.values())

    def to_json(self) -> str:
        entries = self._entries
        for key, seqs in self.agents.items():
            if key not in entries:
                site, agent = key
                entries[key] = json.dumps({"site": site, "agent": agent, "ranges": seqs.ranges})
        # What json.dumps gives for the whole list, least recently seen first.
        return "[" + ", ".join([entries[key] for key in self.agents]) + "]"

    @classmethod
    def from_json(
        cls, text: str | bytes, max_jump: int = DEFAULT_MAX_JUMP, max_agents: int = 10_000
    ) -> SequenceTracker:
        """ValueError saying what is wrong unless it is what `to_json` writes; of the agents
        in it (least recently seen first) the `max_agents` last are kept."""
        tracker = cls(max_jump, max_agents)
        try:
            state = _STATE.validate_json(text)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"]) or "(top level)"
            raise ValueError(f"{where}: {first['msg']}") from None
        for number, item in enumerate(state[-max_agents:]):
            ranges = sorted([low, high] for low, high in item.ranges)
            if (item.site, item.agent) in tracker.agents:
                raise ValueError(f"{number}: agent {item.site}/{item.agent} appears twice")
            if any(low > high for low, high in ranges) or any(
                a[1] >= b[0] for a, b in itertools.pairwise(ranges)
            ):
                raise ValueError(f"{number}.ranges: not disjoint [low, high] ranges")
            tracker.agents[(item.site, item.agent)] = AgentSeqs(ranges=ranges)
        return tracker


def see_all(tracker: SequenceTracker, seqs: Iterable[tuple[str, str, int]]) -> None:
    """Track the (site, agent, seq) of stored batches, logging repeats, gaps and epochs."""
    repeats: Counter[tuple[str, str]] = Counter()
    for site, agent, seq in seqs:
        seen = tracker.see(site, agent, seq)
        if seen.repeat:
            repeats[(site, agent)] += 1
        elif seen.epoch:
            log.warning(
                "sequence restarted: seq far from every earlier one, counting anew",
                extra=fields(site=site, agent=agent, seq=seq, max_jump=tracker.max_jump),
            )
        elif seen.gap:
            log.warning(
                "sequence gap: batches not received (yet)",
                extra=fields(
                    site=site,
                    agent=agent,
                    seq=seq,
                    missing=seen.gap,
                    missing_now=tracker.agents[(site, agent)].missing(),
                ),
            )
    for (site, agent), count in repeats.items():
        log.info(
            "sequence repeats: batches delivered again",
            extra=fields(site=site, agent=agent, batches=count),
        )


class _AgentState(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    site: str
    agent: str
    ranges: list[tuple[int, int]] = Field(max_length=MAX_RANGES)


_STATE = TypeAdapter(list[_AgentState])


def load(path: Path, max_jump: int = DEFAULT_MAX_JUMP, max_agents: int = 10_000) -> SequenceTracker:
    try:
        text = read_limited(path, MAX_STATE_BYTES)
        return SequenceTracker.from_json(text, max_jump, max_agents)
    except FileNotFoundError:
        return SequenceTracker(max_jump, max_agents)
    except (OSError, ValueError) as exc:
        reason = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
        try:
            moved_to = str(set_aside(path))
        except OSError as move:
            moved_to = f"(not moved: {move.strerror or move})"
        log.warning(
            "sequence state unusable, starting without it: gaps before now are not reported",
            extra=fields(file=str(path), reason=reason, moved_to=moved_to),
        )
        return SequenceTracker(max_jump, max_agents)


def save(tracker: SequenceTracker, path: Path) -> None:
    write_atomically(path, tracker.to_json())
