"""sources.yaml's `feedback_ranking:` section: whether votes move retrieval (boosts) and whether
curated answers are served first, both off until the lift benchmark on a report set says they
help (bench/lift, issue 25); the curated threshold; the recency half-lives per kind.

    feedback_ranking:
      boosts: true                 # votes move the chunks they judged (x0.5 to x2)
      curated_answers: true        # a close enough question gets its written-back answer
      curated_threshold: 0.9       # cosine similarity of the two questions
      half_life_days: {slack: 90, github: 180}   # votes on these kinds fade with age

Hidden chunks (an operator's `hide`) are left out of retrieval whatever these say."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ragloop.feedback.curated import DEFAULT_CURATED_THRESHOLD

KEYS = ("boosts", "curated_answers", "curated_threshold", "half_life_days")


@dataclass(frozen=True)
class FeedbackRanking:
    boosts: bool = False
    curated_answers: bool = False
    curated_threshold: float = DEFAULT_CURATED_THRESHOLD
    half_life_days: Mapping[str, float] = field(default_factory=dict)


def parse_feedback_ranking(value: Any) -> FeedbackRanking:
    """The section as written; a ValueError names the key and what is wrong (the config loader
    adds the file and line)."""
    if not isinstance(value, dict):
        raise ValueError(f"feedback_ranking must be a mapping with keys {', '.join(KEYS)}")
    unknown = sorted(set(value) - set(KEYS))
    if unknown:
        raise ValueError(f"feedback_ranking has unknown keys {', '.join(map(str, unknown))} (known: {', '.join(KEYS)})")
    for key in ("boosts", "curated_answers"):
        if key in value and not isinstance(value[key], bool):
            raise ValueError(f"feedback_ranking.{key} must be true or false, not {value[key]!r}")
    threshold = value.get("curated_threshold", DEFAULT_CURATED_THRESHOLD)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 < threshold <= 1:
        raise ValueError(f"feedback_ranking.curated_threshold must be a number above 0 and at most 1, not {threshold!r}")
    half_lives = value.get("half_life_days", {}) or {}
    if not isinstance(half_lives, dict) or any(
        isinstance(days, bool) or not isinstance(days, int | float) or days <= 0 for days in half_lives.values()
    ):
        raise ValueError(f"feedback_ranking.half_life_days must map kinds to a positive number of days, not {half_lives!r}")
    return FeedbackRanking(
        boosts=value.get("boosts", False),
        curated_answers=value.get("curated_answers", False),
        curated_threshold=float(threshold),
        half_life_days={str(k): float(v) for k, v in half_lives.items()},
    )
