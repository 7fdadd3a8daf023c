"""The one interface the feedback DAG grades through: a `Judge` gives each criterion of a run a
`Verdict`. Two implementations: `offline_judge.OfflineJudge`, the reference (no language model,
runs in the tests), and `llm_judge.LLMJudge`; `choice.make_judge` picks one from the config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol
from collections.abc import Sequence

from ragloop.grading.verdicts import Verdict

if TYPE_CHECKING:
    from ragloop.runs.models import QaRun


# What a judge's reply that gave no verdict was (JudgeUsage.problems counts each kind):
REPLY_PROBLEMS = (
    "malformed_json",  # not a JSON object
    "invalid_verdict",  # JSON, but no score in 0-1 with a reason
    "refusal",  # the model declined instead of grading
    "too_long",  # cut at the token limit (finish_reason "length") before the verdict closed
    "timeout",  # no reply within llm.timeout, after the client's retries
    "api_error",  # the server refused or failed (HTTP error, connection refused)
)


@dataclass
class JudgeUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0
    malformed: int = 0  # replies that gave no verdict (each asked again, up to the retries)
    usable: int = 0  # replies that gave a valid verdict
    problems: dict[str, int] = field(default_factory=dict)  # per REPLY_PROBLEMS kind, every reply or failed call

    def count_problem(self, kind: str) -> None:
        self.problems[kind] = self.problems.get(kind, 0) + 1


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

    def prepare(self, work: Sequence[tuple[QaRun, Sequence[str]]]) -> None:
        """Called once per batch with each run about to be graded and its criteria, before `grade`:
        a judge may batch work across runs here."""
        ...

    def grade(self, run: QaRun, criteria: list[str]) -> list[Verdict]:
        """One verdict per criterion; `JudgeFailed` when it cannot give them (the run stays ungraded)."""
        ...

    def close(self) -> None:
        """Release what the judge opened."""
        ...
