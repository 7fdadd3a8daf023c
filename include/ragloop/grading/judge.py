"""The one interface the feedback DAG grades through: a `Judge` gives each criterion of a run a
`Verdict`. Two implementations: `offline_judge.OfflineJudge`, the reference (no language model,
runs in the tests), and `llm_judge.LLMJudge`; `choice.make_judge` picks one from the config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from collections.abc import Sequence

from ragloop.grading.verdicts import Verdict


@dataclass
class JudgeUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0
    malformed: int = 0


class Judge(Protocol):
    usage: JudgeUsage

    @property
    def name(self) -> str:
        """`kind:model`, as the verdicts name their judge (the kind decides whether an earlier
        verdict can be reused: see `tasks.criteria_to_grade`)."""
        ...

    def version(self, criterion: str) -> str:
        """The version this judge grades `criterion` at now; a change regrades written-back runs."""
        ...

    def prepare(self, work: Sequence[tuple[dict, Sequence[str]]]) -> None:
        """Called once per batch with each run about to be graded and its criteria, before `grade`:
        a judge may batch work across runs here."""
        ...

    def grade(self, run: dict, criteria: list[str]) -> list[Verdict]:
        """One verdict per criterion; `JudgeFailed` when it cannot give them (the run stays ungraded)."""
        ...

    def close(self) -> None:
        """Release what the judge opened."""
        ...
