"""Votes that move the sources they judged: how one vote on an answer becomes credits on the
chunks it cited, how credits add up to a chunk's boost, and the bounded multiplier search
applies to the chunk's hybrid score.

- A vote is split over the chunks the answer cites ([n]), in proportion to each chunk's
  retrieval score: the chunk that matched the question best carried the answer most (RAGFlow
  splits a vote the same way). An answer that cites nothing (a curated answer quoted whole, an
  extractive answer without markers) spreads the vote over every retrieved chunk the same way.
- A user's latest vote on a run is the one that counts (the store replaces that voter's credits
  when they vote again), and one voter moves one chunk by at most one vote however many runs
  they vote on (VOTER_CAP): a single user cannot push a chunk to the top.
- The multiplier is bounded: x1 at boost 0, never below 0.5x nor above 2x, and damped (a boost
  of 3 gives about x1.46): Onyx's shape. An unbounded additive boost swamps similarity.
- Kinds whose content ages (Slack threads, GitHub issues) can have their credits decay with the
  vote's age (a half-life in days per kind).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

MIN_MULTIPLIER = 0.5
MAX_MULTIPLIER = 2.0
DAMPING = 3.0  # boost units per sigmoid "step": larger is slower to reach the bounds
VOTER_CAP = 1.0  # one voter's credits on one chunk, summed over runs, are clamped to +/- this
PINNED_BOOST_LIMIT = 100.0  # an operator's pinned boost is a number of votes, within +/- this

# The same citation markers grading reads (grading.checks.CITATION); kept here so the run store
# (below grading) can split a vote without importing the grading package.
CITATION = re.compile(r"\[(\d{1,4}(?:\s*,\s*\d{1,4})*)\]")
VOTE_SIGN = {"up": 1.0, "down": -1.0}


def boost_multiplier(boost: float) -> float:
    """The factor a chunk's hybrid score is multiplied by: 1 at 0, rising towards 2 for positive
    boosts and falling towards 0.5 for negative ones along a sigmoid damped by DAMPING."""
    sigmoid = 1.0 / (1.0 + math.exp(-boost / DAMPING))
    if boost >= 0:
        return MAX_MULTIPLIER * sigmoid  # 2 * 0.5 = 1 at 0, towards 2
    return MIN_MULTIPLIER + sigmoid  # 0.5 + 0.5 = 1 at 0, towards 0.5


def cited_numbers(text: str) -> set[int]:
    """Source numbers an answer cites: [2], [1, 3] and [1][2] all count."""
    return {int(n) for group in CITATION.findall(text) for n in group.split(",")}


@dataclass(frozen=True)
class CitedChunk:
    """A chunk a run retrieved, as a vote credits it."""

    chunk_id: str
    doc_id: str
    kind: str
    title: str
    score: float | None


@dataclass(frozen=True)
class VoteCredit:
    """The share of one vote that one chunk receives (signed: negative for a down vote)."""

    chunk_id: str
    doc_id: str
    kind: str
    title: str
    credit: float


def vote_credits(sources: Sequence[CitedChunk], answer: str, vote: str) -> list[VoteCredit]:
    """Split one vote (up or down) over the chunks `answer` cites, in proportion to their
    retrieval scores (equal shares when no score is positive); every retrieved chunk when the
    answer cites none. Sources without a chunk id (an app that recorded none) get nothing."""
    if vote not in VOTE_SIGN:
        raise ValueError(f"a vote is up or down, not {vote!r}")
    numbers = {n for n in cited_numbers(answer) if 1 <= n <= len(sources)}
    chosen = [sources[n - 1] for n in sorted(numbers)] if numbers else list(sources)
    by_chunk: dict[str, CitedChunk] = {}
    for source in chosen:
        if source.chunk_id and source.chunk_id not in by_chunk:
            by_chunk[source.chunk_id] = source
    if not by_chunk:
        return []
    weights = {chunk_id: max(source.score or 0.0, 0.0) for chunk_id, source in by_chunk.items()}
    total = sum(weights.values())
    if total <= 0:
        weights = dict.fromkeys(by_chunk, 1.0)
        total = float(len(by_chunk))
    sign = VOTE_SIGN[vote]
    return [
        VoteCredit(chunk_id=s.chunk_id, doc_id=s.doc_id, kind=s.kind, title=s.title, credit=sign * weights[c] / total)
        for c, s in by_chunk.items()
    ]


@dataclass(frozen=True)
class StoredCredit:
    """A credit as the run store keeps it: whose vote, on which chunk, when."""

    chunk_id: str
    voter: str
    kind: str
    credit: float
    voted_at: datetime


@dataclass(frozen=True)
class BoostPolicy:
    """How credits add up. `half_life_days`: kind -> days after which a vote counts half (kinds
    not named never decay); `voter_cap`: the most one voter moves one chunk."""

    half_life_days: Mapping[str, float] = field(default_factory=dict)
    voter_cap: float = VOTER_CAP

    def decay(self, kind: str, voted_at: datetime, now: datetime) -> float:
        half_life = self.half_life_days.get(kind)
        if not half_life:
            return 1.0
        age_days = max((now - voted_at).total_seconds(), 0.0) / 86400
        return 0.5 ** (age_days / half_life)


def add_up(credits: Iterable[StoredCredit], now: datetime, policy: BoostPolicy | None = None) -> dict[str, float]:
    """chunk id -> boost: each voter's (decayed) credits on a chunk summed and clamped to
    +/- voter_cap, then summed over voters."""
    policy = policy or BoostPolicy()
    per_voter: dict[tuple[str, str], float] = defaultdict(float)
    for credit in credits:
        per_voter[(credit.chunk_id, credit.voter)] += credit.credit * policy.decay(credit.kind, credit.voted_at, now)
    boosts: dict[str, float] = defaultdict(float)
    for (chunk_id, _voter), total in per_voter.items():
        boosts[chunk_id] += max(-policy.voter_cap, min(policy.voter_cap, total))
    return dict(boosts)


@dataclass(frozen=True)
class ChunkAdjustment:
    """What search does with one chunk: multiply its score, or leave it out (hidden)."""

    multiplier: float = 1.0
    hidden: bool = False


NO_ADJUSTMENT = ChunkAdjustment()


CHUNK_ACTIONS = ("pin", "unpin", "reset", "hide", "unhide")


@dataclass(frozen=True)
class ChunkAction:
    """An operator's action on a chunk, as recorded: who, when, why (and the pinned boost)."""

    chunk_id: str
    action: str
    actor: str
    reason: str
    acted_at: datetime
    boost: float | None = None


@dataclass(frozen=True)
class ChunkControl:
    """Where an operator left a chunk: a pinned boost (votes ignored), the time from which votes
    count again (a reset), hidden from retrieval or not."""

    pinned: float | None = None
    reset_at: datetime | None = None
    hidden: bool = False


def fold_actions(actions: Iterable[ChunkAction]) -> ChunkControl:
    """The control a chunk's actions leave, oldest first: hide/unhide toggle hiding; pin sets a
    boost that votes do not move; unpin lets votes count again; reset drops a pin and every vote
    cast before it."""
    pinned: float | None = None
    reset_at: datetime | None = None
    hidden = False
    for action in actions:
        if action.action == "hide":
            hidden = True
        elif action.action == "unhide":
            hidden = False
        elif action.action == "pin":
            pinned = action.boost
        elif action.action == "unpin":
            pinned = None
        elif action.action == "reset":
            pinned, reset_at = None, action.acted_at
    return ChunkControl(pinned=pinned, reset_at=reset_at, hidden=hidden)


def adjustment(control: ChunkControl, boost: float, *, boosts_on: bool) -> ChunkAdjustment:
    """What search does with a chunk: hidden chunks are left out whatever the switch says; with
    boosts on, the pinned boost or the votes' boost gives the multiplier."""
    if control.hidden:
        return ChunkAdjustment(hidden=True)
    if not boosts_on:
        return NO_ADJUSTMENT
    return ChunkAdjustment(multiplier=boost_multiplier(control.pinned if control.pinned is not None else boost))
